//! Recording a reviewer's decision on a queue item: the decision row, what
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
use super::webhooks::{self, WebhookConfig};
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
