//! The review queues: items (a queued report, a flagged account, a
//! recorded match), their pages of open items per reviewer, "next item",
//! the hashes an item carries, and the daily reveal budget.

use std::collections::{BTreeMap, HashSet};

use bulwark_store::Store;
use bulwark_store::console::items as store;
use serde_json::{Value, json};

pub use bulwark_store::console::items::Cursor;

use super::accounts::{ConsoleRole, Reviewer};
use crate::error::{Error, Kind, Result};

/// An item in a queue.
#[derive(Debug, Clone)]
pub struct Item {
    /// `report`, `account` or `match`.
    pub kind: &'static str,
    /// The id within its kind.
    pub id: String,
    /// Banks it matched.
    pub banks: Vec<String>,
    /// Each matched bank's smallest match distance (0 for exact matches).
    pub distances: BTreeMap<String, i64>,
    /// When it entered the queue (ms).
    pub queued_at: i64,
    /// One line about it.
    pub summary: String,
}

impl Item {
    /// `kind:id`, the key of decisions, reveals and audit entries.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

/// The item kind named `kind` (`report`, `account`, `match`).
pub fn kind_static(kind: &str) -> Option<&'static str> {
    ["report", "account", "match"]
        .into_iter()
        .find(|k| *k == kind)
}

/// `kind:id` split, for a known kind.
pub fn split_key(key: &str) -> Option<(&'static str, &str)> {
    let (k, id) = key.split_once(':')?;
    Some((kind_static(k)?, id))
}

/// Whether `queue` names a queue (the kinds, and `escalated`).
pub fn is_queue(queue: &str) -> bool {
    matches!(queue, "report" | "account" | "match" | "escalated")
}

fn merge_min(into: &mut BTreeMap<String, i64>, bank: &str, d: i64) {
    let e = into.entry(bank.to_string()).or_insert(d);
    *e = (*e).min(d);
}

/// Each bank's smallest match distance in a `matches` JSON array (exact
/// MD5/SHA-256 matches, and rule matches, have distance 0).
fn distances_of_matches(matches: &Value, into: &mut BTreeMap<String, i64>) {
    for m in matches.as_array().into_iter().flatten() {
        if let Some(b) = m["bank"].as_str() {
            merge_min(into, b, m["distance"].as_i64().unwrap_or(0));
        }
    }
}

/// One item by kind and id, if it is (still) in a queue's source: a queued
/// report, a flagged account, a recorded match. Reads that item's rows only.
pub async fn find_item(s: &Store, kind: &str, id: &str) -> Result<Option<Item>> {
    let mut distances = BTreeMap::new();
    let (summary, queued_at) = match kind {
        "report" => {
            let Ok(rid) = id.parse::<i64>() else {
                return Ok(None);
            };
            let Some((received_at, reason)) = store::queued_report(s, rid).await? else {
                return Ok(None);
            };
            for matches in store::attachment_matches(s, rid).await? {
                let v: Value = matches
                    .as_deref()
                    .and_then(|m| serde_json::from_str(m).ok())
                    .unwrap_or(Value::Null);
                distances_of_matches(&v, &mut distances);
            }
            // The banks its message text matched.
            for (_, _, matches) in super::evidence::report_rows(s, rid).await? {
                distances_of_matches(&matches, &mut distances);
            }
            (
                format!(
                    "Report {rid}: {}",
                    reason.unwrap_or_else(|| "no reason".into())
                ),
                received_at,
            )
        }
        "account" => {
            let Some(r) = store::flagged_account(s, id).await? else {
                return Ok(None);
            };
            for (name, d) in store::opened_distances(s, id).await? {
                merge_min(&mut distances, &name, d);
            }
            (
                format!("Account {id} crossed the voucher threshold"),
                r.flagged_at.unwrap_or(r.updated_at),
            )
        }
        "match" => {
            let Ok(mid) = id.parse::<i64>() else {
                return Ok(None);
            };
            let Some(store::MatchSummary {
                at,
                bank,
                distance: d,
                signal_type: t,
            }) = store::match_summary(s, mid).await?
            else {
                return Ok(None);
            };
            distances.insert(bank.clone(), d);
            // A rule match has no distance: say what matched instead.
            let title = if t == "rule" {
                format!("Match {mid}: bank {bank}, rule")
            } else {
                format!("Match {mid}: bank {bank}, {t} distance {d}")
            };
            (title, at)
        }
        _ => return Ok(None),
    };
    let Some(kind) = kind_static(kind) else {
        return Ok(None);
    };
    Ok(Some(Item {
        kind,
        id: id.to_string(),
        banks: distances.keys().cloned().collect(),
        distances,
        queued_at,
        summary,
    }))
}

/// The PDQ hashes an item carries (what "add to bank" banks): a report's
/// attachments', a flagged account's opened vouchers', a match's upload's.
pub async fn item_pdqs(s: &Store, it: &Item) -> Result<Vec<String>> {
    let bad_id = |e: std::num::ParseIntError| Error::internal(format!("item id: {e}"));
    Ok(match it.kind {
        "report" => {
            let id: i64 = it.id.parse().map_err(bad_id)?;
            store::report_attachments(s, id)
                .await?
                .into_iter()
                .filter_map(|a| {
                    let h: Value = a
                        .hashes
                        .and_then(|h| serde_json::from_str(&h).ok())
                        .unwrap_or(Value::Null);
                    h["pdq"].as_str().map(str::to_string)
                })
                .collect()
        }
        "account" => store::opened(s, &it.id)
            .await?
            .into_iter()
            .map(|o| o.hash)
            .collect(),
        _ => {
            let id: i64 = it.id.parse().map_err(bad_id)?;
            store::match_detail(s, id).await?.pdq.into_iter().collect()
        }
    })
}

/// An item's sort key in a queue (`kind`, or `escalated`).
pub fn cursor_of(queue: &str, it: &Item) -> Cursor {
    match queue {
        "escalated" => Cursor {
            n: it.queued_at,
            s: it.key(),
        },
        "account" => Cursor {
            n: it.queued_at,
            s: it.id.clone(),
        },
        _ => Cursor {
            n: it.id.parse().unwrap_or(0),
            s: String::new(),
        },
    }
}

/// Whether `who` sees `queue` (a queue; `escalated` for leads and admins).
fn sees(who: &Reviewer, queue: &str) -> bool {
    is_queue(queue) && (queue != "escalated" || who.role >= ConsoleRole::Lead)
}

/// One page of a queue for this reviewer, oldest first, after `after`:
/// at most `limit` (1–500) items with their sort keys, read with `LIMIT`
/// from the open items' index (never a whole table, never a decided item,
/// never one this reviewer hid). Empty for a queue they do not see.
pub async fn open_page(
    s: &Store,
    who: &Reviewer,
    queue: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<(Item, Cursor)>> {
    if !sees(who, queue) {
        return Ok(Vec::new());
    }
    let rows = store::open_page(s, queue, who.id, after, limit.clamp(1, 500)).await?;
    let mut out = Vec::new();
    for r in rows {
        let Some((kind, id)) = split_key(&r.item) else {
            continue;
        };
        if let Some(mut it) = find_item(s, kind, id).await? {
            if queue == "escalated" {
                it.queued_at = r.t;
            }
            out.push((it, r.cursor));
        }
    }
    Ok(out)
}

/// How many items wait in a queue for this reviewer, and since when the
/// oldest has (one aggregate query over the queue's open items).
pub async fn open_stats(s: &Store, who: &Reviewer, queue: &str) -> Result<(i64, Option<i64>)> {
    if !sees(who, queue) {
        return Ok((0, None));
    }
    Ok(store::open_stats(s, queue, who.id).await?)
}

/// The next open item of `queue` for this reviewer after item `after`
/// (`kind:id`), or the first when there is none after it (or no `after`):
/// where `after` sits is its open row's sort key when it is still open in
/// this queue, else (just decided, or escalated away) the key it had, from
/// the item itself.
pub async fn next(
    s: &Store,
    who: &Reviewer,
    queue: &str,
    after: Option<&str>,
) -> Result<Option<Item>> {
    let after = match after.and_then(split_key) {
        Some((k, id)) => {
            let key = format!("{k}:{id}");
            match (
                store::open_queue(s, &key).await?,
                store::open_cursor(s, &key).await?,
            ) {
                (Some(qn), Some(c)) if qn == queue => Some(c),
                _ => find_item(s, k, id).await?.map(|it| cursor_of(queue, &it)),
            }
        }
        None => None,
    };
    let mut next = open_page(s, who, queue, after.as_ref(), 1).await?;
    if next.is_empty() && after.is_some() {
        next = open_page(s, who, queue, None, 1).await?;
    }
    Ok(next.into_iter().next().map(|(it, _)| it))
}

/// "Do not show me this item again": hides `key` (`kind:id`, an item that
/// exists) from `who`'s queue pages and "next item", with a `console.hide`
/// audit entry, in one transaction. Other reviewers still see it; hiding it
/// twice changes nothing more. Returns the item's kind.
pub async fn hide(s: &Store, who: &Reviewer, key: &str) -> Result<&'static str> {
    let Some((kind, id)) = split_key(key) else {
        return Err(Error::bad_request("No such item."));
    };
    if find_item(s, kind, id).await?.is_none() {
        return Err(Error::not_found("No such item."));
    }
    let mut tx = s.begin().await?;
    store::hide(s, &mut tx, who.id, key).await?;
    bulwark_store::audit(
        s,
        &mut tx,
        &who.actor(),
        "console.hide",
        None,
        None,
        json!({"item": key}),
    )
    .await?;
    tx.commit().await?;
    Ok(kind)
}

/// The UTC day number of a time in milliseconds (reveal budgets are per day).
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// The media of `item` this reviewer revealed on the day of `now` (ms).
pub async fn revealed(s: &Store, who: &Reviewer, item: &str, now: i64) -> Result<HashSet<String>> {
    Ok(store::revealed(s, who.id, item, day_of(now))
        .await?
        .into_iter()
        .collect())
}

/// Reveals this reviewer used on the day of `now` (ms).
pub async fn reveals_today(s: &Store, who: &Reviewer, now: i64) -> Result<i64> {
    Ok(store::reveals_on(s, who.id, day_of(now)).await?)
}

/// Reveals medium `media` of `item` to this reviewer at `now` (ms), within
/// `budget` reveals a UTC day: recorded and audited (`console.reveal`);
/// returns the reveals used today, this one included. Over the budget it is
/// refused (`rate_limited`, nothing recorded) and the refusal audited
/// (`console.reveal.refused`). The caller checks that the medium exists.
pub async fn reveal(
    s: &Store,
    who: &Reviewer,
    item: &str,
    media: &str,
    budget: i64,
    now: i64,
) -> Result<i64> {
    let used = reveals_today(s, who, now).await?;
    if used >= budget {
        super::audit(
            s,
            &who.actor(),
            "console.reveal.refused",
            json!({"item": item, "media": media, "used": used, "budget": budget}),
        )
        .await?;
        return Err(Error::new(
            Kind::RateLimited,
            "reveal_budget",
            format!(
                "You have revealed {used} images today, your daily budget. The rest stay blurred until tomorrow; please take a break, or ask a lead to take this item."
            ),
        ));
    }
    let mut tx = s.begin().await?;
    store::insert_reveal(s, &mut tx, who.id, item, media, day_of(now), now).await?;
    bulwark_store::audit(
        s,
        &mut tx,
        &who.actor(),
        "console.reveal",
        None,
        None,
        json!({"item": item, "media": media, "used": used + 1, "budget": budget}),
    )
    .await?;
    tx.commit().await?;
    Ok(used + 1)
}
