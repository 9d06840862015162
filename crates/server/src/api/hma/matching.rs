//! HMA matching: `/m/lookup`, `/m/raw_lookup`, `/m/compare`,
//! `/m/index/status`, and the health routes `/status`, `/status/live`.
//!
//! Matches come from Bulwark's index with each bank's own threshold (PDQ)
//! and exact MD5; a bank whose HMA `matching_enabled_ratio` is between 0
//! and 1 answers a lookup when the lookup's coin flip (seeded by `seed`,
//! skipped by `bypass_coinflip=true`) is at most the ratio, as in HMA.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bulwark_banks::Signal;
use bulwark_service::hma;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::curation::{selected_types, type_stats};
use super::hashing::{self, Body};
use super::{bank_set, hma_type_name, parse_bool, parse_signal};
use crate::AppState;
use crate::api::matching::match_signals;
use crate::auth::{Caller, Role};
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};

/// `GET /status`: 200 `I-AM-ALIVE` once the index is loaded and current;
/// 503 `INDEX-NOT-LOADED` before it loads, 503 `INDEX-STALE` when it lacks
/// changes it should hold (as HMA, whose matchers report a stale index
/// cache). No key needed (for load balancers).
pub async fn status(State(state): State<AppState>) -> impl IntoResponse {
    if !state.catalog.is_loaded() {
        return (StatusCode::SERVICE_UNAVAILABLE, "INDEX-NOT-LOADED");
    }
    let stale = match freshness(&state).await {
        Ok(f) => f.stale,
        Err(e) => {
            // The store cannot be asked: stale when this node has not
            // refreshed from it within the allowed lag either.
            tracing::warn!("/status: reading changes failed: {}", e.message);
            let last = state.catalog.last_refresh_ms.load(Ordering::Acquire);
            now_ms() - last > max_lag_ms(&state)
        }
    };
    if stale {
        (StatusCode::SERVICE_UNAVAILABLE, "INDEX-STALE")
    } else {
        (StatusCode::OK, "I-AM-ALIVE")
    }
}

pub use bulwark_service::hma::Freshness;

/// The lag a replica's index may have behind the store before it counts as
/// stale: three poll intervals and a second (as `/v1/health`'s `current`).
/// A node's own writes are in its index before they are acknowledged.
pub fn max_lag_ms(state: &AppState) -> i64 {
    3 * state.config.refresh_interval.as_millis() as i64 + 1000
}

/// Whether the index is stale, and what it is built to.
pub async fn freshness(state: &AppState) -> Result<Freshness, ApiError> {
    Ok(hma::freshness(&state.store, &state.catalog, max_lag_ms(state)).await?)
}

/// `GET /status/live`: always 200 `I-AM-ALIVE` (a liveness probe must not
/// fail while the index loads).
pub async fn status_live() -> impl IntoResponse {
    (StatusCode::OK, "I-AM-ALIVE")
}

fn index_ready(state: &AppState) -> Result<(), ApiError> {
    if state.catalog.is_loaded() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "index not yet ready",
        ))
    }
}

/// One match: (bank, content id, distance).
type Found = (String, i64, i64);

async fn find(
    state: &AppState,
    sig: &Signal,
    quality: Option<u32>,
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Found>, ApiError> {
    index_ready(state)?;
    let hits = match_signals(state, std::slice::from_ref(sig), quality, banks).await?;
    Ok(hits
        .iter()
        .filter_map(|h| {
            Some((
                h["bank"].as_str()?.to_string(),
                h["content_id"].as_i64()?,
                h["distance"].as_i64().unwrap_or(0),
            ))
        })
        .collect())
}

/// One match as HMA shows it (fields in sorted order, as HMA's JSON).
#[derive(Serialize)]
pub struct BankMatch {
    /// The content id.
    bank_content_id: i64,
    /// The distance, as a string (HMA's).
    distance: String,
}

/// HMA's per-bank answer for one signal: `{BANK: [match, ...]}`.
pub type ByBank = BTreeMap<String, Vec<BankMatch>>;

/// What `/m/lookup` answers: by bank for one signal type, or by type.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Lookup {
    /// `{BANK: [...]}`.
    ByBank(ByBank),
    /// `{TYPE: {BANK: [...]}}`.
    ByType(BTreeMap<&'static str, ByBank>),
}

/// HMA's per-bank answer for one signal, after the banks' coin flips.
async fn by_bank(
    state: &AppState,
    sig: &Signal,
    quality: Option<u32>,
    banks: Option<&HashSet<String>>,
    coin: f64,
) -> Result<ByBank, ApiError> {
    let found = find(state, sig, quality, banks).await?;
    answer(state, found, coin).await
}

/// The matches of an uploaded photo's PDQ hash and its extra hashes (the
/// "both sides" pairing of `/v1/match`): extras add banked items the plain
/// hash did not find.
async fn find_with_extras(
    state: &AppState,
    pdq: &bulwark_pdq::PdqHash,
    quality: u32,
    extras: &[bulwark_pdq::KindHash],
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Found>, ApiError> {
    let mut found = find(state, &Signal::Pdq(*pdq), Some(quality), banks).await?;
    let already: Vec<Value> = found
        .iter()
        .map(|(b, id, _)| json!({"bank": b, "content_id": id}))
        .collect();
    for j in crate::api::matching::match_extras(state, (*pdq, quality), extras, &already, banks) {
        if let (Some(b), Some(id)) = (j["bank"].as_str(), j["content_id"].as_i64()) {
            found.push((b.to_string(), id, j["distance"].as_i64().unwrap_or(0)));
        }
    }
    Ok(found)
}

/// HMA's per-bank answer for these matches, after the banks' coin flips.
async fn answer(state: &AppState, found: Vec<Found>, coin: f64) -> Result<ByBank, ApiError> {
    let mut out = ByBank::new();
    if found.is_empty() {
        return Ok(out);
    }
    let r = hma::ratios(&state.store).await?;
    let all = crate::db::banks(&state.store).await?;
    for (bank, id, d) in found {
        let ratio = all
            .iter()
            .find(|b| b.name == bank)
            .map_or(0.0, |b| hma::ratio_of(b, &r));
        if ratio <= 0.0 || ratio < coin {
            continue;
        }
        out.entry(bank).or_default().push(BankMatch {
            bank_content_id: id,
            distance: d.to_string(),
        });
    }
    Ok(out)
}

fn coin(seed: Option<&str>, bypass: bool) -> f64 {
    if bypass {
        return 0.0;
    }
    match seed {
        Some(s) => {
            use sha2::Digest;
            let d: [u8; 32] = sha2::Sha256::digest(s.as_bytes()).into();
            let mut k = [0u8; 8];
            k.copy_from_slice(&d[..8]);
            rand::rngs::StdRng::seed_from_u64(u64::from_le_bytes(k)).r#gen::<f64>()
        }
        None => rand::thread_rng().r#gen::<f64>(),
    }
}

/// Query parameters.
#[derive(Deserialize)]
pub struct LookupQuery {
    signal: Option<String>,
    signal_type: Option<String>,
    url: Option<String>,
    content_type: Option<String>,
    types: Option<String>,
    banks: Option<String>,
    seed: Option<String>,
    bypass_coinflip: Option<String>,
}

/// `GET /m/lookup?signal_type=&signal=` (or `?url=`): with a signal type,
/// `{BANK: [{"bank_content_id", "distance"}]}`; by URL without one,
/// `{TYPE: {BANK: [...]}}`.
pub async fn lookup_get(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<LookupQuery>,
) -> ApiResult<Json<Lookup>> {
    caller.require(Role::Matcher)?;
    let banks = bank_set(q.banks.as_deref());
    let c = coin(
        q.seed.as_deref(),
        parse_bool(q.bypass_coinflip.as_deref(), false)?,
    );
    if let Some(url) = q.url.as_deref().filter(|u| !u.is_empty()) {
        let h =
            hashing::hash_url(&state, url, q.content_type.as_deref(), q.types.as_deref()).await?;
        let mut out = BTreeMap::new();
        for s in &h.signals {
            let m = by_bank(&state, s, h.quality, banks.as_ref(), c).await?;
            out.insert(hma_type_name(s.signal_type()), m);
        }
        if let Some(t) = q.signal_type.as_deref() {
            return Ok(Json(Lookup::ByBank(out.remove(t).unwrap_or_default())));
        }
        return Ok(Json(Lookup::ByType(out)));
    }
    let (Some(sig), Some(t)) = (q.signal.as_deref(), q.signal_type.as_deref()) else {
        return Err(ApiError::bad_request(
            "Either url or both signal and signal_type are required",
        ));
    };
    if let Some(tt) = crate::api::signals::text_type(t) {
        let found = find_text(&state, tt, sig, banks.as_ref()).await?;
        return Ok(Json(Lookup::ByBank(answer(&state, found, c).await?)));
    }
    let s = parse_signal(t, sig)?;
    Ok(Json(Lookup::ByBank(
        by_bank(&state, &s, None, banks.as_ref(), c).await?,
    )))
}

/// The matches of a text or entity signal (issue 18): entities by exact
/// canonical value, a text hash within `TEXT_HASH_RADIUS`, as `/v1/match`.
async fn find_text(
    state: &AppState,
    t: bulwark_banks::TextSignalType,
    value: &str,
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Found>, ApiError> {
    index_ready(state)?;
    let sig = t
        .parse(value)
        .map_err(|e| ApiError::bad_request(format!("invalid signal: {e}")))?;
    let (hits, _) = crate::api::signals::match_text(
        state,
        None,
        &bulwark_signals::ExtractOptions::default(),
        std::slice::from_ref(&sig),
        banks,
    )
    .await?;
    Ok(hits
        .iter()
        .filter_map(|h| {
            Some((
                h["bank"].as_str()?.to_string(),
                h["content_id"].as_i64()?,
                h["distance"].as_i64().unwrap_or(0),
            ))
        })
        .collect())
}

/// Query parameters.
#[derive(Deserialize)]
pub struct PostQuery {
    banks: Option<String>,
    seed: Option<String>,
    bypass_coinflip: Option<String>,
    types: Option<String>,
}

/// `POST /m/lookup` with one file (field `photo` or `video`):
/// `{TYPE: {BANK: [...]}}`.
pub async fn lookup_post(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PostQuery>,
    req: Request,
) -> ApiResult<Json<BTreeMap<&'static str, ByBank>>> {
    caller.require(Role::Matcher)?;
    let Body::Form(form) = hashing::read_body(req, &state).await? else {
        return Err(ApiError::bad_request(
            "Missing multipart/form-data file upload",
        ));
    };
    let banks = bank_set(q.banks.as_deref());
    let c = coin(
        q.seed.as_deref(),
        parse_bool(q.bypass_coinflip.as_deref(), false)?,
    );
    let h = hashing::hash_form(&state, form, q.types.as_deref()).await?;
    let mut out = BTreeMap::new();
    for s in &h.signals {
        let m = match (s, h.quality) {
            (Signal::Pdq(pdq), Some(q)) if !h.extras.is_empty() => {
                let found = find_with_extras(&state, pdq, q, &h.extras, banks.as_ref()).await?;
                answer(&state, found, c).await?
            }
            _ => by_bank(&state, s, h.quality, banks.as_ref(), c).await?,
        };
        out.insert(hma_type_name(s.signal_type()), m);
    }
    Ok(Json(out))
}

/// Query parameters.
#[derive(Deserialize)]
pub struct RawQuery {
    signal: Option<String>,
    signal_type: Option<String>,
    banks: Option<String>,
    include_distance: Option<String>,
}

/// What `/m/raw_lookup` answers.
#[derive(Serialize)]
pub struct RawMatches {
    /// Content ids, or matches with their distances.
    matches: RawList,
}

/// `/m/raw_lookup`'s matches.
#[derive(Serialize)]
#[serde(untagged)]
pub enum RawList {
    /// `[ID, ...]`.
    Ids(Vec<i64>),
    /// `[{"bank_content_id", "distance"}, ...]`.
    WithDistance(Vec<BankMatch>),
}

/// `GET /m/raw_lookup?signal_type=&signal=[&banks=A,B][&include_distance=true]`:
/// `{"matches": [ID, ...]}` or `{"matches": [{"bank_content_id", "distance"}]}`.
pub async fn raw_lookup(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RawQuery>,
) -> ApiResult<Json<RawMatches>> {
    caller.require(Role::Matcher)?;
    let (Some(sig), Some(t)) = (q.signal.as_deref(), q.signal_type.as_deref()) else {
        return Err(ApiError::bad_request("signal and signal_type are required"));
    };
    let banks = bank_set(q.banks.as_deref());
    let with_distance = parse_bool(q.include_distance.as_deref(), false)?;
    let found = match crate::api::signals::text_type(t) {
        Some(tt) => find_text(&state, tt, sig, banks.as_ref()).await?,
        None => find(&state, &parse_signal(t, sig)?, None, banks.as_ref()).await?,
    };
    let matches = if with_distance {
        RawList::WithDistance(
            found
                .into_iter()
                .map(|(_, id, d)| BankMatch {
                    bank_content_id: id,
                    distance: d.to_string(),
                })
                .collect(),
        )
    } else {
        RawList::Ids(found.into_iter().map(|(_, id, _)| id).collect())
    };
    Ok(Json(RawMatches { matches }))
}

/// A distance, as `/m/compare` shows it.
#[derive(Serialize)]
pub struct Distance {
    /// Hamming distance (PDQ, text hash), else 0 for equal, 1 for not.
    distance: u32,
}

/// `/m/compare`'s answer for one type: whether the pair matches, and its
/// distance.
pub type Compared = (bool, Distance);

/// `POST /m/compare` with `{TYPE: [A, B], ...}`: `{TYPE: [matched, {"distance": N}]}`
/// (PDQ: Hamming distance, matched at the default threshold; MD5: 0 or 1).
pub async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<BTreeMap<String, Compared>>> {
    caller.require(Role::Matcher)?;
    let Body::Json(Value::Object(m)) = hashing::read_body(req, &state).await? else {
        return Err(ApiError::bad_request("Request input was not a dict"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in &m {
        let Value::Array(pair) = v else {
            return Err(ApiError::bad_request(format!(
                "Comparison hashes for {k} was not a list"
            )));
        };
        if pair.len() != 2 {
            return Err(ApiError::bad_request(
                "Comparison hash list length must be exactly 2",
            ));
        }
        if let Some(tt) = crate::api::signals::text_type(k) {
            out.insert(k.clone(), compare_text(tt, k, pair)?);
            continue;
        }
        let t = super::parse_type(k)?;
        let parse = |x: &Value| {
            x.as_str()
                .ok_or_else(|| ApiError::bad_request(format!("Invalid {k} hash: not a string")))
                .and_then(|s| {
                    t.parse(s)
                        .map_err(|e| ApiError::bad_request(format!("Invalid {k} hash: {e}")))
                })
        };
        let (a, b) = (parse(&pair[0])?, parse(&pair[1])?);
        let r = match (a, b) {
            (Signal::Pdq(a), Signal::Pdq(b)) => {
                let d = a.distance(&b);
                (
                    d <= state.config.default_threshold,
                    Distance { distance: d },
                )
            }
            (a, b) => {
                let same = a == b;
                (
                    same,
                    Distance {
                        distance: u32::from(!same),
                    },
                )
            }
        };
        out.insert(k.clone(), r);
    }
    Ok(Json(out))
}

/// `/m/compare` of two text/entity signals: a text hash matches within
/// `TEXT_HASH_RADIUS`; entities when their canonical values are equal.
fn compare_text(
    t: bulwark_banks::TextSignalType,
    k: &str,
    pair: &[Value],
) -> Result<Compared, ApiError> {
    let parse = |x: &Value| {
        x.as_str()
            .ok_or_else(|| ApiError::bad_request(format!("Invalid {k} hash: not a string")))
            .and_then(|s| {
                t.parse(s)
                    .map_err(|e| ApiError::bad_request(format!("Invalid {k} hash: {e}")))
            })
    };
    Ok(match (parse(&pair[0])?, parse(&pair[1])?) {
        (bulwark_banks::TextSignal::TextHash(a), bulwark_banks::TextSignal::TextHash(b)) => {
            let d = a.distance(&b);
            (
                d <= bulwark_signals::TEXT_HASH_RADIUS,
                Distance { distance: d },
            )
        }
        (a, b) => {
            let same = a == b;
            (
                same,
                Distance {
                    distance: u32::from(!same),
                },
            )
        }
    })
}

/// Query parameters.
#[derive(Deserialize)]
pub struct IndexQuery {
    signal_type: Option<String>,
}

/// One signal type's index, as `/m/index/status` shows it (fields in
/// sorted order).
#[derive(Serialize)]
pub struct IndexShown {
    /// Unix time (s) the index holds every change to, -1 before it loads.
    built_to: i64,
    /// The index is loaded.
    present: bool,
    /// Signals of the type.
    size: i64,
}

/// `GET /m/index/status[?signal_type=pdq]`:
/// `{TYPE: {"present", "built_to", "size"}}`.
pub async fn index_status(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<IndexQuery>,
) -> ApiResult<Json<BTreeMap<&'static str, IndexShown>>> {
    caller.require(Role::Matcher)?;
    let present = state.catalog.is_loaded();
    let built_to = if present {
        freshness(&state).await?.built_to
    } else {
        -1
    };
    let mut out = BTreeMap::new();
    for t in selected_types(&state, q.signal_type.as_deref())? {
        let (n, _) = type_stats(&state, t).await?;
        out.insert(
            t.hma_name(),
            IndexShown {
                built_to,
                present,
                size: n,
            },
        );
    }
    Ok(Json(out))
}
