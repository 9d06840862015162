//! Curation through Meta's HMA shapes, without HTTP: banks with a matching
//! ratio (`matching_enabled_ratio`) and HMA's name rule, content enabled,
//! disabled or disabled until a time (`disable_until_ts`), per-type counts
//! and how fresh this node's index is. Every change is audited with
//! `"via": "hma"` and appended to the change log, as [`crate::banks`]'.

use std::collections::HashMap;

use bulwark_store::{self as db, BankRow, ContentRow, Store};
use serde::Serialize;

use crate::banks::{Change, commit_change};
use crate::catalog::{Catalog, DEFAULT_MIN_QUALITY};
use crate::error::{Error, Kind, Result, snippet};

/// A bank as HMA shows it (fields in the order HMA's answers sort them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HmaBank {
    /// The share of lookups the bank answers: 0 off, 1 always.
    pub matching_enabled_ratio: f64,
    /// Its name.
    pub name: String,
}

impl HmaBank {
    /// A bank with its ratio from [`ratios`].
    pub fn of(b: &BankRow, ratios: &HashMap<i64, f64>) -> HmaBank {
        HmaBank {
            matching_enabled_ratio: ratio_of(b, ratios),
            name: b.name.clone(),
        }
    }
}

/// Every bank's HMA matching ratio, where one was set.
pub async fn ratios(store: &Store) -> Result<HashMap<i64, f64>> {
    Ok(db::hma::ratios(store).await?)
}

/// A bank's HMA ratio: the one set, else 1 when enabled and 0 when not.
pub fn ratio_of(b: &BankRow, ratios: &HashMap<i64, f64>) -> f64 {
    if !b.enabled {
        return 0.0;
    }
    ratios.get(&b.id).copied().unwrap_or(1.0)
}

/// Every bank, by name, as HMA shows it.
pub async fn banks(store: &Store) -> Result<Vec<HmaBank>> {
    let r = ratios(store).await?;
    Ok(db::banks(store)
        .await?
        .iter()
        .map(|b| HmaBank::of(b, &r))
        .collect())
}

/// The bank named `name`, or HMA's 404 for it.
pub async fn bank(store: &Store, name: &str) -> Result<BankRow> {
    db::bank_by_name(store, name)
        .await?
        .ok_or_else(|| Error::not_found(format!("bank '{}' not found", snippet(name))))
}

/// A bank as HMA shows it, with its ratio.
pub async fn shown(store: &Store, b: &BankRow) -> Result<HmaBank> {
    Ok(HmaBank::of(b, &ratios(store).await?))
}

/// HMA's bank-name rule: `[A-Z_][A-Z0-9_]*` (and Bulwark's 64-byte limit).
pub fn check_bank_name(name: &str) -> Result<()> {
    let mut b = name.bytes();
    let ok = name.len() <= 64
        && b.next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == b'_')
        && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "Bank names must be UPPER_WITH_UNDERSCORE (match [A-Z_][A-Z0-9_]*, at most 64): got {:?}",
            snippet(name)
        )))
    }
}

/// HMA answers 403 where a name is taken.
fn taken(message: &str) -> Error {
    Error::new(Kind::Forbidden, "conflict", message)
}

/// Creates a bank with HMA's name rule, the service's default threshold and
/// quality floor, and `ratio` (enabled when above 0); 403 if it exists, as
/// HMA answers.
pub async fn create_bank(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    default_threshold: u32,
    name: &str,
    ratio: f64,
) -> Result<BankRow> {
    check_bank_name(name)?;
    let mut tx = store.begin().await?;
    let bank = db::banks::insert(
        store,
        &mut tx,
        &db::banks::NewBank {
            name,
            threshold: i64::from(default_threshold),
            min_quality: i64::from(DEFAULT_MIN_QUALITY),
            enabled: ratio > 0.0,
            description: "",
            provider: None,
        },
    )
    .await?
    .ok_or_else(|| taken("Bank already exists"))?;
    db::hma::set_ratio(store, &mut tx, bank.id, ratio).await?;
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "bank.create",
            bank: (bank.id, &bank.name),
            content: None,
            detail: serde_json::json!({"via": "hma", "matching_enabled_ratio": ratio}),
        },
    )
    .await?;
    Ok(bank)
}

/// Renames a bank (and its exchange) and sets its ratio; either may be
/// absent. 403 when the new name is taken.
pub async fn update_bank(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    new_name: Option<&str>,
    ratio: Option<f64>,
) -> Result<HmaBank> {
    if let Some(n) = new_name {
        check_bank_name(n)?;
    }
    let mut tx = store.begin().await?;
    if let Some(n) = new_name.filter(|n| *n != bank.name) {
        if db::banks::by_name_in(store, &mut tx, n).await?.is_some() {
            return Err(taken("Bank name already exists"));
        }
        db::hma::rename_bank(store, &mut tx, bank.id, &bank.name, n).await?;
    }
    if let Some(r) = ratio {
        db::hma::set_ratio(store, &mut tx, bank.id, r).await?;
    }
    let final_name = new_name.unwrap_or(&bank.name);
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "bank.update",
            bank: (bank.id, final_name),
            content: None,
            detail: serde_json::json!({
                "via": "hma",
                "renamed_from": new_name.map(|_| &bank.name),
                "matching_enabled_ratio": ratio,
            }),
        },
    )
    .await?;
    let b = db::bank_by_name(store, final_name)
        .await?
        .ok_or_else(|| Error::not_found("Bank not found"))?;
    shown(store, &b).await
}

/// Deletes a bank and its content; how many items it held.
pub async fn delete_bank(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
) -> Result<i64> {
    crate::banks::delete_bank(store, catalog, actor, bank, Some("hma")).await
}

/// A content item of a bank, or HMA's 404 for it.
pub async fn content(store: &Store, bank: &BankRow, id: i64) -> Result<ContentRow> {
    db::hma::content_in_bank(store, bank.id, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("content '{id}' not found")))
}

/// HMA's `disable_until_ts`: 1 enabled, 0 disabled, else a Unix time in
/// seconds until which matching is off.
pub fn disable_until_ts(c: &ContentRow) -> i64 {
    match (c.enabled, c.disabled_until) {
        (true, _) => 1,
        (false, None) => 0,
        (false, Some(ms)) => (ms / 1000).max(2),
    }
}

/// Latest `disable_until_ts` accepted: five years from now.
fn five_years_from_now() -> i64 {
    db::now_ms() / 1000 + 5 * 365 * 86_400
}

/// The stored matching state (`enabled`, `disabled_until` in ms) of a
/// `disable_until_ts`: 1 enabled, 0 disabled, else disabled until that
/// Unix time (at most five years from now).
pub fn disable_until(ts: i64) -> Result<(bool, Option<i64>)> {
    if ts < 0 {
        return Err(Error::bad_request(
            "disable_until_ts must be a non-negative integer",
        ));
    }
    if ts > five_years_from_now() {
        return Err(Error::bad_request(
            "disable_until_ts must be less than 5 years in the future",
        ));
    }
    Ok(match ts {
        1 => (true, None),
        0 => (false, None),
        t => (false, Some(t * 1000)),
    })
}

/// Writes a content item's matching state and note (as changed in `c`).
pub async fn update_content(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    c: &ContentRow,
    note_changed: bool,
) -> Result<()> {
    let mut tx = store.begin().await?;
    db::hma::update_content(store, &mut tx, c).await?;
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "content.update",
            bank: (bank.id, &bank.name),
            content: Some(c.id),
            detail: serde_json::json!({
                "via": "hma",
                "disable_until_ts": disable_until_ts(c),
                "note_changed": note_changed,
            }),
        },
    )
    .await
}

/// Deletes one content item of a bank; the number deleted (0 or 1).
pub async fn delete_content(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    id: i64,
) -> Result<u64> {
    let deleted = crate::content::delete_in(store, catalog, actor, bank, id, Some("hma")).await?;
    Ok(u64::from(deleted))
}

/// Number of stored signals of a type (its name in `signals`), and the
/// time (Unix seconds) of the last change, -1 when none.
pub async fn type_stats(store: &Store, signal_type: &str) -> Result<(i64, i64)> {
    let n = db::hma::signal_count(store, signal_type).await?;
    let at = db::hma::newest_change_at(store).await?;
    Ok((n, at.map_or(-1, |a| a / 1000)))
}

/// How this node's index stands against the store's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// A change written longer ago than the allowed lag is not in the index.
    pub stale: bool,
    /// Unix time (s) of the newest change the index holds without gaps
    /// below it; -1 when none.
    pub built_to: i64,
}

/// Whether the index is stale (it lacks a change written more than
/// `max_lag_ms` ago), and what it is built to.
pub async fn freshness(store: &Store, catalog: &Catalog, max_lag_ms: i64) -> Result<Freshness> {
    let floor = catalog.applied_seq();
    let overdue = db::hma::changes_before(store, floor, db::now_ms() - max_lag_ms).await?;
    let stale = overdue.iter().any(|seq| !catalog.has_applied(*seq));
    let built_to = db::hma::change_at_or_below(store, floor).await?;
    Ok(Freshness {
        stale,
        built_to: built_to.map_or(-1, |ms| ms / 1000),
    })
}
