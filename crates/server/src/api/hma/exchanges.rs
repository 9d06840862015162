//! Exchanges: a named, scheduled fetch of signals into a bank of the same
//! name, with a checkpoint and a fetch status (HMA's `/c/exchanges...`),
//! and Bulwark's change feed that one instance follows another by. What an
//! exchange keeps between fetches is [`bulwark_service::exchanges`]'; here
//! are the routes and the reading of remote lists.

use std::collections::HashSet;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use base64::Engine;
use bulwark_service::exchanges::{self as service, ApiAuth, Exchange, Feed, FetchStatus, PageDone};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::curation::Message;
use super::fetch::{Policy, fetch_with};
use super::hashing::{self, Body};
use super::sources::{self, Api, Item, Schema, schema};
use crate::AppState;
use crate::api::{bank_or_404, content as v1content};
use crate::auth::{Caller, Role};
use crate::db::{self, NewContent, SignalRow, now_ms};
use crate::error::{ApiError, ApiResult};

/// The API of a stored exchange.
fn api_of(e: &Exchange) -> Result<Api, ApiError> {
    Api::parse(&e.api).ok_or_else(|| ApiError::internal(format!("unknown exchange api {}", e.api)))
}

async fn load(state: &AppState, name: &str) -> Result<Option<(Exchange, Api)>, ApiError> {
    let Some(e) = service::load(&state.store, name).await? else {
        return Ok(None);
    };
    let api = api_of(&e)?;
    Ok(Some((e, api)))
}

async fn load_or_404(state: &AppState, name: &str) -> Result<(Exchange, Api), ApiError> {
    let e = service::get(&state.store, name).await?;
    let api = api_of(&e)?;
    Ok((e, api))
}

fn seal_name(exchange: &str) -> String {
    format!("hma-exchange:{exchange}")
}

/// Checks `api_json` against the API's fields; seals a follower's key.
fn check_config(
    state: &AppState,
    name: &str,
    api: Api,
    mut given: Map<String, Value>,
    old: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, ApiError> {
    given.remove("name");
    given.remove("api");
    given.remove("enabled");
    given.remove("interval_seconds");
    let fields = api.config_fields();
    let mut out = old.cloned().unwrap_or_default();
    for (k, v) in given {
        let Some(f) = fields.iter().find(|f| f.name == k) else {
            return Err(ApiError::bad_request(format!(
                "Failed to parse `api_json` - unknown field {:?} for {}",
                crate::error::snippet(&k),
                api.name()
            )));
        };
        let ok = match f.kind {
            "number" => v.is_number(),
            "number list" => v
                .as_array()
                .is_some_and(|a| a.len() <= 10_000 && a.iter().all(Value::is_u64)),
            _ => v.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 2048),
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Failed to parse `api_json` - {k} must be a {}",
                f.kind
            )));
        }
        if k == "key" {
            let key = v.as_str().unwrap_or_default();
            out.insert(
                "key_sealed".into(),
                Value::String(state.kek.seal(&seal_name(name), key.as_bytes())),
            );
        } else {
            if k == "environment" && sources::ncmec_environment(v.as_str().unwrap_or("")).is_none()
            {
                return Err(ApiError::bad_request(format!(
                    "Failed to parse `api_json` - environment must be one of {}",
                    sources::NCMEC_ENVIRONMENTS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if k == "url" || k == "base_url" {
                let u = reqwest::Url::parse(v.as_str().unwrap_or_default()).map_err(|e| {
                    ApiError::bad_request(format!("Failed to parse `api_json` - {k}: {e}"))
                })?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(ApiError::bad_request(format!(
                        "Failed to parse `api_json` - {k} must be http(s)"
                    )));
                }
            }
            out.insert(k, v);
        }
    }
    for f in fields.iter().filter(|f| f.required) {
        let present = if f.name == "key" {
            out.contains_key("key_sealed")
        } else {
            out.contains_key(f.name)
        };
        if !present {
            return Err(ApiError::bad_request(format!(
                "Failed to parse `api_json` - {} is required for {}",
                f.name,
                api.name()
            )));
        }
    }
    Ok(out)
}

/// `GET /c/exchanges`: the names.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<String>>> {
    caller.require(Role::Curator)?;
    Ok(Json(service::names(&state.store).await?))
}

/// `POST /c/exchanges` with `{"bank", "api", "api_json"}`: creates the
/// exchange and its bank; 201.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<(StatusCode, Json<Message>)> {
    caller.require(Role::Curator)?;
    let Body::Json(Value::Object(m)) = hashing::read_body(req, &state).await? else {
        return Err(ApiError::bad_request("expected a JSON object"));
    };
    let bank = m
        .get("bank")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("bank is required"))?
        .to_string();
    if bank.is_empty()
        || !bank
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::bad_request(
            "Field `bank` must match /^[A-Z0-9_]+$/",
        ));
    }
    super::check_bank_name(&bank)?;
    let api_json = match m.get("api_json") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(ApiError::bad_request("Field `api_json` must be object")),
    };
    let api_name = m
        .get("api")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Field `api_type` is required"))?;
    let api = Api::parse(api_name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "No such exchange type '{}'",
            crate::error::snippet(api_name)
        ))
    })?;
    let interval = match m
        .get("interval_seconds")
        .or(api_json.get("interval_seconds"))
    {
        None | Some(Value::Null) => api.default_interval(),
        Some(v) => v
            .as_i64()
            .filter(|s| (10..=7 * 86_400).contains(s))
            .ok_or_else(|| ApiError::bad_request("interval_seconds must be 10..=604800"))?,
    };
    let enabled = api_json
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let config = check_config(&state, &bank, api, api_json, None)?;
    service::create(
        &state.store,
        &state.catalog,
        &caller.key_id,
        state.config.default_threshold,
        &Exchange {
            name: bank,
            api: api.name().to_string(),
            enabled,
            config,
            interval_seconds: interval,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Message {
            message: "Created successfully",
        }),
    ))
}

/// `GET /c/exchange/<name>`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Exchange>> {
    caller.require(Role::Curator)?;
    Ok(Json(load_or_404(&state, &name).await?.0))
}

/// `PUT /c/exchange/<name>` with `{"enabled"?, "interval_seconds"?, "api_json"?}`.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<Exchange>> {
    caller.require(Role::Curator)?;
    let (mut e, api) = load_or_404(&state, &name).await?;
    let Body::Json(Value::Object(m)) = hashing::read_body(req, &state).await? else {
        return Err(ApiError::bad_request("expected a JSON object"));
    };
    if let Some(v) = m.get("enabled").filter(|v| !v.is_null()) {
        e.enabled = v
            .as_bool()
            .ok_or_else(|| ApiError::bad_request("enabled must be a boolean"))?;
    }
    if let Some(v) = m.get("interval_seconds").filter(|v| !v.is_null()) {
        e.interval_seconds = v
            .as_i64()
            .filter(|s| (10..=7 * 86_400).contains(s))
            .ok_or_else(|| ApiError::bad_request("interval_seconds must be 10..=604800"))?;
    }
    if let Some(v) = m.get("api_json").filter(|v| !v.is_null()) {
        let o = v
            .as_object()
            .ok_or_else(|| ApiError::bad_request("Field `api_json` must be object"))?;
        e.config = check_config(&state, &e.name, api, o.clone(), Some(&e.config))?;
    }
    service::save(&state.store, &e).await?;
    Ok(Json(e))
}

/// `DELETE /c/exchange/<name>`: removes the exchange and its bank;
/// `{"message": "Exchange deleted"}`, also when there was none (as HMA).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Message>> {
    caller.require(Role::Curator)?;
    service::delete(&state.store, &state.catalog, &caller.key_id, &name).await?;
    Ok(Json(Message {
        message: "Exchange deleted",
    }))
}

/// `GET /c/exchange/<name>/status`: HMA's `FetchStatus` fields (times in
/// Unix seconds), and Bulwark's `last_error`.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<FetchStatus>> {
    caller.require(Role::Curator)?;
    load_or_404(&state, &name).await?;
    Ok(Json(service::status(&state.store, &name).await?))
}

/// `POST /c/exchange/<name>/fetch` (Bulwark's): fetches now; answers the
/// status.
pub async fn fetch_now(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<FetchStatus>> {
    caller.require(Role::Curator)?;
    let (e, api) = load_or_404(&state, &name).await?;
    run(&state, &e, api).await?;
    Ok(Json(service::status(&state.store, &name).await?))
}

/// `GET /c/exchanges/apis`.
pub async fn apis(caller: Caller) -> ApiResult<Json<Vec<&'static str>>> {
    caller.require(Role::Curator)?;
    Ok(Json(Api::ALL.iter().map(|a| a.name()).collect()))
}

fn api_or_400(name: &str) -> Result<Api, ApiError> {
    Api::parse(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no such Exchange API '{}'",
            crate::error::snippet(name)
        ))
    })
}

async fn credentials(state: &AppState, api: Api) -> Result<Option<Value>, ApiError> {
    Ok(service::credentials(&state.store, &state.kek, api.name()).await?)
}

async fn api_auth(state: &AppState, api: Api) -> Result<ApiAuth, ApiError> {
    Ok(ApiAuth {
        has_set_authentification: service::has_credentials(&state.store, api.name()).await?,
        supports_authentification: api.credential_fields().is_some(),
    })
}

/// `GET /c/exchanges/api/<api>`.
pub async fn api_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ApiAuth>> {
    caller.require(Role::Curator)?;
    Ok(Json(api_auth(&state, api_or_400(&name)?).await?))
}

/// `POST /c/exchanges/api/<api>` with `{"credential_json": {...}}` (`{}`
/// unsets): stored sealed under the key-encryption key. Admin only.
pub async fn api_set(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<ApiAuth>> {
    caller.require(Role::Admin)?;
    let api = api_or_400(&name)?;
    let Body::Json(Value::Object(m)) = hashing::read_body(req, &state).await? else {
        return Err(ApiError::bad_request(
            "this endpoint expects a json object payload",
        ));
    };
    match m.get("credential_json") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) if c.is_empty() => {
            service::unset_credentials(&state.store, api.name()).await?;
        }
        Some(Value::Object(c)) => {
            let fields = api.credential_fields().ok_or_else(|| {
                ApiError::bad_request(format!("{} takes no credentials", api.name()))
            })?;
            for f in &fields {
                if f.required
                    && c.get(f.name)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    return Err(ApiError::bad_request(format!(
                        "credential_json.{} is required",
                        f.name
                    )));
                }
            }
            if let Some(k) = c
                .keys()
                .find(|k| !fields.iter().any(|f| f.name == k.as_str()))
            {
                return Err(ApiError::bad_request(format!(
                    "credential_json: unknown field {:?}",
                    crate::error::snippet(k)
                )));
            }
            service::set_credentials(&state.store, &state.kek, api.name(), c).await?;
        }
        Some(_) => return Err(ApiError::bad_request("credential_json must be an object")),
    }
    Ok(Json(api_auth(&state, api).await?))
}

/// What `/c/exchanges/api/<api>/schema` answers (fields in sorted order).
#[derive(Serialize)]
pub struct ApiSchema {
    /// The exchange's settings.
    config_schema: Schema,
    /// The API's credentials, if it takes any.
    credentials_schema: Option<Schema>,
}

/// `GET /c/exchanges/api/<api>/schema`.
pub async fn api_schema(caller: Caller, Path(name): Path<String>) -> ApiResult<Json<ApiSchema>> {
    caller.require(Role::Curator)?;
    let api = Api::parse(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "Exchange API '{}' not found",
            crate::error::snippet(&name)
        ))
    })?;
    Ok(Json(ApiSchema {
        config_schema: schema(&api.config_fields()),
        credentials_schema: api.credential_fields().map(|f| schema(&f)),
    }))
}

// ---- fetching ----

/// One page of a fetch.
struct Page {
    items: Vec<Item>,
    /// The checkpoint after this page.
    checkpoint: Value,
    /// Its time, Unix seconds (HMA's `checkpoint_ts`).
    checkpoint_ts: i64,
    /// More pages follow.
    more: bool,
    /// The items are the whole remote list: mapped items not in it go.
    full: bool,
    /// Signals of types Bulwark does not hold, skipped on this page.
    skipped: sources::Skipped,
}

fn config_str<'a>(e: &'a Exchange, k: &str) -> Result<&'a str, String> {
    e.config
        .get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{k} is not set"))
}

async fn get_text(
    policy: &Policy,
    url: &str,
    headers: Vec<(String, String)>,
) -> Result<String, String> {
    let f = fetch_with(policy, url, &headers).await.map_err(|e| {
        if e.code == "fetch_disabled" {
            "outgoing requests are off on this server: list the exchange's host in \
             [hma] fetch_allowed_hosts"
                .to_string()
        } else {
            e.message
        }
    })?;
    String::from_utf8(f.bytes.to_vec()).map_err(|_| "the answer is not UTF-8".to_string())
}

async fn next_page(
    state: &AppState,
    e: &Exchange,
    api: Api,
    checkpoint: &Value,
) -> Result<Page, String> {
    let policy = Policy::of(&state.config.hma);
    let now = now_ms() / 1000;
    match api {
        Api::Sample if checkpoint["done"] == json!(true) => Ok(Page {
            items: Vec::new(),
            checkpoint: checkpoint.clone(),
            checkpoint_ts: now,
            more: false,
            full: false,
            skipped: sources::Skipped::new(),
        }),
        Api::Sample => Ok(Page {
            items: sources::sample_items(),
            checkpoint: json!({"done": true}),
            checkpoint_ts: now,
            more: false,
            full: true,
            skipped: sources::Skipped::new(),
        }),
        Api::TeFile => {
            let text = get_text(&policy, config_str(e, "url")?, Vec::new()).await?;
            use sha2::Digest;
            let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
            if checkpoint["sha256"] == json!(digest) {
                return Ok(Page {
                    items: Vec::new(),
                    checkpoint: checkpoint.clone(),
                    checkpoint_ts: now,
                    more: false,
                    full: false,
                    skipped: sources::Skipped::new(),
                });
            }
            let (items, rejected, skipped) = sources::parse_te_file(&text);
            if !rejected.is_empty() {
                tracing::warn!(
                    "exchange {}: {} lines rejected (first: line {}: {})",
                    e.name,
                    rejected.len(),
                    rejected[0].0,
                    rejected[0].1
                );
            }
            Ok(Page {
                items,
                checkpoint: json!({"sha256": digest, "rejected_lines": rejected.len()}),
                checkpoint_ts: now,
                more: false,
                full: true,
                skipped,
            })
        }
        Api::Bulwark => {
            let base = config_str(e, "url")?.trim_end_matches('/');
            let bank = config_str(e, "remote_bank")?;
            let sealed = config_str(e, "key_sealed")?;
            let key = state
                .kek
                .open(&seal_name(&e.name), sealed)
                .map_err(|e| e.to_string())?;
            let key = String::from_utf8(key.to_vec()).map_err(|_| "the sealed key is not text")?;
            let after = checkpoint["after"].as_i64().unwrap_or(0);
            let mut url = reqwest::Url::parse(&format!("{base}/v1/banks/changes"))
                .map_err(|e| e.to_string())?;
            url.path_segments_mut()
                .map_err(|_| "the URL cannot be a base")?
                .pop()
                .push(bank)
                .push("changes");
            url.query_pairs_mut()
                .append_pair("after", &after.to_string())
                .append_pair("limit", "500");
            let text = get_text(
                &policy,
                url.as_str(),
                vec![("authorization".into(), format!("Bearer {key}"))],
            )
            .await?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| format!("the leader answered invalid JSON: {e}"))?;
            let (items, next, more, skipped) = sources::parse_bulwark_changes(&v)?;
            Ok(Page {
                items,
                checkpoint: json!({"after": next}),
                checkpoint_ts: now,
                more,
                full: false,
                skipped,
            })
        }
        Api::Ncmec => {
            let creds = credentials(state, Api::Ncmec)
                .await
                .map_err(|e| e.message)?
                .ok_or("set NCMEC credentials first (POST /c/exchanges/api/ncmec)")?;
            let auth = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                creds["user"].as_str().unwrap_or_default(),
                creds["password"].as_str().unwrap_or_default()
            ));
            let base = e
                .config
                .get("base_url")
                .and_then(Value::as_str)
                .or_else(|| {
                    e.config
                        .get("environment")
                        .and_then(Value::as_str)
                        .and_then(sources::ncmec_environment)
                })
                .unwrap_or(sources::NCMEC_ENVIRONMENTS[0].1)
                .trim_end_matches('/')
                .to_string();
            // A range `from..to` is fetched to its end (NCMEC's entries are
            // not in time order, so only an exhausted range is a safe
            // checkpoint); `to` is kept while paging so that the next range
            // starts where this one ended.
            let from = checkpoint["ts"]
                .as_i64()
                .or(e.config.get("start_ts").and_then(Value::as_i64))
                .unwrap_or(0);
            let to = checkpoint["to"]
                .as_i64()
                .unwrap_or(now - NCMEC_END_MARGIN_SECS)
                .max(from);
            let url = match checkpoint["next"].as_str().filter(|n| !n.is_empty()) {
                // The `next` link is a path under the base (never another host).
                Some(next) if next.starts_with('/') && !next.starts_with("//") => {
                    format!("{base}{next}")
                }
                Some(next) => {
                    return Err(format!(
                        "NCMEC's next link is not a path: {}",
                        crate::error::snippet(next)
                    ));
                }
                None => {
                    let fmt = |t: i64| crate::db::rfc3339(t * 1000);
                    let mut u = reqwest::Url::parse(&format!("{base}/v2/entries"))
                        .map_err(|e| e.to_string())?;
                    u.query_pairs_mut()
                        .append_pair("from", &fmt(from))
                        .append_pair("to", &fmt(to));
                    u.to_string()
                }
            };
            let following = checkpoint["next"].as_str().is_some_and(|n| !n.is_empty());
            let xml = match get_text(
                &policy,
                &url,
                vec![("authorization".into(), format!("Basic {auth}"))],
            )
            .await
            {
                Ok(xml) => xml,
                // A stored `next` link can go stale (NCMEC's cursors do not
                // last): fetch the range again from its start (applying is
                // idempotent) rather than fail on it forever. A failure on
                // the range's first page is an error as usual.
                Err(err) if following => {
                    tracing::warn!(
                        "exchange {}: NCMEC's next link failed ({err}); fetching the range again",
                        e.name
                    );
                    return Ok(Page {
                        items: Vec::new(),
                        checkpoint: json!({"ts": from, "to": to}),
                        checkpoint_ts: from,
                        more: true,
                        full: false,
                        skipped: sources::Skipped::new(),
                    });
                }
                Err(err) => return Err(err),
            };
            let (mut items, next, _max_ts, skipped) = sources::parse_ncmec(&xml)?;
            if let Some(only) = e.config.get("only_esp_ids").and_then(Value::as_array) {
                let only: HashSet<String> = only.iter().map(Value::to_string).collect();
                items.retain(|it| {
                    it.key
                        .split_once('-')
                        .is_some_and(|(member, _)| only.contains(member))
                });
            }
            let (checkpoint, checkpoint_ts) = if next.is_empty() {
                (json!({"ts": to}), to)
            } else {
                (json!({"ts": from, "to": to, "next": next}), from)
            };
            Ok(Page {
                items,
                checkpoint,
                checkpoint_ts,
                more: !next.is_empty(),
                full: false,
                skipped,
            })
        }
        Api::StopNcii => {
            let creds = credentials(state, Api::StopNcii)
                .await
                .map_err(|e| e.message)?
                .ok_or("set StopNCII credentials first (POST /c/exchanges/api/stopncii)")?;
            let base = e
                .config
                .get("base_url")
                .and_then(Value::as_str)
                .unwrap_or("https://api.stopncii.org/v1")
                .trim_end_matches('/')
                .to_string();
            let start = checkpoint["ts"]
                .as_i64()
                .or(e.config.get("start_ts").and_then(Value::as_i64))
                .unwrap_or(10);
            let mut u =
                reqwest::Url::parse(&format!("{base}/FetchHashes")).map_err(|e| e.to_string())?;
            u.query_pairs_mut()
                .append_pair("startTimestamp", &start.to_string())
                .append_pair("pageSize", "800");
            if let Some(t) = checkpoint["page"].as_str() {
                u.query_pairs_mut().append_pair("nextPageToken", t);
            }
            let headers = vec![
                (
                    "ocp-apim-subscription-key".into(),
                    creds["subscription_key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
                (
                    "x-functions-key".into(),
                    creds["fetch_function_key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            ];
            let body = get_text(&policy, u.as_str(), headers).await?;
            let (items, token, next_ts, skipped) = sources::parse_stopncii(&body)?;
            let more = token.is_some();
            let cp = match token {
                Some(t) => json!({"ts": start, "page": t}),
                None => json!({"ts": next_ts}),
            };
            Ok(Page {
                items,
                checkpoint: cp,
                checkpoint_ts: next_ts,
                more,
                full: false,
                skipped,
            })
        }
    }
}

fn new_content(e: &Exchange, it: &Item) -> NewContent {
    let mut signals: Vec<SignalRow> = it
        .signals
        .iter()
        .map(|(s, q)| SignalRow {
            signal_type: s.signal_type().name().to_string(),
            value: s.value(),
            quality: q.map(i64::from),
        })
        .chain(it.text.iter().map(|t| SignalRow {
            signal_type: t.signal_type().name().to_string(),
            value: t.value(),
            quality: None,
        }))
        .collect();
    signals.sort_by(|a, b| (&a.signal_type, &a.value).cmp(&(&b.signal_type, &b.value)));
    signals.dedup_by(|a, b| a.signal_type == b.signal_type);
    let dedup_key = signals
        .iter()
        .map(|s| format!("{}:{}", s.signal_type, s.value))
        .collect::<Vec<_>>()
        .join("|");
    let mut meta = Map::new();
    meta.insert(
        "collab".into(),
        json!({ (e.name.clone()): [it.key.clone()] }),
    );
    if let Some(m) = &it.metadata {
        meta.insert("json".into(), m.clone());
    }
    NewContent {
        kind: "signals",
        dedup_key,
        note: it.note.clone(),
        metadata: Some(Value::Object(meta).to_string()),
        source: Some(format!("exchange {} ({})", e.name, e.api)),
        signals,
        frames: Vec::new(),
        frame_extras: Vec::new(),
    }
}

/// Applies items to the exchange's bank; the number applied.
async fn apply(
    state: &AppState,
    e: &Exchange,
    bank: &db::BankRow,
    items: &[Item],
) -> Result<i64, ApiError> {
    let caller = Caller {
        key_id: format!("exchange:{}", e.name),
        role: Role::Curator,
        device: None,
    };
    let s = &state.store;
    let mut n = 0;
    for it in items {
        let want = new_content(e, it);
        if !it.deleted && service::unchanged(s, &e.name, &it.key, &want).await? {
            continue;
        }
        service::unmap(s, &state.catalog, &caller.key_id, bank, &e.name, &it.key).await?;
        if it.deleted || (it.signals.is_empty() && it.text.is_empty()) {
            n += 1;
            continue;
        }
        match v1content::insert_one(state, &caller, bank, &want).await {
            Ok((id, _)) => {
                service::map(s, &e.name, &it.key, id).await?;
                n += 1;
            }
            // Below the bank's quality floor: not banked (it would match unrelated images).
            Err(err) if err.code == "low_quality" => {
                tracing::info!("exchange {}: {} skipped: {}", e.name, it.key, err.message);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(n)
}

/// NCMEC ranges end this many seconds before now (as python-threatexchange's
/// client: entries stamped at the very end of a range may not all be
/// listed yet).
const NCMEC_END_MARGIN_SECS: i64 = 5;

/// Most pages one run fetches before yielding to the next run.
const MAX_PAGES_PER_RUN: usize = 200;

/// Runs one fetch of an exchange: pages until up to date, each page's
/// items applied and its checkpoint stored before the next.
pub async fn run(state: &AppState, e: &Exchange, api: Api) -> Result<(), ApiError> {
    let s = &state.store;
    service::claim(s, &e.name, now_ms()).await?;
    let result: Result<(), String> = async {
        let bank = bank_or_404(state, &e.name).await.map_err(|e| e.message)?;
        let mut checkpoint = service::checkpoint(s, &e.name)
            .await
            .map_err(|e| e.to_string())?;
        for _ in 0..MAX_PAGES_PER_RUN {
            let page = next_page(state, e, api, &checkpoint).await?;
            let n = apply(state, e, &bank, &page.items)
                .await
                .map_err(|e| e.message)?;
            if page.full {
                let keep: HashSet<&str> = page.items.iter().map(|i| i.key.as_str()).collect();
                let actor = format!("exchange:{}", e.name);
                service::unmap_missing(s, &state.catalog, &actor, &bank, &e.name, &keep).await?;
            }
            if !page.skipped.is_empty() {
                tracing::info!(
                    "exchange {}: skipped signals of types Bulwark does not hold: {:?}",
                    e.name,
                    page.skipped
                );
            }
            checkpoint = service::record_page(
                s,
                &e.name,
                &checkpoint,
                PageDone {
                    checkpoint: page.checkpoint,
                    checkpoint_ts: page.checkpoint_ts,
                    applied: n,
                    more: page.more,
                    full: page.full,
                    skipped: &page.skipped,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            if !page.more {
                break;
            }
        }
        Ok(())
    }
    .await;
    let error = result
        .as_ref()
        .err()
        .map(|m| crate::error::client_message(m));
    service::finish(s, &e.name, now_ms(), error.as_deref()).await?;
    if let Err(m) = result {
        tracing::warn!("exchange {} fetch failed: {m}", e.name);
    }
    Ok(())
}

/// Fetches every enabled exchange when its interval has passed, forever.
pub fn spawn_scheduler(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(
                state
                    .config
                    .hma
                    .exchange_poll
                    .max(Duration::from_millis(100)),
            )
            .await;
            if let Err(e) = run_due(&state).await {
                tracing::warn!("exchange scheduler: {}", e.message);
            }
        }
    })
}

/// Runs the exchanges that are due.
pub async fn run_due(state: &AppState) -> Result<(), ApiError> {
    for name in service::due(&state.store, now_ms()).await? {
        if let Some((e, api)) = load(state, &name).await?
            && let Err(err) = run(state, &e, api).await
        {
            tracing::debug!("exchange {name}: {}", err.message);
        }
    }
    Ok(())
}

// ---- the change feed a follower reads ----

/// Query parameters.
#[derive(Deserialize)]
pub struct ChangesQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/banks/<bank>/changes?after=SEQ&limit=N` (curator): the content
/// of a bank changed after a change id, each with its current state (or
/// `deleted`), for a follower; `next_after` is the id to ask from next.
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Json<Feed>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let after = q.after.unwrap_or(0).max(0);
    Ok(Json(
        service::changes(&state.store, &bank, after, limit).await?,
    ))
}
