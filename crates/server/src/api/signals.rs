//! Text and entity signals in the service (issue 18, docs/SIGNALS.md).
//!
//! - Banks hold text hashes and entities as ordinary signals (the `signals`
//!   table, `kind = signals` content), imported and exported in the list
//!   formats (`phone +E164`, `text_hash HEX`, …). Entities match exactly by
//!   canonical value; text hashes by Hamming distance ≤ [`TEXT_HASH_RADIUS`]
//!   (through [`TextIndexCache`]: an LSH index over the banked text hashes).
//! - Keyword/regex rules: a bank may carry a rule set with a language
//!   (`PUT /v1/banks/{bank}/rules`). Rule matches explain which rule matched
//!   which span, for reviewers: they are marked `review_only` and nothing
//!   acts on them automatically.
//! - `POST /v1/match` with JSON `text` (and explicit entity signals): see
//!   [`match_text`].
//! - Reports: the text of each verified reported message is analysed and
//!   matched against every bank ([`ReportSignals`]), stored with the report
//!   and shown in `GET /v1/reports/{id}` as `text_signals`.
//! - Rescue photo banks (NGO photos of missing or trafficked persons): kept
//!   in their own tables, apart from `banks`, so that no upload, voucher,
//!   pdata, export or HMA path can reach them. Only report intake matches
//!   against them ([`ReportSignals::compute`]), and only keys an admin
//!   designated (`POST /v1/rescue/reviewers`) see those matches.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bulwark_banks::{AnySignal, TextSignal, TextSignalType};
use bulwark_pdq::PdqHash;
use bulwark_signals::{
    ExtractOptions, IndexParams, RuleBank, RuleBankSpec, RuleSpec, TextHash, TextHashIndex,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{JsonBody, Upload, bank_or_404};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, Store, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};

pub use bulwark_signals::TEXT_HASH_RADIUS;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/signal_types", get(signal_types))
        .route(
            "/v1/banks/{bank}/rules",
            get(rules_get).put(rules_put).delete(rules_delete),
        )
        .route("/v1/rescue/banks", get(rescue_list).post(rescue_create))
        .route("/v1/rescue/banks/{bank}/photos", post(rescue_add))
        .route("/v1/rescue/reviewers", post(reviewer_grant))
        .route("/v1/rescue/reviewers/{key_id}", delete(reviewer_revoke))
}

/// `GET /v1/signal_types`: every signal type banks hold, with how it matches.
pub async fn signal_types(caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let mut out: Vec<Value> = bulwark_banks::SignalType::ALL
        .iter()
        .map(|t| {
            let how = if *t == bulwark_banks::SignalType::Pdq {
                "hamming"
            } else {
                "exact"
            };
            json!({"name": t.name(), "kind": "media", "match": how})
        })
        .collect();
    for t in TextSignalType::all() {
        let (kind, how) = match t {
            TextSignalType::TextHash => ("text", "hamming"),
            TextSignalType::Entity(_) => ("entity", "exact"),
        };
        let mut j = json!({"name": t.name(), "kind": kind, "match": how});
        if t == TextSignalType::TextHash {
            j["radius"] = json!(TEXT_HASH_RADIUS);
        }
        out.push(j);
    }
    Ok(Json(json!({"signal_types": out})))
}

fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg)
}

/// One text signal of a query, with where it came from in the text.
#[derive(Debug, Clone)]
struct Query {
    signal: TextSignal,
    span: Option<std::ops::Range<usize>>,
}

/// The signals of a text: its hash (when it has words) and its entities.
pub fn analyse(
    text: &str,
    opts: &ExtractOptions,
) -> (Option<TextHash>, Vec<bulwark_signals::Entity>) {
    (
        TextHash::of_text(text),
        bulwark_signals::extract(text, opts),
    )
}

fn excerpt(text: &str, span: &std::ops::Range<usize>) -> Option<String> {
    text.get(span.clone())
        .map(|s| s.chars().take(200).collect())
}

/// Every match of a text and of explicit text/entity signals against the
/// banks (entities exactly, the text hash within [`TEXT_HASH_RADIUS`], the
/// banks' rules on the text). Each match carries an `explanation`: which
/// entity or rule matched which byte span of the text. Rule matches are
/// `review_only`. Also returns the signals computed from the text.
pub async fn match_text(
    state: &AppState,
    text: Option<&str>,
    opts: &ExtractOptions,
    explicit: &[TextSignal],
    banks: Option<&HashSet<String>>,
) -> Result<(Vec<Value>, Value), ApiError> {
    let mut queries: Vec<Query> = explicit
        .iter()
        .map(|s| Query {
            signal: s.clone(),
            span: None,
        })
        .collect();
    let mut computed = json!(null);
    if let Some(t) = text {
        let (hash, entities) = analyse(t, opts);
        computed = json!({
            "text_hash": hash.map(|h| h.to_string()),
            "entities": entities,
        });
        if let Some(h) = hash {
            queries.push(Query {
                signal: TextSignal::TextHash(h),
                span: None,
            });
        }
        for e in entities {
            queries.push(Query {
                signal: TextSignal::Entity {
                    kind: e.kind,
                    value: e.value,
                },
                span: Some(e.span),
            });
        }
    }
    let mut seen = HashSet::new();
    queries.retain(|q| seen.insert(q.signal.clone()));
    let mut out = Vec::new();
    let st = &state.store;
    let mut hashes = Vec::new();
    for q in &queries {
        match &q.signal {
            TextSignal::TextHash(h) => hashes.push(*h),
            TextSignal::Entity { kind, value } => {
                let rows = sqlx::query(&st.sql(
                    "SELECT bank_id, content_id FROM signals WHERE signal_type = ? AND value = ?",
                ))
                .bind(kind.name())
                .bind(value)
                .fetch_all(&st.pool)
                .await?;
                let hits = rows
                    .iter()
                    .map(|r| Ok((r.try_get("bank_id")?, r.try_get("content_id")?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                for h in state.catalog.filter_exact(hits, banks) {
                    state.metrics.matched(&h.bank, 1);
                    let mut explanation = json!({"entity": kind.name(), "value": value});
                    if let (Some(span), Some(t)) = (&q.span, text) {
                        explanation["span"] = json!([span.start, span.end]);
                        explanation["text"] = json!(excerpt(t, span));
                    }
                    out.push(json!({
                        "bank": &*h.bank,
                        "content_id": h.content_id,
                        "signal_type": kind.name(),
                        "query_signal": value,
                        "distance": 0,
                        "explanation": explanation,
                    }));
                }
            }
        }
    }
    if !hashes.is_empty() {
        // Through the text-hash index (LSH over the banked text hashes).
        let mut best: BTreeMap<(i64, i64), (u32, TextHash)> = BTreeMap::new();
        let cached = state.text_index.current(st, &state.catalog).await?;
        for q in &hashes {
            for (entry, d) in cached.index.search(q, TEXT_HASH_RADIUS) {
                let Some(key) = cached.refs[entry as usize] else {
                    continue;
                };
                if best.get(&key).is_none_or(|(b, _)| d < *b) {
                    best.insert(key, (d, *q));
                }
            }
        }
        drop(cached);
        let by_content: BTreeMap<i64, (u32, TextHash)> =
            best.iter().map(|((_, c), v)| (*c, *v)).collect();
        for h in state
            .catalog
            .filter_exact(best.keys().copied().collect(), banks)
        {
            let Some((d, q)) = by_content.get(&h.content_id) else {
                continue;
            };
            state.metrics.matched(&h.bank, 1);
            out.push(json!({
                "bank": &*h.bank,
                "content_id": h.content_id,
                "signal_type": bulwark_banks::TEXT_HASH_NAME,
                "query_signal": q.to_string(),
                "distance": d,
                "explanation": {
                    "radius": TEXT_HASH_RADIUS,
                    "jaccard_estimate": (1.0 - 2.0 * f64::from(*d) / 256.0).max(0.0),
                },
            }));
        }
    }
    if let Some(t) = text {
        out.extend(rule_matches(state, t, &opts.languages, banks).await?);
    }
    Ok((out, computed))
}

/// Compiled rule banks by bank id, each with the `rule_banks.version` it
/// was compiled from: a query compiles a bank's rules only when its
/// version changed (a `PUT` on any replica bumps it).
#[derive(Default)]
pub struct RuleCache(std::sync::RwLock<std::collections::HashMap<i64, (i64, Arc<RuleBank>)>>);

impl RuleCache {
    fn get(&self, bank: i64, version: i64) -> Option<Arc<RuleBank>> {
        let m = self.0.read().unwrap_or_else(|e| e.into_inner());
        m.get(&bank)
            .filter(|(v, _)| *v == version)
            .map(|(_, b)| Arc::clone(b))
    }

    fn put(&self, bank: i64, version: i64, rules: Arc<RuleBank>) {
        let mut m = self.0.write().unwrap_or_else(|e| e.into_inner());
        m.insert(bank, (version, rules));
    }

    fn keep_only(&self, banks: &HashSet<i64>) {
        let mut m = self.0.write().unwrap_or_else(|e| e.into_inner());
        m.retain(|b, _| banks.contains(b));
    }

    /// Banks compiled and cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The compiled rules of a bank at `version`: cached, or read and
    /// compiled (`None`: the bank has no rules now, or they do not compile).
    async fn rules_of(
        &self,
        st: &Store,
        bank: i64,
        name: &str,
        version: i64,
    ) -> Result<Option<Arc<RuleBank>>, ApiError> {
        if let Some(b) = self.get(bank, version) {
            return Ok(Some(b));
        }
        let Some(r) =
            sqlx::query(&st.sql("SELECT spec, version FROM rule_banks WHERE bank_id = ?"))
                .bind(bank)
                .fetch_optional(&st.pool)
                .await?
        else {
            return Ok(None);
        };
        let spec: RuleBankSpec =
            serde_json::from_str(&r.try_get::<String, _>("spec")?).map_err(ApiError::internal)?;
        let version: i64 = r.try_get("version")?;
        match RuleBank::new(spec) {
            Ok(b) => {
                let b = Arc::new(b);
                self.put(bank, version, Arc::clone(&b));
                Ok(Some(b))
            }
            Err(e) => {
                tracing::error!("rules of bank {name}: {e}");
                Ok(None)
            }
        }
    }
}

/// The rule matches of every enabled bank with rules (within `banks`) whose
/// language applies to the text ([`RuleBank::applies`]: the declared
/// `languages`, else the text's scripts and the languages identified in
/// them). Compiled rule sets come from
/// [`RuleCache`].
async fn rule_matches(
    state: &AppState,
    text: &str,
    languages: &[String],
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Value>, ApiError> {
    let st = &state.store;
    let rows = sqlx::query(
        "SELECT b.id, b.name, b.enabled, r.version FROM rule_banks r JOIN banks b ON b.id = r.bank_id ORDER BY b.name",
    )
    .fetch_all(&st.pool)
    .await?;
    let folded = bulwark_signals::fold(text);
    // The text's languages per script, when the caller did not declare them.
    let detected = if languages.is_empty() && !rows.is_empty() {
        bulwark_signals::Languages::of(text)
    } else {
        bulwark_signals::Languages::default()
    };
    let mut out = Vec::new();
    let mut present = HashSet::new();
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        present.insert(id);
        let name: String = r.try_get("name")?;
        if r.try_get::<i64, _>("enabled")? == 0 || banks.is_some_and(|b| !b.contains(&name)) {
            continue;
        }
        let Some(bank) = state
            .text_index
            .rules
            .rules_of(st, id, &name, r.try_get("version")?)
            .await?
        else {
            continue;
        };
        if !bank.applies(&folded, languages, &detected) {
            continue;
        }
        for m in bank.explain_folded(text, &folded) {
            out.push(json!({
                "bank": name,
                "content_id": null,
                "signal_type": "rule",
                "review_only": true,
                "explanation": {
                    "rule": m.rule,
                    "description": m.description,
                    "language": m.language,
                    "span": [m.span.start, m.span.end],
                    "text": m.text,
                },
            }));
        }
    }
    state.text_index.rules.keep_only(&present);
    Ok(out)
}

/// The banked text hashes in a [`TextHashIndex`], kept in memory and brought
/// up to date before a search by following the `changes` log, as the
/// catalog does for PDQ: for each change not applied yet, the content's
/// entries are marked dead and its `text_hash` rows re-read by
/// `content_id` (an index lookup), a deleted bank's entries are marked dead
/// in memory. Between writes a search costs one `MAX(seq)` lookup on the
/// primary key and the index lookup; no request counts or scans the
/// `signals` table. The one full read is the first load, which
/// [`TextIndexCache::warm`] does at start (requests wait for it without a
/// connection). Dead entries are dropped by [`TextIndexCache::compact`]
/// from the refresh loop, off the request path.
#[derive(Default)]
pub struct TextIndexCache {
    inner: tokio::sync::RwLock<CachedTextIndex>,
    refresh: tokio::sync::Mutex<()>,
    /// Compiled rule banks (kept here, beside the text index, so that the
    /// service state gains no field).
    pub rules: RuleCache,
}

/// A loaded text-hash index.
pub struct CachedTextIndex {
    /// Every change ≤ `floor` is applied (`None`: never loaded).
    floor: Option<i64>,
    /// Changes above `floor` applied already (a gap below them is open).
    above: std::collections::BTreeSet<i64>,
    /// The index; entry ids are positions in `refs`.
    pub index: TextHashIndex,
    /// Per entry: (bank id, content id); `None` once removed.
    pub refs: Vec<Option<(i64, i64)>>,
    /// Entries in `index` whose `refs` is `None`.
    dead: usize,
}

impl Default for CachedTextIndex {
    fn default() -> Self {
        CachedTextIndex {
            floor: None,
            above: std::collections::BTreeSet::new(),
            index: TextHashIndex::new(IndexParams::DEFAULT),
            refs: Vec::new(),
            dead: 0,
        }
    }
}

impl CachedTextIndex {
    /// Marks dead every live entry whose content or bank is in the sets.
    fn kill(&mut self, contents: &HashSet<i64>, banks: &HashSet<i64>) {
        if contents.is_empty() && banks.is_empty() {
            return;
        }
        for r in &mut self.refs {
            if r.is_some_and(|(b, c)| contents.contains(&c) || banks.contains(&b)) {
                *r = None;
                self.dead += 1;
            }
        }
    }

    fn add(&mut self, entries: Vec<(TextHash, (i64, i64))>) {
        for (h, key) in entries {
            let e = self.refs.len() as u64;
            self.index.insert(&h, e);
            self.refs.push(Some(key));
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.index.len() - self.dead
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every banked text hash, read as the catalog reads PDQ hashes at load:
/// one aggregated text per 100,000 rows, in primary-key order.
async fn all_text_rows(st: &Store) -> Result<Vec<(TextHash, (i64, i64))>, ApiError> {
    let mut out = Vec::new();
    let mut after = 0i64;
    while let Some(page) = db::signal_page(st, bulwark_banks::TEXT_HASH_NAME, after).await? {
        after = page.last;
        for row in page.rows() {
            let (c, b, v) = row.map_err(ApiError::internal)?;
            if let Ok(h) = v.parse::<TextHash>() {
                out.push((h, (b, c)));
            }
        }
    }
    Ok(out)
}

/// The banked text hashes of some content (by the `signals_content` index).
async fn text_rows_of(
    st: &Store,
    contents: &[i64],
) -> Result<Vec<(TextHash, (i64, i64))>, ApiError> {
    let mut out = Vec::new();
    for chunk in contents.chunks(500) {
        // Ids are integers formatted here: no injection.
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // `signal_type || ''` keeps the planner on `signals_content` (the
        // `(signal_type, value)` index would visit every banked text hash).
        let rows = sqlx::query(&st.sql(&format!(
            "SELECT id, bank_id, content_id, value FROM signals WHERE content_id IN ({list}) AND signal_type || '' = ?"
        )))
        .bind(bulwark_banks::TEXT_HASH_NAME)
        .fetch_all(&st.pool)
        .await?;
        for r in &rows {
            if let Ok(h) = r.try_get::<String, _>("value")?.parse::<TextHash>() {
                out.push((
                    r.try_get::<i64, _>("id")?,
                    h,
                    (r.try_get("bank_id")?, r.try_get("content_id")?),
                ));
            }
        }
    }
    out.sort_unstable_by_key(|e| e.0);
    Ok(out.into_iter().map(|(_, h, k)| (h, k)).collect())
}

impl TextIndexCache {
    /// The index, current as of the latest change in the store.
    pub async fn current(
        &self,
        st: &Store,
        catalog: &crate::catalog::Catalog,
    ) -> Result<tokio::sync::RwLockReadGuard<'_, CachedTextIndex>, ApiError> {
        let top = latest_change(st).await?;
        {
            let r = self.inner.read().await;
            if r.floor.is_some_and(|f| f >= top) {
                return Ok(r);
            }
        }
        let _one = self.refresh.lock().await;
        let floor = self.inner.read().await.floor;
        match floor {
            None => {
                // Changes after this are replayed next time (idempotently:
                // a content's entries are replaced). Below the catalog's
                // floor no change can still commit.
                let top = latest_change(st).await?.min(catalog.applied_seq().max(0));
                let entries = all_text_rows(st).await?;
                let refs: Vec<Option<(i64, i64)>> = entries.iter().map(|(_, k)| Some(*k)).collect();
                let index = tokio::task::spawn_blocking(move || {
                    TextHashIndex::build(
                        IndexParams::DEFAULT,
                        entries.iter().enumerate().map(|(e, (h, _))| (*h, e as u64)),
                    )
                })
                .await
                .map_err(ApiError::internal)?;
                let mut w = self.inner.write().await;
                *w = CachedTextIndex {
                    floor: Some(top),
                    above: std::collections::BTreeSet::new(),
                    index,
                    refs,
                    dead: 0,
                };
            }
            Some(floor) => self.follow(st, catalog, floor).await?,
        }
        Ok(self.inner.read().await)
    }

    /// Applies the changes above `floor` not applied yet.
    async fn follow(
        &self,
        st: &Store,
        catalog: &crate::catalog::Catalog,
        floor: i64,
    ) -> Result<(), ApiError> {
        // Read first: every change ≤ the catalog's floor that exists is
        // visible to the reads below; the others never will be.
        let settled = catalog.applied_seq();
        let done = self.inner.read().await.above.clone();
        let mut after = floor;
        let mut seqs = Vec::new();
        let (mut contents, mut banks) = (Vec::new(), Vec::new());
        loop {
            let rows = sqlx::query(&st.sql(
                "SELECT seq, bank_id, content_id FROM changes WHERE seq > ? ORDER BY seq LIMIT 20000",
            ))
            .bind(after)
            .fetch_all(&st.pool)
            .await?;
            for r in &rows {
                let seq: i64 = r.try_get("seq")?;
                after = seq;
                if done.contains(&seq) {
                    continue;
                }
                seqs.push(seq);
                match (
                    r.try_get::<Option<i64>, _>("bank_id")?,
                    r.try_get::<Option<i64>, _>("content_id")?,
                ) {
                    (_, Some(c)) => contents.push(c),
                    (Some(b), None) => banks.push(b),
                    (None, None) => {}
                }
            }
            if rows.len() < 20_000 {
                break;
            }
        }
        contents.sort_unstable();
        contents.dedup();
        banks.sort_unstable();
        banks.dedup();
        // Banks that no longer exist (ids are never reused).
        let mut gone_banks = HashSet::new();
        for b in banks {
            let exists = sqlx::query(&st.sql("SELECT id FROM banks WHERE id = ?"))
                .bind(b)
                .fetch_optional(&st.pool)
                .await?
                .is_some();
            if !exists {
                gone_banks.insert(b);
            }
        }
        let fresh = text_rows_of(st, &contents).await?;
        let mut w = self.inner.write().await;
        w.kill(&contents.into_iter().collect::<HashSet<i64>>(), &gone_banks);
        w.add(fresh);
        w.above.extend(seqs);
        let mut f = floor;
        while w.above.remove(&(f + 1)) {
            f += 1;
        }
        // A gap the catalog has passed is a change that never committed.
        if settled > f {
            f = settled;
            w.above.retain(|s| *s > settled);
            while w.above.remove(&(f + 1)) {
                f += 1;
            }
        }
        w.floor = Some(f);
        Ok(())
    }

    /// Loads the index now (at start, so that no request does the full read).
    pub async fn warm(&self, st: &Store, catalog: &crate::catalog::Catalog) {
        let started = std::time::Instant::now();
        match self.current(st, catalog).await {
            Ok(c) => tracing::info!(
                "text-hash index loaded: {} entries in {:.2} s",
                c.len(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => tracing::warn!("loading the text-hash index failed: {}", e.message),
        }
    }

    /// Drops dead entries once they are over a quarter of the index (and
    /// over 4,096): the tables are rebuilt from the live entries on a
    /// blocking thread while searches go on, then swapped in. Called from
    /// the refresh loop.
    pub async fn compact(&self) {
        let _one = self.refresh.lock().await;
        let live = {
            let r = self.inner.read().await;
            if r.dead <= (r.index.len() / 4).max(4096) {
                return;
            }
            r.index
                .entries()
                .filter(|(_, e)| r.refs[*e as usize].is_some())
                .collect::<Vec<_>>()
        };
        let Ok(index) =
            tokio::task::spawn_blocking(move || TextHashIndex::build(IndexParams::DEFAULT, live))
                .await
        else {
            return;
        };
        let mut w = self.inner.write().await;
        w.index = index;
        w.dead = 0;
    }
}

async fn latest_change(st: &Store) -> Result<i64, ApiError> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM changes")
            .fetch_one(&st.pool)
            .await?
            .try_get("s")?,
    )
}

/// Parses the text/entity part of a `/v1/match` `signals` object entry.
pub fn parse_text_signals(
    t: TextSignalType,
    values: &[&str],
    out: &mut Vec<TextSignal>,
) -> Result<(), ApiError> {
    for v in values {
        out.push(
            t.parse(v)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    Ok(())
}

/// Analysis options from a request's `region` (CLDR id such as `GB`: how
/// national phone numbers are read) and `language` (a BCP 47 tag or a list:
/// the text's languages, which choose the rule banks that run on it; absent,
/// the text's scripts and the languages identified in them choose, see
/// [`RuleBank::applies`]).
pub fn options(
    region: Option<&Value>,
    language: Option<&Value>,
) -> Result<ExtractOptions, ApiError> {
    let mut o = match region {
        None | Some(Value::Null) => ExtractOptions::default(),
        Some(Value::String(r)) => {
            ExtractOptions::with_region(r).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "`region` must be a region id such as \"GB\"",
            ));
        }
    };
    let bad = || {
        ApiError::bad_request(
            "`language` must be a BCP 47 tag such as \"en\" or \"ckb\", or a list of at most 16",
        )
    };
    let tag = |v: &Value| -> Result<String, ApiError> {
        v.as_str()
            .map(str::trim)
            .filter(|t| {
                !t.is_empty()
                    && t.len() <= 35
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .map(str::to_string)
            .ok_or_else(bad)
    };
    o.languages = match language {
        None | Some(Value::Null) => Vec::new(),
        Some(v @ Value::String(_)) => vec![tag(v)?],
        Some(Value::Array(a)) if a.len() <= 16 => a.iter().map(tag).collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    Ok(o)
}

/// Largest text `/v1/match` analyses.
pub const MAX_TEXT: usize = 64 << 10;

// ---- rules ----

/// The body of `PUT /v1/banks/{bank}/rules`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesIn {
    language: String,
    rules: Vec<RuleSpec>,
}

/// `PUT /v1/banks/{bank}/rules`: sets the bank's rules and their language.
pub async fn rules_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
    JsonBody(body): JsonBody<RulesIn>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let b = bank_or_404(&state, &bank).await?;
    if body.rules.len() > 10_000 {
        return Err(ApiError::bad_request("at most 10000 rules per bank"));
    }
    let spec = RuleBankSpec {
        name: b.name.clone(),
        language: body.language.trim().to_string(),
        rules: body.rules,
    };
    RuleBank::new(spec.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    sqlx::query(&s.sql(
        "INSERT INTO rule_banks (bank_id, language, spec, updated_at, updated_by, version) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (bank_id) DO UPDATE SET language = excluded.language, spec = excluded.spec, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by, \
         version = CASE WHEN rule_banks.version + 1 > excluded.version THEN rule_banks.version + 1 ELSE excluded.version END",
    ))
    .bind(b.id)
    .bind(&spec.language)
    .bind(serde_json::to_string(&spec).map_err(ApiError::internal)?)
    .bind(now_ms())
    .bind(&caller.key_id)
    // Strictly increasing per bank and never below the write's time (ms):
    // rules deleted and set again do not reuse a version a cache holds.
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "rules.set",
        Some(&b.name),
        None,
        json!({"language": spec.language, "rules": spec.rules.len()}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(rules_json(&spec)))
}

fn rules_json(spec: &RuleBankSpec) -> Value {
    json!({"bank": spec.name, "language": spec.language, "rules": spec.rules, "review_only": true})
}

/// `GET /v1/banks/{bank}/rules`.
pub async fn rules_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let b = bank_or_404(&state, &bank).await?;
    let s = &state.store;
    let row = sqlx::query(&s.sql("SELECT spec FROM rule_banks WHERE bank_id = ?"))
        .bind(b.id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("bank {:?} has no rules", b.name)))?;
    let spec: RuleBankSpec =
        serde_json::from_str(&row.try_get::<String, _>("spec")?).map_err(ApiError::internal)?;
    Ok(Json(rules_json(&spec)))
}

/// `DELETE /v1/banks/{bank}/rules`.
pub async fn rules_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Curator)?;
    let b = bank_or_404(&state, &bank).await?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let n = sqlx::query(&s.sql("DELETE FROM rule_banks WHERE bank_id = ?"))
        .bind(b.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found(format!(
            "bank {:?} has no rules",
            b.name
        )));
    }
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "rules.delete",
        Some(&b.name),
        None,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- rescue photo banks ----

/// Whether the caller is a designated rescue reviewer: a key an admin
/// designated, that can also read reports (curator or admin). The admin
/// role alone does not make one.
pub async fn is_rescue_reviewer(state: &AppState, caller: &Caller) -> Result<bool, ApiError> {
    if !caller.role.allows(Role::Curator) {
        return Ok(false);
    }
    let s = &state.store;
    Ok(
        sqlx::query(&s.sql("SELECT key_id FROM rescue_reviewers WHERE key_id = ?"))
            .bind(&caller.key_id)
            .fetch_optional(&s.pool)
            .await?
            .is_some(),
    )
}

async fn require_rescue(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if is_rescue_reviewer(state, caller).await? {
        Ok(())
    } else {
        Err(forbidden(format!(
            "rescue banks are for designated reviewers only; key {} is not one",
            caller.key_id
        )))
    }
}

/// The body of `POST /v1/rescue/banks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescueBankIn {
    name: String,
    #[serde(default)]
    description: String,
    provider: Option<String>,
    threshold: Option<u32>,
}

/// `POST /v1/rescue/banks` (admin): a photo bank for a rescue organisation.
pub async fn rescue_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<RescueBankIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    super::valid_bank_name(&b.name)?;
    let threshold = b.threshold.unwrap_or(31);
    if threshold > 64 {
        return Err(ApiError::bad_request("threshold must be 0..=64"));
    }
    if b.description.len() > 2000 || b.provider.as_ref().is_some_and(|p| p.len() > 200) {
        return Err(ApiError::bad_request(
            "description is at most 2000 bytes, provider at most 200",
        ));
    }
    let s = &state.store;
    let mut tx = s.begin().await?;
    let r = sqlx::query(&s.sql(
        "INSERT INTO rescue_banks (name, description, provider, threshold, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(&b.name)
    .bind(&b.description)
    .bind(&b.provider)
    .bind(i64::from(threshold))
    .bind(now_ms())
    .bind(&caller.key_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|_| ApiError::conflict(format!("rescue bank {:?} exists", b.name)))?;
    let id: i64 = r.try_get("id")?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "rescue.bank.create",
        None,
        None,
        json!({"rescue_bank": b.name, "provider": b.provider}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": id, "name": b.name, "description": b.description,
                    "provider": b.provider, "threshold": threshold, "kind": "rescue"}),
        ),
    ))
}

/// `GET /v1/rescue/banks`: designated reviewers, or an admin.
pub async fn rescue_list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    if caller.role != Role::Admin {
        require_rescue(&state, &caller).await?;
    }
    let s = &state.store;
    let rows = sqlx::query(
        "SELECT b.id, b.name, b.description, b.provider, b.threshold, b.created_at, \
         (SELECT COUNT(*) FROM rescue_photos p WHERE p.bank_id = b.id) AS photos \
         FROM rescue_banks b ORDER BY b.name",
    )
    .fetch_all(&s.pool)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "id": r.try_get::<i64, _>("id")?,
                "name": r.try_get::<String, _>("name")?,
                "description": r.try_get::<String, _>("description")?,
                "provider": r.try_get::<Option<String>, _>("provider")?,
                "threshold": r.try_get::<i64, _>("threshold")?,
                "photos": r.try_get::<i64, _>("photos")?,
                "created_at": rfc3339(r.try_get("created_at")?),
                "kind": "rescue",
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({"items": items})))
}

/// `POST /v1/rescue/banks/{bank}/photos`: an admin or a designated reviewer
/// adds a photo (multipart `file`, hashed here) or its PDQ hash (JSON
/// `{"pdq": HEX, "quality": N, "note": ".."}`).
pub async fn rescue_add(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
    upload: Upload,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if caller.role != Role::Admin {
        require_rescue(&state, &caller).await?;
    }
    let s = &state.store;
    let bank_row = sqlx::query(&s.sql("SELECT id FROM rescue_banks WHERE name = ?"))
        .bind(&bank)
        .fetch_optional(&s.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no rescue bank named {bank:?}")))?;
    let bank_id: i64 = bank_row.try_get("id")?;
    let (pdq, quality, note) = match upload {
        Upload::File { file, fields } => {
            let file = file
                .ok_or_else(|| ApiError::bad_request("the multipart body has no `file` field"))?;
            let _slot = state.media.upload_slot().await?;
            match state.media.hash(file).await? {
                crate::media::Hashed::Photo { pdq, quality, .. } => {
                    (pdq, Some(quality), fields.get("note").cloned())
                }
                crate::media::Hashed::Video { .. } => {
                    return Err(ApiError::bad_request("rescue banks hold photos only"));
                }
            }
        }
        Upload::Json(v) => {
            let pdq: PdqHash = v["pdq"]
                .as_str()
                .ok_or_else(|| ApiError::bad_request("`pdq` (64 hex digits) is required"))?
                .parse()
                .map_err(|e| ApiError::bad_request(format!("pdq: {e}")))?;
            let quality = match &v["quality"] {
                Value::Null => None,
                q => Some(
                    q.as_u64()
                        .filter(|q| *q <= 100)
                        .ok_or_else(|| ApiError::bad_request("quality must be 0..=100"))?
                        as u32,
                ),
            };
            (pdq, quality, v["note"].as_str().map(str::to_string))
        }
    };
    if quality.is_some_and(|q| q < MIN_QUALITY) {
        return Err(ApiError::bad_request(format!(
            "PDQ quality {} is under {MIN_QUALITY}: too little detail to match reliably",
            quality.unwrap_or(0)
        )));
    }
    let mut tx = s.begin().await?;
    let r = sqlx::query(&s.sql(
        "INSERT INTO rescue_photos (bank_id, pdq, quality, note, added_by, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bank_id, pdq) DO NOTHING RETURNING id",
    ))
    .bind(bank_id)
    .bind(pdq.to_string())
    .bind(quality.map(i64::from))
    .bind(&note)
    .bind(&caller.key_id)
    .bind(now_ms())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = r else {
        return Ok((StatusCode::OK, Json(json!({"duplicate": true}))));
    };
    let id: i64 = r.try_get("id")?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "rescue.photo.add",
        None,
        None,
        json!({"rescue_bank": bank, "photo_id": id}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "rescue_bank": bank, "quality": quality})),
    ))
}

/// Quality floor for rescue photos and for the reported photos matched against them.
const MIN_QUALITY: u32 = 50;

/// The body of `POST /v1/rescue/reviewers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewerIn {
    key_id: String,
}

/// `POST /v1/rescue/reviewers` (admin): designates a key as a rescue reviewer.
pub async fn reviewer_grant(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(r): JsonBody<ReviewerIn>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let s = &state.store;
    let role: Option<String> =
        sqlx::query(&s.sql("SELECT role FROM api_keys WHERE id = ? AND revoked_at IS NULL"))
            .bind(&r.key_id)
            .fetch_optional(&s.pool)
            .await?
            .map(|row| row.try_get("role"))
            .transpose()?;
    let role = role.ok_or_else(|| ApiError::not_found(format!("no live key {:?}", r.key_id)))?;
    if !role
        .parse::<Role>()
        .is_ok_and(|role| role.allows(Role::Curator))
    {
        return Err(ApiError::bad_request(format!(
            "key {} has the {role} role; a rescue reviewer must be able to read reports (curator or admin)",
            r.key_id
        )));
    }
    let mut tx = s.begin().await?;
    sqlx::query(&s.sql(
        "INSERT INTO rescue_reviewers (key_id, granted_by, granted_at) VALUES (?, ?, ?) \
         ON CONFLICT (key_id) DO NOTHING",
    ))
    .bind(&r.key_id)
    .bind(&caller.key_id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "rescue.reviewer.grant",
        None,
        None,
        json!({"key_id": r.key_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"key_id": r.key_id, "rescue_reviewer": true})))
}

/// `DELETE /v1/rescue/reviewers/{key_id}` (admin).
pub async fn reviewer_revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let n = sqlx::query(&s.sql("DELETE FROM rescue_reviewers WHERE key_id = ?"))
        .bind(&key_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found(format!(
            "key {key_id:?} is not a rescue reviewer"
        )));
    }
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "rescue.reviewer.revoke",
        None,
        None,
        json!({"key_id": key_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Matches of a reported photo's PDQ hash against the rescue banks. Called
/// only from report intake.
async fn rescue_matches(
    state: &AppState,
    pdq: &PdqHash,
    quality: u32,
) -> Result<Vec<Value>, ApiError> {
    if quality < MIN_QUALITY {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT p.id, p.pdq, p.note, b.name, b.threshold, b.provider FROM rescue_photos p \
         JOIN rescue_banks b ON b.id = p.bank_id ORDER BY p.id",
    )
    .fetch_all(&state.store.pool)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let Ok(h) = r.try_get::<String, _>("pdq")?.parse::<PdqHash>() else {
            continue;
        };
        let d = pdq.distance(&h);
        if i64::from(d) <= r.try_get::<i64, _>("threshold")? {
            out.push(json!({
                "rescue_bank": r.try_get::<String, _>("name")?,
                "provider": r.try_get::<Option<String>, _>("provider")?,
                "photo_id": r.try_get::<i64, _>("id")?,
                "note": r.try_get::<Option<String>, _>("note")?,
                "distance": d,
            }));
        }
    }
    Ok(out)
}

// ---- reports ----

/// The text signals and rescue matches of one report, computed at intake.
#[derive(Default)]
pub struct ReportSignals {
    /// Per message index: its signals and their matches.
    texts: Vec<(usize, Value, Vec<Value>)>,
    /// Per (message, attachment): rescue matches.
    rescue: Vec<(usize, usize, Vec<Value>)>,
}

impl ReportSignals {
    /// Analyses the text of each verified message (`texts`: message index
    /// and body) and matches it against every bank; matches each opened
    /// photo attachment (`photos`: message, index and the `hashes` summary)
    /// against the rescue banks.
    pub async fn compute(
        state: &AppState,
        texts: &[(usize, String)],
        photos: &[(usize, usize, &Value)],
    ) -> Result<ReportSignals, ApiError> {
        let mut out = ReportSignals::default();
        for (i, t) in texts {
            if t.trim().is_empty() {
                continue;
            }
            let (matches, signals) =
                match_text(state, Some(t), &ExtractOptions::default(), &[], None).await?;
            out.texts.push((*i, signals, matches));
        }
        for (m, a, h) in photos {
            let (Some(pdq), Some(q)) = (
                h["pdq"].as_str().and_then(|p| p.parse::<PdqHash>().ok()),
                h["quality"].as_u64(),
            ) else {
                continue;
            };
            let matches = rescue_matches(state, &pdq, q as u32).await?;
            if !matches.is_empty() {
                out.rescue.push((*m, *a, matches));
            }
        }
        Ok(out)
    }

    /// Stores them with report `id`, in the report's transaction.
    pub async fn store(
        &self,
        s: &Store,
        conn: &mut sqlx::AnyConnection,
        id: i64,
    ) -> Result<(), ApiError> {
        for (i, signals, matches) in &self.texts {
            sqlx::query(&s.sql(
                "INSERT INTO report_text_signals (report_id, msg_idx, signals, matches) VALUES (?, ?, ?, ?)",
            ))
            .bind(id)
            .bind(*i as i64)
            .bind(signals.to_string())
            .bind(Value::Array(matches.clone()).to_string())
            .execute(&mut *conn)
            .await?;
        }
        for (m, a, matches) in &self.rescue {
            sqlx::query(&s.sql(
                "INSERT INTO report_rescue_matches (report_id, msg_idx, idx, matches) VALUES (?, ?, ?, ?)",
            ))
            .bind(id)
            .bind(*m as i64)
            .bind(*a as i64)
            .bind(Value::Array(matches.clone()).to_string())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Adds `text_signals` (every reviewer) and, for a designated rescue
/// reviewer only, `rescue_matches` to a report's JSON.
pub async fn add_to_report(
    state: &AppState,
    caller: &Caller,
    id: i64,
    j: &mut Value,
) -> Result<(), ApiError> {
    let s = &state.store;
    let parse = |t: String| serde_json::from_str::<Value>(&t).unwrap_or(Value::Null);
    let rows = sqlx::query(&s.sql(
        "SELECT msg_idx, signals, matches FROM report_text_signals WHERE report_id = ? ORDER BY msg_idx",
    ))
    .bind(id)
    .fetch_all(&s.pool)
    .await?;
    j["text_signals"] = rows
        .iter()
        .map(|r| {
            let sig = parse(r.try_get("signals")?);
            Ok(json!({
                "message": r.try_get::<i64, _>("msg_idx")?,
                "text_hash": sig["text_hash"],
                "entities": sig["entities"],
                "matches": parse(r.try_get("matches")?),
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?
        .into();
    if is_rescue_reviewer(state, caller).await? {
        let rows = sqlx::query(&s.sql(
            "SELECT msg_idx, idx, matches FROM report_rescue_matches WHERE report_id = ? ORDER BY msg_idx, idx",
        ))
        .bind(id)
        .fetch_all(&s.pool)
        .await?;
        j["rescue_matches"] = rows
            .iter()
            .map(|r| {
                Ok(json!({
                    "message": r.try_get::<i64, _>("msg_idx")?,
                    "attachment": r.try_get::<i64, _>("idx")?,
                    "matches": parse(r.try_get("matches")?),
                }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
            .into();
    }
    Ok(())
}

/// Whether a `/v1/match` `signals` key names a text or entity type.
pub fn text_type(name: &str) -> Option<TextSignalType> {
    if AnySignal::is_type_name(name) && name.parse::<bulwark_banks::SignalType>().is_err() {
        name.parse().ok()
    } else {
        None
    }
}
