//! Deciding on a queue item: which decisions are allowed for which item
//! and reviewer, and their effects ([`decide`]); then recording the
//! decision ([`record`]): the decision row, what
//! it does to the queues (a final decision closes the item, an escalation
//! moves it to the leads' queue), its audit entry, all in one transaction,
//! then the signed webhook that tells the platform ([`super::webhooks`]).
//! What a `clear` or `add_to_bank` does to the service (unflagging,
//! banking) happens before, and its outcome is passed in as `effect`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bulwark_store::console::items as store;
use bulwark_store::{Store, now_ms, rfc3339};
use serde_json::{Value, json};

use super::Http;
use super::accounts::{ConsoleRole, Reviewer};
use super::queue;
use super::webhooks::{self, WebhookConfig};
use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// Decisions that take an item off the queues.
pub const FINAL: &[&str] = &["confirm", "dismiss", "clear", "add_to_bank"];

/// Confirmation categories.
pub const CATEGORIES: &[&str] = &[
    "csam",
    "sexual_exploitation",
    "grooming",
    "terrorism",
    "non_consensual_imagery",
    "other_violation",
];

/// What the platform is asked to do about a decision (the webhook's `action`).
pub fn platform_action(decision: &str) -> &'static str {
    match decision {
        "confirm" => "suspend_account_and_delete_content",
        "clear" => "restore_account",
        _ => "none",
    }
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// The item's kind (`report`, `account`, `match`).
    pub kind: &'a str,
    /// Its id within the kind.
    pub id: &'a str,
    /// `confirm`, `dismiss`, `escalate`, `clear` or `add_to_bank`.
    pub decision: &'a str,
    /// A confirmation's category.
    pub category: Option<&'a str>,
    /// The reviewer's note.
    pub note: Option<&'a str>,
    /// The banks the item matched.
    pub banks: &'a [String],
    /// Each matched bank's smallest distance.
    pub distances: &'a BTreeMap<String, i64>,
    /// When the item entered its queue (ms).
    pub queued_at: i64,
    /// The reviewer's name.
    pub reviewer: &'a str,
    /// The audit actor (`console:NAME`).
    pub actor: &'a str,
    /// What the decision already did (`null`, `{"cleared": ...}`, `{"bank": ...}`).
    pub effect: Value,
}

/// Records `d` (decision, queue change and `console.decide` audit entry in
/// one transaction), then queues and starts delivering its webhook when one
/// is configured. Returns the decision's id.
pub async fn record(
    s: &Store,
    hooks: &WebhookConfig,
    http: Arc<dyn Http>,
    d: &Decision<'_>,
) -> Result<i64> {
    let key = format!("{}:{}", d.kind, d.id);
    let now = now_ms();
    let mut tx = s.begin().await?;
    let did = store::insert_decision(
        s,
        &mut tx,
        &store::NewDecision {
            item: &key,
            decision: d.decision,
            category: d.category,
            note: d.note,
            banks: d.banks.join(","),
            reviewer: d.reviewer,
            at: now,
            queued_at: d.queued_at,
            distances: serde_json::to_string(d.distances).map_err(Error::internal)?,
        },
    )
    .await?;
    if FINAL.contains(&d.decision) {
        store::close(s, &mut tx, &key).await?;
    } else if d.decision == "escalate" {
        // To the leads' queue, in the order of the time it was queued.
        store::escalate(s, &mut tx, &key, d.queued_at).await?;
    }
    bulwark_store::audit(
        s,
        &mut tx,
        d.actor,
        "console.decide",
        None,
        None,
        json!({"item": key, "decision": d.decision, "category": d.category, "note": d.note,
               "banks": d.banks, "effect": d.effect, "decision_id": did}),
    )
    .await?;
    tx.commit().await?;
    let event = json!({
        "event": "decision", "decision_id": did, "item": key, "kind": d.kind, "id": d.id,
        "decision": d.decision, "category": d.category, "banks": d.banks,
        "action": platform_action(d.decision),
        "reviewer": d.reviewer, "at": rfc3339(now),
    });
    webhooks::enqueue(s, hooks, http, did, &event).await?;
    Ok(did)
}

/// A reviewer's decision on an item, as asked for (the console's form).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The item's key, `kind:id`.
    pub item: &'a str,
    /// `confirm`, `dismiss`, `escalate`, `clear` or `add_to_bank`.
    pub decision: &'a str,
    /// A confirmation's category (one of [`CATEGORIES`]).
    pub category: &'a str,
    /// The bank `add_to_bank` adds the item's hashes to.
    pub bank: &'a str,
    /// The reviewer's note (at most 2000 bytes).
    pub note: Option<&'a str>,
}

/// A decision recorded.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The decision's id.
    pub id: i64,
    /// The queue the item was decided from (its kind, or `escalated`).
    pub queue: &'static str,
}

/// Longest reviewer's note, in bytes.
pub const MAX_NOTE: usize = 2000;

/// Checks a reviewer's decision, carries out its effect and records it
/// ([`record`]). Refused, with nothing done or recorded, in this order: a
/// note over [`MAX_NOTE`] bytes or a malformed key (`bad_request`); an item
/// not in a queue's source (`not_found`); a confirmation without a known
/// category or an unknown decision (`bad_request`); `clear` or
/// `add_to_bank` by less than a lead (`forbidden`); an item not open any
/// more (`conflict`), except that a lead can always clear a flagged
/// account, the one way to unflag it; an escalated item by less than a lead
/// (`forbidden`); `clear` of anything but an account (`bad_request`).
/// Effects: `clear` unflags the account; `add_to_bank` adds each of the
/// item's PDQ hashes ([`super::queue::item_pdqs`]) to `bank` as content,
/// each applied to `catalog`. A failing effect is an internal error.
pub async fn decide(
    s: &Store,
    catalog: &Catalog,
    hooks: &WebhookConfig,
    http: Arc<dyn Http>,
    who: &Reviewer,
    r: &Request<'_>,
) -> Result<Decided> {
    let key = r.item;
    let decision = r.decision;
    let note = r.note;
    if note.is_some_and(|n| n.len() > MAX_NOTE) {
        return Err(Error::bad_request("The note is at most 2000 bytes."));
    }
    let Some((kind, id)) = queue::split_key(key) else {
        return Err(Error::bad_request("No such item."));
    };
    let Some(it) = queue::find_item(s, kind, id).await? else {
        return Err(Error::not_found("No such item."));
    };
    let category = match decision {
        "confirm" => {
            if !CATEGORIES.contains(&r.category) {
                return Err(Error::bad_request("Choose a category to confirm."));
            }
            Some(r.category)
        }
        "dismiss" | "escalate" => None,
        "clear" | "add_to_bank" => {
            who.require(ConsoleRole::Lead)?;
            None
        }
        _ => return Err(Error::bad_request("Unknown decision.")),
    };
    // Only an open item can be decided (a re-flagged account is open again
    // whatever was decided on its earlier flag); an escalated one by a lead.
    // One exception: a flagged account (`find_item` found it flagged) can
    // always be cleared by a lead, also after a confirm or dismiss, since
    // clearing is the one way to unflag it.
    let open = store::open_queue(s, &it.key()).await?;
    if open.is_none() && !(decision == "clear" && kind == "account") {
        return Err(Error::conflict("This item was already decided."));
    }
    let escalated = open.as_deref() == Some("escalated");
    if escalated {
        who.require(ConsoleRole::Lead)?;
    }
    let actor = who.actor();
    let mut effect = json!(null);
    match decision {
        "clear" => {
            if kind != "account" {
                return Err(Error::bad_request("Only a flagged account can be cleared."));
            }
            crate::vouchers::clear_account(s, &actor, id, note.map(str::to_string))
                .await
                .map_err(|e| Error::internal(format!("clearing: {}", e.message)))?;
            effect = json!({"cleared": id});
        }
        "add_to_bank" => {
            let pdqs = queue::item_pdqs(s, &it).await?;
            let b = crate::banks::by_name(s, r.bank)
                .await
                .map_err(|e| Error::internal(e.message))?;
            let mut added = Vec::new();
            for h in &pdqs {
                let mut tx = s.begin().await?;
                let c = bulwark_store::NewContent {
                    note: Some(format!("added from the console ({key})")),
                    source: Some("console".into()),
                    ..bulwark_store::NewContent::pdq(h.clone(), None)
                };
                if let Some(cid) =
                    bulwark_store::insert_content(s, &mut tx, b.id, &actor, &c).await?
                {
                    crate::banks::commit_change(
                        s,
                        catalog,
                        tx,
                        &actor,
                        crate::banks::Change {
                            action: "content.add",
                            bank: (b.id, &b.name),
                            content: Some(cid),
                            detail: json!({"source": "console", "item": key}),
                        },
                    )
                    .await
                    .map_err(|e| Error::internal(e.message))?;
                    added.push(cid);
                }
            }
            effect = json!({"bank": b.name, "content_ids": added});
        }
        _ => {}
    }
    let did = record(
        s,
        hooks,
        http,
        &Decision {
            kind,
            id,
            decision,
            category,
            note,
            banks: &it.banks,
            distances: &it.distances,
            queued_at: it.queued_at,
            reviewer: &who.name,
            actor: &actor,
            effect,
        },
    )
    .await?;
    Ok(Decided {
        id: did,
        queue: if escalated { "escalated" } else { kind },
    })
}
