//! What an item's page reads besides the item itself: items that look like
//! it ([`similar`]) and its history ([`history`]). Each read is bounded: an
//! item page never reads a whole table ([`SIMILAR_SCAN`]).

use bulwark_store::Store;
use bulwark_store::console::items as store;
use serde_json::Value;

use crate::error::Result;

/// Rows of each source an item page compares hashes with (the most recent).
pub const SIMILAR_SCAN: i64 = 2000;

/// Largest PDQ distance at which two items count as similar.
pub const SIMILAR_DISTANCE: u32 = 31;

/// Most of an item's own PDQ hashes looked up exactly among recorded
/// matches of any age.
const EXACT_LOOKUPS: usize = 16;

/// An item like another one, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Similar {
    /// Its key (`kind:id`).
    pub key: String,
    /// Why: `PDQ distance N` or `same account A`.
    pub why: String,
}

impl Similar {
    /// Its page in the console.
    pub fn href(&self) -> String {
        let (kind, id) = self.key.split_once(':').unwrap_or(("", &self.key));
        format!("/console/item/{kind}/{id}")
    }
}

/// The items that share a hash (PDQ within [`SIMILAR_DISTANCE`] bits of one
/// of `pdq`) or an account (one of `accounts`) with item `me`, once each
/// (the first reason in order), sorted by key, `me` left out. Near hashes
/// are sought among the most recent [`SIMILAR_SCAN`] recorded matches,
/// hashed report attachments and flagged accounts' opened vouchers, and
/// exact PDQ matches among recorded matches of any age (by their index).
pub async fn similar(
    s: &Store,
    me: &str,
    pdq: &[String],
    accounts: &[String],
) -> Result<Vec<Similar>> {
    let mine: Vec<bulwark_pdq::PdqHash> = pdq.iter().filter_map(|h| h.parse().ok()).collect();
    let near = |h: &str| -> Option<u32> {
        let h: bulwark_pdq::PdqHash = h.parse().ok()?;
        mine.iter()
            .map(|m| m.distance(&h))
            .min()
            .filter(|d| *d <= SIMILAR_DISTANCE)
    };
    let mut out = Vec::new();
    let mut push = |key: String, why: String| out.push(Similar { key, why });
    let mut recent = store::recent_match_pdqs(s, SIMILAR_SCAN).await?;
    for h in pdq.iter().take(EXACT_LOOKUPS) {
        recent.extend(store::matches_with_pdq(s, h).await?);
    }
    for (id, p) in recent {
        if let Some(dist) = near(&p) {
            push(format!("match:{id}"), format!("PDQ distance {dist}"));
        }
    }
    for (id, h) in store::recent_attachment_hashes(s, SIMILAR_SCAN).await? {
        let v: Value = serde_json::from_str(&h).unwrap_or(Value::Null);
        if let Some(dist) = v["pdq"].as_str().and_then(near) {
            push(format!("report:{id}"), format!("PDQ distance {dist}"));
        }
    }
    for (a, hash) in store::recent_flagged_hashes(s, SIMILAR_SCAN).await? {
        if let Some(dist) = near(&hash) {
            push(format!("account:{a}"), format!("PDQ distance {dist}"));
        }
    }
    for a in accounts {
        for id in store::reports_of_account(s, a, SIMILAR_SCAN).await? {
            push(format!("report:{id}"), format!("same account {a}"));
        }
        if store::account_known(s, a).await? {
            push(format!("account:{a}"), format!("same account {a}"));
        }
    }
    out.retain(|x| x.key != me);
    out.sort();
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// One entry of an item's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When (ms).
    pub at: i64,
    /// Who (`console:NAME`).
    pub actor: String,
    /// What (`console.*`).
    pub action: String,
    /// Its detail, JSON text.
    pub detail: String,
}

/// The console's audit entries about item `key` (their detail's `item` is
/// `key`), oldest first. The store finds them by a `LIKE` pattern; an
/// account name may hold `%` or `_`, which `LIKE` takes as wildcards, so
/// each candidate's `item` is checked exactly before it is shown.
pub async fn history(s: &Store, key: &str) -> Result<Vec<Entry>> {
    let needle = format!(
        "%\"item\":{}%",
        serde_json::to_string(key).map_err(crate::error::Error::internal)?
    );
    Ok(store::history(s, &needle)
        .await?
        .into_iter()
        .filter(|r| {
            serde_json::from_str::<Value>(&r.detail).is_ok_and(|d| d["item"].as_str() == Some(key))
        })
        .map(|r| Entry {
            at: r.at,
            actor: r.actor,
            action: r.action,
            detail: r.detail,
        })
        .collect())
}
