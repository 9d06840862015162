//! Text and entity signals (issue 18, docs/SIGNALS.md), without HTTP.
//!
//! - Banks hold text hashes and entities as ordinary signals (the `signals`
//!   table, `kind = signals` content), imported and exported in the list
//!   formats (`phone +E164`, `text_hash HEX`, …). Entities match exactly by
//!   canonical value; text hashes by Hamming distance ≤ [`TEXT_HASH_RADIUS`]
//!   (through [`TextIndexCache`]: an LSH index over the banked text hashes).
//! - Keyword/regex rules: a bank may carry a rule set with a language
//!   ([`put_rules`]). Rule matches explain which rule matched which span,
//!   for reviewers: they are marked `review_only` and nothing acts on them
//!   automatically.
//! - [`match_text`]: a text (and explicit text/entity signals) against the
//!   banks.
//! - Reports: the text of each verified reported message is analysed and
//!   matched against every bank ([`ReportSignals`]), stored with the report
//!   and read back by [`report_signals`].
//! - Rescue photo banks (NGO photos of missing or trafficked persons): kept
//!   in their own tables, apart from `banks`, so that no upload, voucher,
//!   pdata, export or HMA path can reach them. Only report intake matches
//!   against them ([`ReportSignals::compute`]), and only keys an admin
//!   designated ([`grant_reviewer`]) see those matches.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bulwark_banks::{AnySignal, TextSignal, TextSignalType};
use bulwark_pdq::PdqHash;
use bulwark_signals::{
    Entity, ExtractOptions, IndexParams, RuleBank, RuleBankSpec, RuleSpec, TextHash, TextHashIndex,
};
use bulwark_store::{self as db, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::keys::{Caller, Role};
use crate::metrics::Metrics;

pub use bulwark_signals::TEXT_HASH_RADIUS;

/// Largest text [`match_text`] analyses (`/v1/match`'s `text`).
pub const MAX_TEXT: usize = 64 << 10;

/// Quality floor for rescue photos and for the reported photos matched
/// against them.
pub const MIN_QUALITY: u32 = 50;

// ---- signal types ----

/// A signal type banks hold, with how it matches.
#[derive(Debug, Clone, Serialize)]
pub struct SignalTypeInfo {
    /// Its name in lists and `/v1/match`.
    pub name: &'static str,
    /// `media`, `text` or `entity`.
    pub kind: &'static str,
    /// `hamming` or `exact`.
    #[serde(rename = "match")]
    pub how: &'static str,
    /// For the text hash: the largest distance that matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radius: Option<u32>,
}

/// Every signal type banks hold: the media types, then the text hash and the
/// entity types.
pub fn signal_types() -> Vec<SignalTypeInfo> {
    let mut out: Vec<SignalTypeInfo> = bulwark_banks::SignalType::ALL
        .iter()
        .map(|t| SignalTypeInfo {
            name: t.name(),
            kind: "media",
            how: if *t == bulwark_banks::SignalType::Pdq {
                "hamming"
            } else {
                "exact"
            },
            radius: None,
        })
        .collect();
    for t in TextSignalType::all() {
        let (kind, how, radius) = match t {
            TextSignalType::TextHash => ("text", "hamming", Some(TEXT_HASH_RADIUS)),
            TextSignalType::Entity(_) => ("entity", "exact", None),
        };
        out.push(SignalTypeInfo {
            name: t.name(),
            kind,
            how,
            radius,
        });
    }
    out
}

/// Whether a `/v1/match` `signals` key names a text or entity type.
pub fn text_type(name: &str) -> Option<TextSignalType> {
    if AnySignal::is_type_name(name) && name.parse::<bulwark_banks::SignalType>().is_err() {
        name.parse().ok()
    } else {
        None
    }
}

/// Parses the text/entity part of a `/v1/match` `signals` object entry.
pub fn parse_text_signals(
    t: TextSignalType,
    values: &[&str],
    out: &mut Vec<TextSignal>,
) -> Result<()> {
    for v in values {
        out.push(t.parse(v).map_err(|e| Error::bad_request(e.to_string()))?);
    }
    Ok(())
}

/// Analysis options from a request's `region` (CLDR id such as `GB`: how
/// national phone numbers are read) and `language` (a BCP 47 tag or a list:
/// the text's languages, which choose the rule banks that run on it; absent,
/// the text's scripts and the languages identified in them choose, see
/// [`RuleBank::applies`]).
pub fn options(region: Option<&Value>, language: Option<&Value>) -> Result<ExtractOptions> {
    let mut o = match region {
        None | Some(Value::Null) => ExtractOptions::default(),
        Some(Value::String(r)) => {
            ExtractOptions::with_region(r).map_err(|e| Error::bad_request(e.to_string()))?
        }
        Some(_) => {
            return Err(Error::bad_request(
                "`region` must be a region id such as \"GB\"",
            ));
        }
    };
    let bad = || {
        Error::bad_request(
            "`language` must be a BCP 47 tag such as \"en\" or \"ckb\", or a list of at most 16",
        )
    };
    let tag = |v: &Value| -> Result<String> {
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
        Some(Value::Array(a)) if a.len() <= 16 => a.iter().map(tag).collect::<Result<_>>()?,
        Some(_) => return Err(bad()),
    };
    Ok(o)
}

// ---- matching ----

/// The signals of a text: its hash (when it has words) and its entities.
pub fn analyse(text: &str, opts: &ExtractOptions) -> (Option<TextHash>, Vec<Entity>) {
    (
        TextHash::of_text(text),
        bulwark_signals::extract(text, opts),
    )
}

fn excerpt(text: &str, span: &std::ops::Range<usize>) -> Option<String> {
    text.get(span.clone())
        .map(|s| s.chars().take(200).collect())
}

/// The signals computed from a text.
#[derive(Debug, Clone, Serialize)]
pub struct TextSignals {
    /// Its text hash (hex), when it has words.
    pub text_hash: Option<String>,
    /// Its entities.
    pub entities: Vec<Entity>,
}

/// One match of a text, an explicit signal or a rule.
#[derive(Debug, Clone, Serialize)]
pub struct TextMatch {
    /// The bank's name.
    pub bank: String,
    /// The content item matched (`None` for a rule).
    pub content_id: Option<i64>,
    /// The entity type, `text_hash` or `rule`.
    pub signal_type: String,
    /// The query's signal that matched (not for rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_signal: Option<String>,
    /// Hamming distance (0 for an entity; not for rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    /// Rule matches are for review only: nothing acts on them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub review_only: bool,
    /// Why it matched.
    pub explanation: Explanation,
}

/// Why a [`TextMatch`] matched.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Explanation {
    /// An entity, exactly.
    Entity {
        /// Entity type.
        entity: String,
        /// Canonical value.
        value: String,
        /// Where the text holds it (for an entity found in the text).
        #[serde(flatten)]
        at: Option<Found>,
    },
    /// The text hash, within the radius.
    TextHash {
        /// [`TEXT_HASH_RADIUS`].
        radius: u32,
        /// The Jaccard similarity the distance suggests.
        jaccard_estimate: f64,
    },
    /// A bank's rule.
    Rule {
        /// The rule's id.
        rule: String,
        /// The rule's description.
        description: String,
        /// The rule set's language.
        language: String,
        /// Byte span in the text.
        span: [usize; 2],
        /// The text of that span.
        text: String,
    },
}

/// Where in the text an entity was found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// Byte span.
    pub span: [usize; 2],
    /// Its text (at most 200 characters).
    pub text: Option<String>,
}

/// What matching a text needs of the service's state.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The store.
    pub store: &'a Store,
    /// Which banks exist and are enabled, which content is live.
    pub catalog: &'a Catalog,
    /// Match counters.
    pub metrics: &'a Metrics,
    /// The text-hash index and the compiled rules.
    pub text_index: &'a TextIndexCache,
}

/// One text signal of a query, with where it came from in the text.
#[derive(Debug, Clone)]
struct Query {
    signal: TextSignal,
    span: Option<std::ops::Range<usize>>,
}

/// Every match of a text and of explicit text/entity signals against the
/// banks (entities exactly, the text hash within [`TEXT_HASH_RADIUS`], the
/// banks' rules on the text). Each match carries an `explanation`: which
/// entity or rule matched which byte span of the text. Rule matches are
/// `review_only`. Also returns the signals computed from the text.
pub async fn match_text(
    cx: Context<'_>,
    text: Option<&str>,
    opts: &ExtractOptions,
    explicit: &[TextSignal],
    banks: Option<&HashSet<String>>,
) -> Result<(Vec<TextMatch>, Option<TextSignals>)> {
    let mut queries: Vec<Query> = explicit
        .iter()
        .map(|s| Query {
            signal: s.clone(),
            span: None,
        })
        .collect();
    let mut computed = None;
    if let Some(t) = text {
        let (hash, entities) = analyse(t, opts);
        computed = Some(TextSignals {
            text_hash: hash.map(|h| h.to_string()),
            entities: entities.clone(),
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
    let st = cx.store;
    let mut hashes = Vec::new();
    for q in &queries {
        match &q.signal {
            TextSignal::TextHash(h) => hashes.push(*h),
            TextSignal::Entity { kind, value } => {
                let hits = db::exact_holders(st, kind.name(), value).await?;
                for h in cx.catalog.filter_exact(hits, banks) {
                    cx.metrics.matched(&h.bank, 1);
                    let at = match (&q.span, text) {
                        (Some(span), Some(t)) => Some(Found {
                            span: [span.start, span.end],
                            text: excerpt(t, span),
                        }),
                        _ => None,
                    };
                    out.push(TextMatch {
                        bank: h.bank.to_string(),
                        content_id: Some(h.content_id),
                        signal_type: kind.name().to_string(),
                        query_signal: Some(value.clone()),
                        distance: Some(0),
                        review_only: false,
                        explanation: Explanation::Entity {
                            entity: kind.name().to_string(),
                            value: value.clone(),
                            at,
                        },
                    });
                }
            }
        }
    }
    if !hashes.is_empty() {
        // Through the text-hash index (LSH over the banked text hashes).
        let mut best: BTreeMap<(i64, i64), (u32, TextHash)> = BTreeMap::new();
        let cached = cx.text_index.current(st, cx.catalog).await?;
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
        for h in cx
            .catalog
            .filter_exact(best.keys().copied().collect(), banks)
        {
            let Some((d, q)) = by_content.get(&h.content_id) else {
                continue;
            };
            cx.metrics.matched(&h.bank, 1);
            out.push(TextMatch {
                bank: h.bank.to_string(),
                content_id: Some(h.content_id),
                signal_type: bulwark_banks::TEXT_HASH_NAME.to_string(),
                query_signal: Some(q.to_string()),
                distance: Some(*d),
                review_only: false,
                explanation: Explanation::TextHash {
                    radius: TEXT_HASH_RADIUS,
                    jaccard_estimate: (1.0 - 2.0 * f64::from(*d) / 256.0).max(0.0),
                },
            });
        }
    }
    if let Some(t) = text {
        out.extend(rule_matches(cx, t, &opts.languages, banks).await?);
    }
    Ok((out, computed))
}

/// Compiled rule banks by bank id, each with the `rule_banks.version` it
/// was compiled from: a query compiles a bank's rules only when its
/// version changed (a `PUT` on any replica bumps it).
#[derive(Default)]
pub struct RuleCache(std::sync::RwLock<HashMap<i64, (i64, Arc<RuleBank>)>>);

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
    ) -> Result<Option<Arc<RuleBank>>> {
        if let Some(b) = self.get(bank, version) {
            return Ok(Some(b));
        }
        let Some(r) = db::signals::rules_of(st, bank).await? else {
            return Ok(None);
        };
        let spec: RuleBankSpec = serde_json::from_str(&r.spec).map_err(Error::internal)?;
        match RuleBank::new(spec) {
            Ok(b) => {
                let b = Arc::new(b);
                self.put(bank, r.version, Arc::clone(&b));
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
/// them). Compiled rule sets come from [`RuleCache`].
async fn rule_matches(
    cx: Context<'_>,
    text: &str,
    languages: &[String],
    banks: Option<&HashSet<String>>,
) -> Result<Vec<TextMatch>> {
    let st = cx.store;
    let rows = db::signals::rule_banks(st).await?;
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
        present.insert(r.id);
        if !r.enabled || banks.is_some_and(|b| !b.contains(&r.name)) {
            continue;
        }
        let Some(bank) = cx
            .text_index
            .rules
            .rules_of(st, r.id, &r.name, r.version)
            .await?
        else {
            continue;
        };
        if !bank.applies(&folded, languages, &detected) {
            continue;
        }
        for m in bank.explain_folded(text, &folded) {
            out.push(TextMatch {
                bank: r.name.clone(),
                content_id: None,
                signal_type: "rule".into(),
                query_signal: None,
                distance: None,
                review_only: true,
                explanation: Explanation::Rule {
                    rule: m.rule,
                    description: m.description,
                    language: m.language,
                    span: [m.span.start, m.span.end],
                    text: m.text,
                },
            });
        }
    }
    cx.text_index.rules.keep_only(&present);
    Ok(out)
}

// ---- the text-hash index ----

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
    above: BTreeSet<i64>,
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
            above: BTreeSet::new(),
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
async fn all_text_rows(st: &Store) -> Result<Vec<(TextHash, (i64, i64))>> {
    let mut out = Vec::new();
    let mut after = 0i64;
    while let Some(page) = db::signal_page(st, bulwark_banks::TEXT_HASH_NAME, after).await? {
        after = page.last;
        for row in page.rows() {
            let (c, b, v) = row.map_err(Error::internal)?;
            if let Ok(h) = v.parse::<TextHash>() {
                out.push((h, (b, c)));
            }
        }
    }
    Ok(out)
}

/// The banked text hashes of some content, in signal id order.
async fn text_rows_of(st: &Store, contents: &[i64]) -> Result<Vec<(TextHash, (i64, i64))>> {
    let mut out: Vec<(i64, TextHash, (i64, i64))> =
        db::signals::text_hashes_of(st, bulwark_banks::TEXT_HASH_NAME, contents)
            .await?
            .into_iter()
            .filter_map(|(id, b, c, v)| Some((id, v.parse::<TextHash>().ok()?, (b, c))))
            .collect();
    out.sort_unstable_by_key(|e| e.0);
    Ok(out.into_iter().map(|(_, h, k)| (h, k)).collect())
}

impl TextIndexCache {
    /// The index, current as of the latest change in the store.
    pub async fn current(
        &self,
        st: &Store,
        catalog: &Catalog,
    ) -> Result<tokio::sync::RwLockReadGuard<'_, CachedTextIndex>> {
        let top = db::catalog::latest_change(st).await?;
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
                let top = db::catalog::latest_change(st)
                    .await?
                    .min(catalog.applied_seq().max(0));
                let entries = all_text_rows(st).await?;
                let refs: Vec<Option<(i64, i64)>> = entries.iter().map(|(_, k)| Some(*k)).collect();
                let index = tokio::task::spawn_blocking(move || {
                    TextHashIndex::build(
                        IndexParams::DEFAULT,
                        entries.iter().enumerate().map(|(e, (h, _))| (*h, e as u64)),
                    )
                })
                .await
                .map_err(Error::internal)?;
                let mut w = self.inner.write().await;
                *w = CachedTextIndex {
                    floor: Some(top),
                    above: BTreeSet::new(),
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
    async fn follow(&self, st: &Store, catalog: &Catalog, floor: i64) -> Result<()> {
        // Read first: every change ≤ the catalog's floor that exists is
        // visible to the reads below; the others never will be.
        let settled = catalog.applied_seq();
        let done = self.inner.read().await.above.clone();
        let mut after = floor;
        let mut seqs = Vec::new();
        let (mut contents, mut banks) = (Vec::new(), Vec::new());
        loop {
            let rows = db::catalog::changes_after(st, after).await?;
            for r in &rows {
                after = r.seq;
                if done.contains(&r.seq) {
                    continue;
                }
                seqs.push(r.seq);
                match (r.bank_id, r.content_id) {
                    (_, Some(c)) => contents.push(c),
                    (Some(b), None) => banks.push(b),
                    (None, None) => {}
                }
            }
            if rows.len() < db::catalog::CHANGE_PAGE {
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
            if db::catalog::bank_by_id(st, b).await?.is_none() {
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
    pub async fn warm(&self, st: &Store, catalog: &Catalog) {
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

// ---- rules ----

/// A bank's rules, as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Rules {
    /// The bank's name.
    pub bank: String,
    /// The rules' language.
    pub language: String,
    /// The rules.
    pub rules: Vec<RuleSpec>,
    /// Always true: rule matches are for review only.
    pub review_only: bool,
}

impl From<RuleBankSpec> for Rules {
    fn from(spec: RuleBankSpec) -> Rules {
        Rules {
            bank: spec.name,
            language: spec.language,
            rules: spec.rules,
            review_only: true,
        }
    }
}

/// Rules to set on a bank.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRules {
    /// A BCP 47 tag (or a list the rules compile for; see bulwark-signals).
    pub language: String,
    /// At most 10,000 rules.
    pub rules: Vec<RuleSpec>,
}

/// Most rules a bank holds.
pub const MAX_RULES: usize = 10_000;

/// Sets a bank's rules and their language (audited `rules.set`).
pub async fn put_rules(store: &Store, actor: &str, bank: &str, r: NewRules) -> Result<Rules> {
    let b = crate::banks::by_name(store, bank).await?;
    if r.rules.len() > MAX_RULES {
        return Err(Error::bad_request("at most 10000 rules per bank"));
    }
    let spec = RuleBankSpec {
        name: b.name.clone(),
        language: r.language.trim().to_string(),
        rules: r.rules,
    };
    RuleBank::new(spec.clone()).map_err(|e| Error::bad_request(e.to_string()))?;
    let mut tx = store.begin().await?;
    db::signals::put_rules(
        store,
        &mut tx,
        b.id,
        &spec.language,
        &serde_json::to_string(&spec).map_err(Error::internal)?,
        actor,
    )
    .await?;
    db::audit(
        store,
        &mut tx,
        actor,
        "rules.set",
        Some(&b.name),
        None,
        json!({"language": spec.language, "rules": spec.rules.len()}),
    )
    .await?;
    tx.commit().await?;
    Ok(spec.into())
}

/// A bank's rules, or `not_found`.
pub async fn get_rules(store: &Store, bank: &str) -> Result<Rules> {
    let b = crate::banks::by_name(store, bank).await?;
    let row = db::signals::rules_of(store, b.id)
        .await?
        .ok_or_else(|| Error::not_found(format!("bank {:?} has no rules", b.name)))?;
    let spec: RuleBankSpec = serde_json::from_str(&row.spec).map_err(Error::internal)?;
    Ok(spec.into())
}

/// Deletes a bank's rules (audited `rules.delete`), or `not_found`.
pub async fn delete_rules(store: &Store, actor: &str, bank: &str) -> Result<()> {
    let b = crate::banks::by_name(store, bank).await?;
    let mut tx = store.begin().await?;
    if !db::signals::delete_rules(store, &mut tx, b.id).await? {
        return Err(Error::not_found(format!("bank {:?} has no rules", b.name)));
    }
    db::audit(
        store,
        &mut tx,
        actor,
        "rules.delete",
        Some(&b.name),
        None,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- rescue photo banks ----

/// Whether the caller is a designated rescue reviewer: a key an admin
/// designated, that can also read reports (curator or admin). The admin
/// role alone does not make one.
pub async fn is_rescue_reviewer(store: &Store, caller: &Caller) -> Result<bool> {
    if !caller.role.allows(Role::Curator) {
        return Ok(false);
    }
    Ok(db::signals::is_rescue_reviewer(store, &caller.key_id).await?)
}

/// `forbidden` unless the caller is an admin or a designated reviewer.
pub async fn require_rescue_access(store: &Store, caller: &Caller) -> Result<()> {
    if caller.role == Role::Admin || is_rescue_reviewer(store, caller).await? {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "rescue banks are for designated reviewers only; key {} is not one",
            caller.key_id
        )))
    }
}

/// A rescue bank to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRescueBank {
    /// Unique name (as bank names).
    pub name: String,
    /// Free text, at most 2000 bytes.
    #[serde(default)]
    pub description: String,
    /// The organisation, at most 200 bytes.
    pub provider: Option<String>,
    /// Largest PDQ distance that matches (0..=64; default 31).
    pub threshold: Option<u32>,
}

/// A rescue bank as created.
#[derive(Debug, Clone, Serialize)]
pub struct RescueBank {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The organisation.
    pub provider: Option<String>,
    /// Largest PDQ distance that matches.
    pub threshold: u32,
    /// Always `rescue`.
    pub kind: &'static str,
}

/// Creates a rescue bank (audited `rescue.bank.create`); `conflict` when the
/// name is taken. Admins only: the caller checks the role.
pub async fn create_rescue_bank(
    store: &Store,
    actor: &str,
    b: NewRescueBank,
) -> Result<RescueBank> {
    crate::banks::valid_name(&b.name)?;
    let threshold = b.threshold.unwrap_or(31);
    if threshold > 64 {
        return Err(Error::bad_request("threshold must be 0..=64"));
    }
    if b.description.len() > 2000 || b.provider.as_ref().is_some_and(|p| p.len() > 200) {
        return Err(Error::bad_request(
            "description is at most 2000 bytes, provider at most 200",
        ));
    }
    let mut tx = store.begin().await?;
    let id = db::signals::insert_rescue_bank(
        store,
        &mut tx,
        &db::signals::NewRescueBank {
            name: &b.name,
            description: &b.description,
            provider: b.provider.as_deref(),
            threshold: i64::from(threshold),
            created_by: actor,
        },
    )
    .await
    .map_err(|_| Error::conflict(format!("rescue bank {:?} exists", b.name)))?;
    db::audit(
        store,
        &mut tx,
        actor,
        "rescue.bank.create",
        None,
        None,
        json!({"rescue_bank": b.name, "provider": b.provider}),
    )
    .await?;
    tx.commit().await?;
    Ok(RescueBank {
        id,
        name: b.name,
        description: b.description,
        provider: b.provider,
        threshold,
        kind: "rescue",
    })
}

/// A rescue bank as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RescueBankInfo {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The organisation.
    pub provider: Option<String>,
    /// Largest PDQ distance that matches.
    pub threshold: i64,
    /// Photos held.
    pub photos: i64,
    /// RFC 3339.
    pub created_at: String,
    /// Always `rescue`.
    pub kind: &'static str,
}

/// Every rescue bank, by name (for an admin or a designated reviewer).
pub async fn rescue_banks(store: &Store, caller: &Caller) -> Result<Vec<RescueBankInfo>> {
    require_rescue_access(store, caller).await?;
    Ok(db::signals::rescue_banks(store)
        .await?
        .into_iter()
        .map(|r| RescueBankInfo {
            id: r.id,
            name: r.name,
            description: r.description,
            provider: r.provider,
            threshold: r.threshold,
            photos: r.photos,
            created_at: db::rfc3339(r.created_at),
            kind: "rescue",
        })
        .collect())
}

/// A rescue bank's id by name (after checking the caller may add to it),
/// or `not_found`.
pub async fn rescue_bank_for_adding(store: &Store, caller: &Caller, bank: &str) -> Result<i64> {
    require_rescue_access(store, caller).await?;
    db::signals::rescue_bank_id(store, bank)
        .await?
        .ok_or_else(|| Error::not_found(format!("no rescue bank named {bank:?}")))
}

/// A photo's hash for a rescue bank.
#[derive(Debug, Clone)]
pub struct RescuePhoto {
    /// Its PDQ hash.
    pub pdq: PdqHash,
    /// Its PDQ quality, when known (at least [`MIN_QUALITY`]).
    pub quality: Option<u32>,
    /// Free text.
    pub note: Option<String>,
}

/// A photo added to a rescue bank.
#[derive(Debug, Clone, Serialize)]
pub struct RescuePhotoAdded {
    /// Photo id.
    pub id: i64,
    /// The bank's name.
    pub rescue_bank: String,
    /// Its PDQ quality, when known.
    pub quality: Option<u32>,
}

/// Adds a photo's hash to the rescue bank `bank_id` (from
/// [`rescue_bank_for_adding`]; audited `rescue.photo.add`). `None` when the
/// bank holds the hash already.
pub async fn add_rescue_photo(
    store: &Store,
    actor: &str,
    bank_id: i64,
    bank: &str,
    p: RescuePhoto,
) -> Result<Option<RescuePhotoAdded>> {
    if p.quality.is_some_and(|q| q < MIN_QUALITY) {
        return Err(Error::bad_request(format!(
            "PDQ quality {} is under {MIN_QUALITY}: too little detail to match reliably",
            p.quality.unwrap_or(0)
        )));
    }
    let mut tx = store.begin().await?;
    let Some(id) = db::signals::insert_rescue_photo(
        store,
        &mut tx,
        &db::signals::NewRescuePhoto {
            bank_id,
            pdq: &p.pdq.to_string(),
            quality: p.quality.map(i64::from),
            note: p.note.as_deref(),
            added_by: actor,
        },
    )
    .await?
    else {
        return Ok(None);
    };
    db::audit(
        store,
        &mut tx,
        actor,
        "rescue.photo.add",
        None,
        None,
        json!({"rescue_bank": bank, "photo_id": id}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(RescuePhotoAdded {
        id,
        rescue_bank: bank.to_string(),
        quality: p.quality,
    }))
}

/// Designates a live curator or admin key as a rescue reviewer (audited
/// `rescue.reviewer.grant`). Admins only: the caller checks the role.
pub async fn grant_reviewer(store: &Store, actor: &str, key_id: &str) -> Result<()> {
    let role = db::signals::live_key_role(store, key_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no live key {key_id:?}")))?;
    if !role
        .parse::<Role>()
        .is_ok_and(|role| role.allows(Role::Curator))
    {
        return Err(Error::bad_request(format!(
            "key {key_id} has the {role} role; a rescue reviewer must be able to read reports (curator or admin)"
        )));
    }
    let mut tx = store.begin().await?;
    db::signals::grant_rescue_reviewer(store, &mut tx, key_id, actor).await?;
    db::audit(
        store,
        &mut tx,
        actor,
        "rescue.reviewer.grant",
        None,
        None,
        json!({"key_id": key_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends a key's designation (audited `rescue.reviewer.revoke`), or
/// `not_found`. Admins only: the caller checks the role.
pub async fn revoke_reviewer(store: &Store, actor: &str, key_id: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    if !db::signals::revoke_rescue_reviewer(store, &mut tx, key_id).await? {
        return Err(Error::not_found(format!(
            "key {key_id:?} is not a rescue reviewer"
        )));
    }
    db::audit(
        store,
        &mut tx,
        actor,
        "rescue.reviewer.revoke",
        None,
        None,
        json!({"key_id": key_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A reported photo's match in a rescue bank.
#[derive(Debug, Clone, Serialize)]
pub struct RescueMatch {
    /// The bank's name.
    pub rescue_bank: String,
    /// The bank's provider.
    pub provider: Option<String>,
    /// The photo matched.
    pub photo_id: i64,
    /// Its note.
    pub note: Option<String>,
    /// Hamming distance.
    pub distance: u32,
}

/// Matches of a reported photo's PDQ hash against the rescue banks. Called
/// only from report intake.
async fn rescue_matches(store: &Store, pdq: &PdqHash, quality: u32) -> Result<Vec<RescueMatch>> {
    if quality < MIN_QUALITY {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for r in db::signals::rescue_photos(store).await? {
        let Ok(h) = r.pdq.parse::<PdqHash>() else {
            continue;
        };
        let d = pdq.distance(&h);
        if i64::from(d) <= r.threshold {
            out.push(RescueMatch {
                rescue_bank: r.bank,
                provider: r.provider,
                photo_id: r.id,
                note: r.note,
                distance: d,
            });
        }
    }
    Ok(out)
}

// ---- reports ----

/// The text signals and rescue matches of one report, computed at intake.
#[derive(Default)]
pub struct ReportSignals {
    /// Per message index: its signals and their matches.
    pub texts: Vec<(usize, Option<TextSignals>, Vec<TextMatch>)>,
    /// Per (message, attachment): rescue matches.
    pub rescue: Vec<(usize, usize, Vec<RescueMatch>)>,
}

impl ReportSignals {
    /// Analyses the text of each verified message (`texts`: message index
    /// and body) and matches it against every bank; matches each opened
    /// photo attachment (`photos`: message, index, PDQ hash and quality)
    /// against the rescue banks.
    pub async fn compute(
        cx: Context<'_>,
        texts: &[(usize, String)],
        photos: &[(usize, usize, PdqHash, u32)],
    ) -> Result<ReportSignals> {
        let mut out = ReportSignals::default();
        for (i, t) in texts {
            if t.trim().is_empty() {
                continue;
            }
            let (matches, signals) =
                match_text(cx, Some(t), &ExtractOptions::default(), &[], None).await?;
            out.texts.push((*i, signals, matches));
        }
        for (m, a, pdq, q) in photos {
            let matches = rescue_matches(cx.store, pdq, *q).await?;
            if !matches.is_empty() {
                out.rescue.push((*m, *a, matches));
            }
        }
        Ok(out)
    }

    /// Stores them with report `id`, in the report's transaction.
    pub async fn store(&self, s: &Store, conn: &mut sqlx::AnyConnection, id: i64) -> Result<()> {
        for (i, signals, matches) in &self.texts {
            db::signals::insert_report_text_signals(
                s,
                conn,
                id,
                *i as i64,
                &text(signals)?,
                &text(matches)?,
            )
            .await?;
        }
        for (m, a, matches) in &self.rescue {
            db::signals::insert_report_rescue_matches(
                s,
                conn,
                id,
                *m as i64,
                *a as i64,
                &text(matches)?,
            )
            .await?;
        }
        Ok(())
    }
}

fn text<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

/// One message's stored text signals, as a report shows them. The stored
/// JSON is passed through as it was written.
#[derive(Debug, Clone, Serialize)]
pub struct MessageTextSignals {
    /// Message index.
    pub message: i64,
    /// Its text hash.
    pub text_hash: Value,
    /// Its entities.
    pub entities: Value,
    /// Its matches.
    pub matches: Value,
}

/// One attachment's stored rescue matches.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentRescueMatches {
    /// Message index.
    pub message: i64,
    /// Attachment index.
    pub attachment: i64,
    /// Its matches.
    pub matches: Value,
}

/// A report's stored text signals and, for a designated rescue reviewer
/// only, its rescue matches.
#[derive(Debug, Clone)]
pub struct StoredReportSignals {
    /// Per message.
    pub text_signals: Vec<MessageTextSignals>,
    /// Per attachment; `None` unless the caller is a rescue reviewer.
    pub rescue_matches: Option<Vec<AttachmentRescueMatches>>,
}

/// The text signals (every reviewer) and rescue matches (a designated rescue
/// reviewer only) stored with report `id`.
pub async fn report_signals(
    store: &Store,
    caller: &Caller,
    id: i64,
) -> Result<StoredReportSignals> {
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
    let text_signals = db::signals::report_text_signals(store, id)
        .await?
        .into_iter()
        .map(|(message, signals, matches)| {
            let sig = parse(&signals);
            MessageTextSignals {
                message,
                text_hash: sig["text_hash"].clone(),
                entities: sig["entities"].clone(),
                matches: parse(&matches),
            }
        })
        .collect();
    let rescue_matches = if is_rescue_reviewer(store, caller).await? {
        Some(
            db::signals::report_rescue_matches(store, id)
                .await?
                .into_iter()
                .map(|(message, attachment, matches)| AttachmentRescueMatches {
                    message,
                    attachment,
                    matches: parse(&matches),
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(StoredReportSignals {
        text_signals,
        rescue_matches,
    })
}
