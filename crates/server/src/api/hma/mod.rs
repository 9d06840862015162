//! Meta's Hasher-Matcher-Actioner 2.x ("OpenMediaMatch") HTTP API on top of
//! the `/v1` service: the same store, index and API keys, with HMA's paths,
//! shapes and error body (`{"message": ...}`), so that an HMA client switches
//! by changing its base URL and adding an `Authorization: Bearer` header.
//!
//! - [`curation`]: `/c/banks`, `/c/bank/<name>[/content[/<id>]|/signal]`,
//!   `/c/signal_type`, `/c/content_type`.
//! - [`matching`]: `/m/lookup`, `/m/raw_lookup`, `/m/compare`,
//!   `/m/index/status`, and `/status`, `/status/live`.
//! - [`hashing`]: `/h/hash` (by upload or `?url=`).
//! - [`fetch`]: fetching media by URL, off unless configured.
//! - [`exchanges`] and [`sources`]: `/c/exchanges...`, scheduled fetches of
//!   signals into banks.
//!
//! Shapes follow HMA at facebook/ThreatExchange commit
//! baefb4ed67b6cdc1d4c82dbaef858d50866ac424 (see docs/SERVICE.md).

pub mod curation;
pub mod exchanges;
pub mod fetch;
pub mod hashing;
pub mod matching;
pub mod sources;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use bulwark_banks::{Signal, SignalType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// Settings of the HMA surface (`[hma]` in the configuration file).
#[derive(Debug, Clone)]
pub struct HmaConfig {
    /// Hosts `?url=` may fetch from (a host matches itself and its
    /// subdomains; `*` is any host). Empty: fetching by URL is off.
    pub fetch_allowed_hosts: Vec<String>,
    /// Largest fetched file, in bytes.
    pub fetch_max_bytes: u64,
    /// Longest a fetch may take, redirects included.
    pub fetch_timeout: Duration,
    /// Most redirects followed (each checked like the first request).
    pub fetch_max_redirects: usize,
    /// Let fetches reach loopback addresses. For tests only: it cannot be
    /// set from the configuration file.
    pub fetch_allow_loopback: bool,
    /// How often the exchange scheduler looks for exchanges due to fetch.
    pub exchange_poll: Duration,
    /// The signal types `/c/signal_type` lists, by HMA name, as HMA lists
    /// the types its configuration enables (`SIGNAL_TYPES` in HMA's
    /// settings). Default: HMA's default, `pdq` and `video_md5`. Text and
    /// entity types (issue 18: `text_hash`, `phone`, `url`, …) are listed
    /// when named here; lookups accept them either way.
    pub signal_types: Vec<String>,
}

impl Default for HmaConfig {
    fn default() -> Self {
        HmaConfig {
            fetch_allowed_hosts: Vec::new(),
            fetch_max_bytes: 100 << 20,
            fetch_timeout: Duration::from_secs(30),
            fetch_max_redirects: 3,
            fetch_allow_loopback: false,
            exchange_poll: Duration::from_secs(30),
            signal_types: HMA_SIGNAL_TYPES
                .iter()
                .map(|t| hma_type_name(*t).to_string())
                .collect(),
        }
    }
}

/// `[hma]` in the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmaFileConfig {
    /// See [`HmaConfig::fetch_allowed_hosts`].
    pub fetch_allowed_hosts: Option<Vec<String>>,
    /// See [`HmaConfig::fetch_max_bytes`].
    pub fetch_max_bytes: Option<u64>,
    /// Seconds; see [`HmaConfig::fetch_timeout`].
    pub fetch_timeout_seconds: Option<f64>,
    /// See [`HmaConfig::fetch_max_redirects`].
    pub fetch_max_redirects: Option<usize>,
    /// Seconds; see [`HmaConfig::exchange_poll`].
    pub exchange_poll_seconds: Option<f64>,
    /// See [`HmaConfig::signal_types`].
    pub signal_types: Option<Vec<String>>,
}

impl HmaFileConfig {
    /// Applies the file's `[hma]` settings on top of `c`.
    pub fn apply(self, c: &mut HmaConfig) -> anyhow::Result<()> {
        let secs = |v: f64, key: &str| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| anyhow::anyhow!("hma.{key}: {v} is not a duration"))
        };
        if let Some(hosts) = self.fetch_allowed_hosts {
            for h in &hosts {
                anyhow::ensure!(
                    h == "*"
                        || (!h.is_empty()
                            && h.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')),
                    "hma.fetch_allowed_hosts: {h:?} is not a host name (or `*`)"
                );
            }
            c.fetch_allowed_hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        if let Some(v) = self.fetch_max_bytes {
            anyhow::ensure!(v > 0, "hma.fetch_max_bytes must be at least 1");
            c.fetch_max_bytes = v;
        }
        if let Some(v) = self.fetch_timeout_seconds {
            c.fetch_timeout = secs(v, "fetch_timeout_seconds")?;
        }
        if let Some(v) = self.fetch_max_redirects {
            c.fetch_max_redirects = v;
        }
        if let Some(v) = self.exchange_poll_seconds {
            c.exchange_poll = secs(v, "exchange_poll_seconds")?;
        }
        if let Some(types) = self.signal_types {
            let mut seen = std::collections::HashSet::new();
            for t in &types {
                let parsed = parse_any_type(t).map_err(|_| {
                    anyhow::anyhow!(
                        "hma.signal_types: unknown signal type {t:?} (pdq, video_md5, sha256, text_hash or an entity kind)"
                    )
                })?;
                anyhow::ensure!(
                    parsed.hma_name() == t,
                    "hma.signal_types: write {t:?} as {:?}",
                    parsed.hma_name()
                );
                anyhow::ensure!(seen.insert(t.clone()), "hma.signal_types: {t:?} twice");
            }
            c.signal_types = types;
        }
        Ok(())
    }
}

/// The HMA routes, with HMA's error body.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/status", get(matching::status))
        .route("/status/live", get(matching::status_live))
        .route("/openapi/openapi.json", get(super::ops::openapi))
        .route("/c/banks", get(curation::banks).post(curation::bank_create))
        .route(
            "/c/bank/{bank}",
            get(curation::bank_get)
                .put(curation::bank_update)
                .delete(curation::bank_delete),
        )
        .route("/c/bank/{bank}/content", post(curation::content_add))
        .route(
            "/c/bank/{bank}/content/{id}",
            get(curation::content_get)
                .put(curation::content_update)
                .delete(curation::content_delete),
        )
        .route("/c/bank/{bank}/signal", post(curation::add_signal))
        .route("/c/signal_type", get(curation::signal_types))
        .route("/c/signal_type/index", get(curation::signal_type_index))
        .route("/c/signal_type/{name}", put(curation::signal_type_update))
        .route("/c/content_type", get(curation::content_types))
        .route("/c/exchanges", get(exchanges::list).post(exchanges::create))
        .route("/c/exchanges/apis", get(exchanges::apis))
        .route(
            "/c/exchanges/api/{api}",
            get(exchanges::api_get).post(exchanges::api_set),
        )
        .route("/c/exchanges/api/{api}/schema", get(exchanges::api_schema))
        .route(
            "/c/exchange/{name}",
            get(exchanges::get)
                .put(exchanges::update)
                .delete(exchanges::delete),
        )
        .route("/c/exchange/{name}/status", get(exchanges::status))
        .route("/c/exchange/{name}/fetch", post(exchanges::fetch_now))
        .route("/v1/banks/{bank}/changes", get(exchanges::changes))
        .route(
            "/m/lookup",
            get(matching::lookup_get).post(matching::lookup_post),
        )
        .route("/m/raw_lookup", get(matching::raw_lookup))
        .route("/m/compare", post(matching::compare))
        .route("/m/index/status", get(matching::index_status))
        .route("/h/hash", get(hashing::hash_get).post(hashing::hash_post))
        .layer(middleware::from_fn(hma_errors))
}

/// HMA's error body.
#[derive(Serialize)]
struct HmaError {
    /// What went wrong.
    message: String,
}

/// Rewrites Bulwark's `{"error": {"code", "message"}}` into HMA's
/// `{"message": ...}` on the HMA routes (extractor rejections included).
/// `/status` keeps its plain-text 503 (`INDEX-NOT-LOADED`, `INDEX-STALE`), as
/// HMA's.
async fn hma_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let keep = path.starts_with("/v1/") || path == "/status" || path == "/status/live";
    let resp = next.run(req).await;
    let st = resp.status();
    if keep || !(st.is_client_error() || st.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let parsed = serde_json::from_slice::<Value>(&bytes).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str().or(v["message"].as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let t = String::from_utf8_lossy(&bytes).trim().to_string();
            if t.is_empty() {
                st.canonical_reason().unwrap_or("error").to_string()
            } else {
                t
            }
        });
    let out = serde_json::to_string(&HmaError { message }).unwrap_or_default();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(out))
}

/// HMA's bank-name rule: `[A-Z_][A-Z0-9_]*` (and Bulwark's 64-byte limit).
pub fn check_bank_name(name: &str) -> Result<(), ApiError> {
    Ok(bulwark_service::hma::check_bank_name(name)?)
}

/// The HMA name of a signal type: `pdq`, `video_md5` (HMA's name for MD5),
/// `sha256` (Bulwark's, not in HMA).
pub fn hma_type_name(t: SignalType) -> &'static str {
    match t {
        SignalType::Pdq => "pdq",
        SignalType::Md5 => "video_md5",
        SignalType::Sha256 => "sha256",
    }
}

/// The signal types the HMA surface offers, in HMA's order.
pub const HMA_SIGNAL_TYPES: [SignalType; 2] = [SignalType::Pdq, SignalType::Md5];

/// Parses an HMA signal type name (`pdq`, `video_md5`; Bulwark's `md5` and
/// `sha256` too) with HMA's error.
pub fn parse_type(name: &str) -> Result<SignalType, ApiError> {
    name.parse::<SignalType>().map_err(|_| {
        ApiError::bad_request(format!(
            "No such SignalType '{}'",
            crate::error::snippet(name)
        ))
    })
}

/// A signal type on the HMA surface: a media type, or a text or entity
/// type of issue 18 (`text_hash`, `phone`, `url`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyType {
    /// PDQ, MD5, SHA-256.
    Media(SignalType),
    /// A text hash or an entity kind.
    Text(bulwark_banks::TextSignalType),
}

impl AnyType {
    /// Its HMA name (`video_md5` for MD5; a text type's own name).
    pub fn hma_name(self) -> &'static str {
        match self {
            AnyType::Media(t) => hma_type_name(t),
            AnyType::Text(t) => t.name(),
        }
    }
    /// Its name in the `signals` table.
    pub fn db_name(self) -> &'static str {
        match self {
            AnyType::Media(t) => t.name(),
            AnyType::Text(t) => t.name(),
        }
    }
}

/// Parses any signal type name the HMA surface accepts, with HMA's error.
pub fn parse_any_type(name: &str) -> Result<AnyType, ApiError> {
    match crate::api::signals::text_type(name) {
        Some(t) => Ok(AnyType::Text(t)),
        None => parse_type(name).map(AnyType::Media),
    }
}

/// The types `/c/signal_type` lists (`[hma] signal_types`), in that order.
pub fn listed_types(state: &AppState) -> Vec<AnyType> {
    state
        .config
        .hma
        .signal_types
        .iter()
        .filter_map(|n| parse_any_type(n).ok())
        .collect()
}

/// Parses a signal of an HMA type name.
pub fn parse_signal(type_name: &str, value: &str) -> Result<Signal, ApiError> {
    parse_type(type_name)?
        .parse(value)
        .map_err(|e| ApiError::bad_request(format!("invalid signal: {e}")))
}

/// `banks=A,B` as a set (HMA splits on commas; unknown names match nothing).
pub fn bank_set(banks: Option<&str>) -> Option<std::collections::HashSet<String>> {
    banks
        .filter(|b| !b.is_empty())
        .map(|b| b.split(',').map(|s| s.trim().to_string()).collect())
}

/// HMA's boolean query values: `true`/`1`, `false`/`0`, any case.
pub fn parse_bool(v: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(ApiError::bad_request(
            "invalid boolean parameter - prefer true/false",
        )),
    }
}
