//! Review policies: which of a bank's matches the match path queues for
//! review. A bank with a policy of distance `d` queues its PDQ matches at
//! distance `d` or closer and every exact (MD5, SHA-256, text) match; a bank
//! without one queues nothing.

use std::collections::BTreeMap;

use bulwark_store::Store;
use bulwark_store::console::items as store;
use serde_json::json;

use super::accounts::{ConsoleRole, Reviewer};
use crate::error::{Error, Result};

/// The largest distance a policy may name (PDQ hashes have 256 bits).
pub const MAX_DISTANCE: i64 = 256;

/// Sets (`Some`) or removes (`None`) the review policy of bank `bank`, for
/// an admin: the bank must exist and the distance be 0–256. The policy and
/// its `console.policy` audit entry are written in one transaction, so a
/// failure leaves the old policy in place.
pub async fn set(s: &Store, who: &Reviewer, bank: &str, max_distance: Option<i64>) -> Result<()> {
    who.require(ConsoleRole::Admin)?;
    if max_distance.is_some_and(|d| !(0..=MAX_DISTANCE).contains(&d)) {
        return Err(Error::bad_request(format!(
            "The largest distance is 0–{MAX_DISTANCE}."
        )));
    }
    if bulwark_store::bank_by_name(s, bank).await?.is_none() {
        return Err(Error::not_found(format!("No bank named {bank:?}.")));
    }
    let mut tx = s.begin().await?;
    store::set_policy(s, &mut tx, bank, max_distance).await?;
    bulwark_store::audit(
        s,
        &mut tx,
        &who.actor(),
        "console.policy",
        Some(bank),
        None,
        json!({"bank": bank, "max_distance": max_distance}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Every bank's review policy: bank name → the largest distance queued.
pub async fn all(s: &Store) -> Result<BTreeMap<String, i64>> {
    Ok(store::policies(s).await?.into_iter().collect())
}
