//! Banks: named lists of content with a match threshold, a quality floor
//! and an optional provider. Every change is audited, appended to the change
//! log replicas follow, and applied to this node's index before it returns.

use bulwark_store::{self as db, BankRow, Store};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DEFAULT_MIN_QUALITY};
use crate::error::{Error, Result};

/// Longest bank description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Longest provider name, in bytes.
pub const MAX_PROVIDER_BYTES: usize = 256;

/// A bank as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Bank {
    /// Unique name.
    pub name: String,
    /// Largest PDQ distance that matches.
    pub threshold: i64,
    /// PDQ hashes of lower quality are neither banked nor matched here.
    pub min_quality: i64,
    /// Matching enabled.
    pub enabled: bool,
    /// Free text.
    pub description: String,
    /// Who provides the list (for private matching's intersection).
    pub provider: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&BankRow> for Bank {
    fn from(b: &BankRow) -> Bank {
        Bank {
            name: b.name.clone(),
            threshold: b.threshold,
            min_quality: b.min_quality,
            enabled: b.enabled,
            description: b.description.clone(),
            provider: b.provider.clone(),
            created_at: db::rfc3339(b.created_at),
            updated_at: db::rfc3339(b.updated_at),
        }
    }
}

/// A bank with its content counts (from counters, never a scan).
#[derive(Debug, Clone, Serialize)]
pub struct BankWithCounts {
    /// The bank.
    #[serde(flatten)]
    pub bank: Bank,
    /// Content items.
    pub content_count: i64,
    /// Of which disabled.
    pub disabled_count: i64,
}

/// A bank to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBank {
    /// Unique name: 1–64 of `A–Z a–z 0–9 _ -`.
    pub name: String,
    /// Largest PDQ distance that matches (0..=128; the service's default).
    pub threshold: Option<u32>,
    /// Quality floor (0..=100; default 50).
    pub min_quality: Option<u32>,
    /// Matching enabled (default true).
    pub enabled: Option<bool>,
    /// Free text.
    pub description: Option<String>,
    /// Who provides the list.
    pub provider: Option<String>,
}

/// Changes to a bank's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankPatch {
    /// New threshold.
    pub threshold: Option<u32>,
    /// New quality floor.
    pub min_quality: Option<u32>,
    /// Enable or disable matching.
    pub enabled: Option<bool>,
    /// New description.
    pub description: Option<String>,
    /// New provider, or `null` to remove it.
    pub provider: Option<Option<String>>,
}

/// Checks a bank name: 1–64 of `A–Z a–z 0–9 _ -`.
pub fn valid_name(name: &str) -> Result<()> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "bank name {:?} must be 1–64 characters of A–Z, a–z, 0–9, _ and -",
            name.chars().take(80).collect::<String>()
        )))
    }
}

fn check_texts(description: Option<&str>, provider: Option<&str>) -> Result<()> {
    if description.is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES) {
        return Err(Error::bad_request(format!(
            "description is over {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    if provider.is_some_and(|p| p.is_empty() || p.len() > MAX_PROVIDER_BYTES) {
        return Err(Error::bad_request(format!(
            "provider must be 1–{MAX_PROVIDER_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_min_quality(q: u32) -> Result<()> {
    if q > 100 {
        return Err(Error::bad_request(format!(
            "min_quality {q} is out of range 0..=100 (HMA recommends 50)"
        )));
    }
    Ok(())
}

fn check_threshold(t: u32) -> Result<()> {
    if t > 128 {
        return Err(Error::bad_request(format!(
            "threshold {t} is out of range 0..=128 (PDQ's usual is 31)"
        )));
    }
    Ok(())
}

/// A bank by name, or `not_found`.
pub async fn by_name(store: &Store, name: &str) -> Result<BankRow> {
    db::bank_by_name(store, name)
        .await?
        .ok_or_else(|| Error::not_found(format!("no bank named {name:?}")))
}

/// A change to a bank or one of its items, as audited.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// What was done, e.g. `bank.update`.
    pub action: &'a str,
    /// The bank's id and name.
    pub bank: (i64, &'a str),
    /// The content item, where there is one.
    pub content: Option<i64>,
    /// Details for the audit log.
    pub detail: serde_json::Value,
}

/// Commits a change made in `tx`: the audit entry by `actor`, the
/// change-log row replicas follow, the commit, and this node's index.
pub async fn commit_change(
    store: &Store,
    catalog: &Catalog,
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    actor: &str,
    c: Change<'_>,
) -> Result<()> {
    let (bank, content) = (c.bank, c.content);
    db::audit(
        store,
        &mut tx,
        actor,
        c.action,
        Some(bank.1),
        content,
        c.detail,
    )
    .await?;
    let seq = db::change(store, &mut tx, Some(bank.0), content).await?;
    tx.commit().await?;
    catalog
        .apply(store, &[(seq, Some(bank.0), content)])
        .await
        .map_err(Error::internal)
}

fn detail(b: &Bank) -> Result<serde_json::Value> {
    serde_json::to_value(b).map_err(Error::internal)
}

/// Creates a bank (`default_threshold` when the request names none).
pub async fn create(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    default_threshold: u32,
    b: NewBank,
) -> Result<Bank> {
    valid_name(&b.name)?;
    let threshold = b.threshold.unwrap_or(default_threshold);
    check_threshold(threshold)?;
    let min_quality = b.min_quality.unwrap_or(DEFAULT_MIN_QUALITY);
    check_min_quality(min_quality)?;
    check_texts(b.description.as_deref(), b.provider.as_deref())?;
    let mut tx = store.begin().await?;
    let row = db::banks::insert(
        store,
        &mut tx,
        &db::banks::NewBank {
            name: &b.name,
            threshold: i64::from(threshold),
            min_quality: i64::from(min_quality),
            enabled: b.enabled.unwrap_or(true),
            description: b.description.as_deref().unwrap_or_default(),
            provider: b.provider.as_deref(),
        },
    )
    .await?
    .ok_or_else(|| Error::conflict(format!("a bank named {:?} exists", b.name)))?;
    let bank = Bank::from(&row);
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "bank.create",
            bank: (row.id, &row.name),
            content: None,
            detail: detail(&bank)?,
        },
    )
    .await?;
    Ok(bank)
}

/// Every bank, by name.
pub async fn list(store: &Store) -> Result<Vec<Bank>> {
    Ok(db::banks(store).await?.iter().map(Bank::from).collect())
}

/// A bank with its counts.
pub async fn get(store: &Store, name: &str) -> Result<BankWithCounts> {
    let row = by_name(store, name).await?;
    let (content_count, disabled_count) = db::bank_counts(store, &store.pool, row.id).await?;
    Ok(BankWithCounts {
        bank: Bank::from(&row),
        content_count,
        disabled_count,
    })
}

/// Changes a bank's settings.
pub async fn update(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    name: &str,
    p: BankPatch,
) -> Result<Bank> {
    check_texts(
        p.description.as_deref(),
        p.provider.as_ref().and_then(|p| p.as_deref()),
    )?;
    let mut tx = store.begin().await?;
    let mut b = db::banks::by_name_in(store, &mut tx, name)
        .await?
        .ok_or_else(|| Error::not_found(format!("no bank named {name:?}")))?;
    if let Some(t) = p.threshold {
        check_threshold(t)?;
        b.threshold = i64::from(t);
    }
    if let Some(q) = p.min_quality {
        check_min_quality(q)?;
        b.min_quality = i64::from(q);
    }
    if let Some(e) = p.enabled {
        b.enabled = e;
    }
    if let Some(d) = p.description {
        b.description = d;
    }
    if let Some(pr) = p.provider {
        b.provider = pr;
    }
    b.updated_at = db::now_ms();
    db::banks::update(store, &mut tx, &b).await?;
    let bank = Bank::from(&b);
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "bank.update",
            bank: (b.id, &b.name),
            content: None,
            detail: detail(&bank)?,
        },
    )
    .await?;
    Ok(bank)
}

/// Deletes a bank and its content; returns how many items it held.
pub async fn delete(store: &Store, catalog: &Catalog, actor: &str, name: &str) -> Result<i64> {
    let bank = by_name(store, name).await?;
    delete_bank(store, catalog, actor, &bank, None).await
}

/// Deletes `bank` and its content, audited with `via` (the surface that
/// asked, when it is not the API: HMA's curation, an exchange); how many
/// items it held (from the bank's counters, not a scan).
pub(crate) async fn delete_bank(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    via: Option<&str>,
) -> Result<i64> {
    let mut tx = store.begin().await?;
    let n = db::banks::delete(store, &mut tx, bank.id).await?;
    let mut detail = serde_json::json!({"content_deleted": n});
    if let Some(via) = via {
        detail["via"] = via.into();
    }
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "bank.delete",
            bank: (bank.id, &bank.name),
            content: None,
            detail,
        },
    )
    .await?;
    Ok(n)
}
