//! Exchanges without HTTP: a named, scheduled fetch of signals into a bank
//! of the same name (HMA's `/c/exchanges...`). Here is what an exchange
//! keeps between fetches: its settings, its fetch status (one fetch at a
//! time, a checkpoint stored after every page, the counts of signals
//! skipped for their type, how the last fetch ended), the map of fetched
//! items to the content they were banked as, the exchange APIs' sealed
//! credentials, and the change feed that one Bulwark follows another by.
//! Reading the remote lists (HTTP) is the server's.

use std::collections::{BTreeMap, HashSet};

use bulwark_store::hma::{ExchangeRow, ExchangeStatusRow};
use bulwark_store::{self as db, BankRow, NewContent, SignalRow, Store};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::error::{Error, Result, snippet};
use crate::hma;
use crate::secrets::Kek;

/// Counts of signals skipped for their type, by the remote's type name.
pub type Skipped = BTreeMap<String, u64>;

/// An exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// Its name (and its bank's).
    pub name: String,
    /// Its API's name.
    pub api: String,
    /// Fetched on schedule.
    pub enabled: bool,
    /// API-specific settings (secrets sealed, as `key_sealed`).
    pub config: Map<String, Value>,
    /// Seconds between fetches.
    pub interval_seconds: i64,
}

impl Exchange {
    fn row(&self) -> ExchangeRow {
        ExchangeRow {
            name: self.name.clone(),
            api: self.api.clone(),
            enabled: self.enabled,
            config: Value::Object(self.config.clone()).to_string(),
            interval_seconds: self.interval_seconds,
        }
    }
}

/// An exchange as the API shows it: its settings and its API's, a sealed
/// key as `"has_key": true`; keys in sorted order, as HMA's JSON.
impl Serialize for Exchange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m: BTreeMap<&str, Value> = BTreeMap::new();
        m.insert("name", Value::from(self.name.as_str()));
        m.insert("api", Value::from(self.api.as_str()));
        m.insert("enabled", Value::from(self.enabled));
        m.insert("interval_seconds", Value::from(self.interval_seconds));
        for (k, v) in &self.config {
            if k == "key_sealed" {
                m.insert("has_key", Value::Bool(true));
            } else {
                m.insert(k, v.clone());
            }
        }
        m.serialize(s)
    }
}

/// An exchange by name.
pub async fn load(store: &Store, name: &str) -> Result<Option<Exchange>> {
    let Some(r) = db::hma::exchange(store, name).await? else {
        return Ok(None);
    };
    Ok(Some(Exchange {
        config: serde_json::from_str(&r.config).map_err(Error::internal)?,
        name: r.name,
        api: r.api,
        enabled: r.enabled,
        interval_seconds: r.interval_seconds,
    }))
}

/// An exchange by name, or HMA's 404 for it.
pub async fn get(store: &Store, name: &str) -> Result<Exchange> {
    load(store, name)
        .await?
        .ok_or_else(|| Error::not_found(format!("Exchange '{}' not found", snippet(name))))
}

/// Every exchange's name, in order.
pub async fn names(store: &Store) -> Result<Vec<String>> {
    Ok(db::hma::exchange_names(store).await?)
}

/// Creates an exchange and its bank (ratio 1), with an empty fetch status.
/// 400 when a bank or an exchange of that name exists.
pub async fn create(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    default_threshold: u32,
    e: &Exchange,
) -> Result<()> {
    if db::bank_by_name(store, &e.name).await?.is_some() || load(store, &e.name).await?.is_some() {
        return Err(Error::bad_request(format!(
            "a bank named {} exists; an exchange makes its own bank",
            e.name
        )));
    }
    hma::create_bank(store, catalog, actor, default_threshold, &e.name, 1.0).await?;
    db::hma::insert_exchange(store, &e.row()).await?;
    Ok(())
}

/// Writes an exchange's settings (`enabled`, `interval_seconds`, `config`).
pub async fn save(store: &Store, e: &Exchange) -> Result<()> {
    Ok(db::hma::update_exchange(store, &e.row()).await?)
}

/// Deletes an exchange, its fetch state and its bank; nothing when there
/// is no such exchange.
pub async fn delete(store: &Store, catalog: &Catalog, actor: &str, name: &str) -> Result<()> {
    if load(store, name).await?.is_some() {
        db::hma::delete_exchange(store, name).await?;
        if let Some(bank) = db::bank_by_name(store, name).await? {
            hma::delete_bank(store, catalog, actor, &bank).await?;
        }
    }
    Ok(())
}

// ---- fetch status ----

/// An exchange's fetch status: HMA's `FetchStatus` (times in Unix
/// seconds), and Bulwark's `last_error` and `skipped_signals`. Fields in
/// sorted order, as HMA's JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FetchStatus {
    /// The checkpoint's time.
    pub checkpoint_ts: i64,
    /// Items applied over every fetch.
    pub fetched_items: i64,
    /// Why the last fetch failed.
    pub last_error: Option<String>,
    /// When the last fetch ended.
    pub last_fetch_complete_ts: Option<i64>,
    /// Whether it succeeded.
    pub last_fetch_succeeded: Option<bool>,
    /// When the running fetch started.
    pub running_fetch_start_ts: Option<i64>,
    /// Signals skipped for their type ([`Skipped`]), `{}` when none.
    pub skipped_signals: Value,
    /// The last page said no more followed.
    pub up_to_date: bool,
}

impl From<ExchangeStatusRow> for FetchStatus {
    fn from(r: ExchangeStatusRow) -> FetchStatus {
        let secs = |ms: Option<i64>| ms.map(|ms| ms / 1000);
        FetchStatus {
            checkpoint_ts: r.checkpoint_ts,
            fetched_items: r.fetched_items,
            last_error: r.last_error,
            last_fetch_complete_ts: secs(r.last_fetch_complete_ts),
            last_fetch_succeeded: r.last_fetch_succeeded,
            running_fetch_start_ts: secs(r.running_fetch_start_ts),
            skipped_signals: r
                .checkpoint
                .and_then(|c| serde_json::from_str::<Value>(&c).ok())
                .and_then(|c| c.get("skipped").cloned())
                .unwrap_or_else(|| Value::Object(Map::new())),
            up_to_date: r.up_to_date,
        }
    }
}

/// An exchange's fetch status.
pub async fn status(store: &Store, name: &str) -> Result<FetchStatus> {
    Ok(db::hma::exchange_status(store, name).await?.into())
}

/// Longest a fetch counts as running: a claim older than this was lost
/// (its process ended) and another fetch may start.
pub const FETCH_CLAIM_MS: i64 = 3_600_000;

/// Starts a fetch at `now` (ms): 409 while another runs (one claimed less
/// than [`FETCH_CLAIM_MS`] before).
pub async fn claim(store: &Store, name: &str, now: i64) -> Result<()> {
    if db::hma::claim_fetch(store, name, now).await? {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "exchange {name} is fetching already"
        )))
    }
}

/// The checkpoint a fetch starts from (`null` before the first).
pub async fn checkpoint(store: &Store, name: &str) -> Result<Value, sqlx::Error> {
    Ok(db::hma::checkpoint(store, name)
        .await?
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or(Value::Null))
}

/// A page's checkpoint carrying `skipped`: the counts of signals skipped
/// for their type over every fetch so far (shown by the status as
/// `skipped_signals`). A page that is the whole remote list (`full`)
/// replaces the counts.
pub fn with_skipped(mut next: Value, previous: &Value, page: &Skipped, full: bool) -> Value {
    let mut total: Skipped = if full {
        Skipped::new()
    } else {
        previous
            .get("skipped")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    for (k, n) in page {
        *total.entry(k.clone()).or_default() += n;
    }
    if let Value::Object(m) = &mut next
        && !total.is_empty()
    {
        m.insert(
            "skipped".into(),
            serde_json::to_value(&total).unwrap_or_default(),
        );
    }
    next
}

/// A fetched page, as the fetch status records it.
#[derive(Debug, Clone)]
pub struct PageDone<'a> {
    /// The checkpoint after the page.
    pub checkpoint: Value,
    /// Its time, Unix seconds (HMA's `checkpoint_ts`).
    pub checkpoint_ts: i64,
    /// Items applied.
    pub applied: i64,
    /// More pages follow.
    pub more: bool,
    /// The page was the whole remote list.
    pub full: bool,
    /// Signals skipped on the page.
    pub skipped: &'a Skipped,
}

/// Stores a page's checkpoint (with the skipped counts so far, see
/// [`with_skipped`]) and adds its items to the count; the checkpoint
/// stored, from which the next page is fetched.
pub async fn record_page(
    store: &Store,
    name: &str,
    previous: &Value,
    p: PageDone<'_>,
) -> Result<Value, sqlx::Error> {
    let checkpoint = with_skipped(p.checkpoint, previous, p.skipped, p.full);
    db::hma::record_page(
        store,
        name,
        &checkpoint.to_string(),
        p.checkpoint_ts,
        p.applied,
        !p.more,
    )
    .await?;
    Ok(checkpoint)
}

/// Ends a fetch at `now` (ms): no longer running, succeeded or failed with
/// `error` (as a client may see it).
pub async fn finish(store: &Store, name: &str, now: i64, error: Option<&str>) -> Result<()> {
    Ok(db::hma::finish_fetch(store, name, now, error).await?)
}

/// The enabled exchanges whose interval has passed since their last fetch
/// ended, at `now` (ms).
pub async fn due(store: &Store, now: i64) -> Result<Vec<String>> {
    Ok(db::hma::enabled_exchanges(store)
        .await?
        .into_iter()
        .filter(|(_, every, last)| !last.is_some_and(|l| now - l < every * 1000))
        .map(|(name, _, _)| name)
        .collect())
}

// ---- fetched items and the content they were banked as ----

/// The content a fetched item (by its remote key) was banked as.
pub async fn mapped(store: &Store, exchange: &str, key: &str) -> Result<Option<i64>> {
    Ok(db::hma::followed(store, exchange, key).await?)
}

/// Records that a fetched item was banked as `local`.
pub async fn map(store: &Store, exchange: &str, key: &str, local: i64) -> Result<()> {
    Ok(db::hma::follow(store, exchange, key, local).await?)
}

/// Removes a fetched item: its content from the bank (audited), then the
/// map entry. Nothing when it is not mapped.
pub async fn unmap(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    exchange: &str,
    key: &str,
) -> Result<()> {
    if let Some(local) = mapped(store, exchange, key).await? {
        hma::delete_content(store, catalog, actor, bank, local).await?;
        db::hma::unfollow(store, exchange, key).await?;
    }
    Ok(())
}

/// Removes every fetched item not in `keep` (after a page that is the
/// whole remote list).
pub async fn unmap_missing(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    exchange: &str,
    keep: &HashSet<&str>,
) -> Result<(), String> {
    let held = db::hma::followed_ids(store, exchange)
        .await
        .map_err(|e| e.to_string())?;
    for k in held {
        if !keep.contains(k.as_str()) {
            unmap(store, catalog, actor, bank, exchange, &k)
                .await
                .map_err(|e| e.message)?;
        }
    }
    Ok(())
}

/// Whether a fetched item is banked already as `want` (same signals, note
/// and metadata), so that a re-read list changes only what changed.
/// `want.signals` must be sorted by type and value.
pub async fn unchanged(
    store: &Store,
    exchange: &str,
    key: &str,
    want: &NewContent,
) -> Result<bool> {
    let Some(local) = mapped(store, exchange, key).await? else {
        return Ok(false);
    };
    let Some(c) = db::hma::content(store, local).await? else {
        return Ok(false);
    };
    let mut have = db::signals_of(store, local).await?;
    have.sort_by(|a, b| (&a.signal_type, &a.value).cmp(&(&b.signal_type, &b.value)));
    let json = |m: Option<&str>| m.and_then(|m| serde_json::from_str::<Value>(m).ok());
    let same_meta = json(c.metadata.as_deref()) == json(want.metadata.as_deref());
    Ok(have == want.signals && c.note == want.note && same_meta)
}

// ---- exchange APIs' credentials ----

fn credentials_seal(api: &str) -> String {
    format!("hma-api:{api}")
}

/// An API's credentials, opened.
pub async fn credentials(store: &Store, kek: &Kek, api: &str) -> Result<Option<Value>> {
    let Some(sealed) = db::hma::credentials(store, api).await? else {
        return Ok(None);
    };
    let plain = kek
        .open(&credentials_seal(api), &sealed)
        .map_err(Error::internal)?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(Error::internal)
}

/// Whether an API's credentials are set, and whether it takes any: HMA's
/// answer for an exchange API (fields in sorted order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiAuth {
    /// Its credentials are set.
    pub has_set_authentification: bool,
    /// It takes credentials.
    pub supports_authentification: bool,
}

/// Whether an API's credentials are set.
pub async fn has_credentials(store: &Store, api: &str) -> Result<bool> {
    Ok(db::hma::has_credentials(store, api).await?)
}

/// Stores an API's credentials sealed under the key-encryption key.
pub async fn set_credentials(
    store: &Store,
    kek: &Kek,
    api: &str,
    creds: &Map<String, Value>,
) -> Result<()> {
    let sealed = kek.seal(
        &credentials_seal(api),
        Value::Object(creds.clone()).to_string().as_bytes(),
    );
    Ok(db::hma::set_credentials(store, api, &sealed).await?)
}

/// Unsets an API's credentials.
pub async fn unset_credentials(store: &Store, api: &str) -> Result<()> {
    Ok(db::hma::delete_credentials(store, api).await?)
}

// ---- the change feed a follower reads ----

/// A signal in the change feed (fields in sorted order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedSignal {
    /// PDQ quality.
    pub quality: Option<i64>,
    /// `pdq`, `md5`, a text type…
    pub signal_type: String,
    /// Its value.
    pub value: String,
}

impl From<SignalRow> for FeedSignal {
    fn from(s: SignalRow) -> FeedSignal {
        FeedSignal {
            quality: s.quality,
            signal_type: s.signal_type,
            value: s.value,
        }
    }
}

/// One content item in the change feed, in its current state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FeedItem {
    /// Deleted since.
    Deleted {
        /// Its id.
        content_id: i64,
        /// Always true.
        deleted: bool,
        /// The change.
        seq: i64,
    },
    /// Present.
    Present {
        /// Its id.
        content_id: i64,
        /// Always false.
        deleted: bool,
        /// Matching on now.
        enabled: bool,
        /// Its metadata (a JSON object).
        metadata: Option<Value>,
        /// Its note.
        note: Option<String>,
        /// The change.
        seq: i64,
        /// Its signals.
        signals: Vec<FeedSignal>,
    },
}

/// A page of the change feed (fields in sorted order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feed {
    /// Each item changed once, in change order.
    pub changes: Vec<FeedItem>,
    /// The page was full: ask again from `next_after`.
    pub more: bool,
    /// The change id to ask from next.
    pub next_after: i64,
}

/// The content of a bank changed after change `after` (up to `limit`
/// changes, 1..=5000), each item once in its current state (or deleted).
pub async fn changes(store: &Store, bank: &BankRow, after: i64, limit: i64) -> Result<Feed> {
    let pairs = db::hma::bank_content_changes(store, bank.id, after, limit).await?;
    let mut last = after;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let now = db::now_ms();
    // Latest change of each content first-seen from the end, so that the
    // answer carries each item once, in its current state.
    for &(seq, id) in pairs.iter().rev() {
        last = last.max(seq);
        if !seen.insert(id) {
            continue;
        }
        let Some(c) = db::hma::content_in_bank(store, bank.id, id).await? else {
            out.push(FeedItem::Deleted {
                content_id: id,
                deleted: true,
                seq,
            });
            continue;
        };
        let sigs = db::signals_of(store, id).await?;
        out.push(FeedItem::Present {
            content_id: id,
            deleted: false,
            enabled: c.enabled || c.disabled_until.is_some_and(|t| t <= now),
            metadata: c
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str::<Value>(m).ok()),
            note: c.note,
            seq,
            signals: sigs.into_iter().map(FeedSignal::from).collect(),
        });
    }
    out.reverse();
    Ok(Feed {
        changes: out,
        more: pairs.len() as i64 == limit,
        next_after: last,
    })
}
