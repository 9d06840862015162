//! Exchanges: a named, scheduled fetch of signals into a bank of the same
//! name, with a checkpoint and a fetch status (HMA's `/c/exchanges...`),
//! and Bulwark's change feed that one instance follows another by.

use std::collections::HashSet;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::Row;

use super::curation::{create_bank, delete_bank, delete_content};
use super::fetch::{Policy, fetch_with};
use super::hashing::{self, Body};
use super::sources::{self, Api, Item, schema_json};
use crate::AppState;
use crate::api::{bank_or_404, content as v1content};
use crate::auth::{Caller, Role};
use crate::db::{self, NewContent, SignalRow, now_ms};
use crate::error::{ApiError, ApiResult};

/// An exchange as stored.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Its name (and its bank's).
    pub name: String,
    /// Its API.
    pub api: Api,
    /// Fetched on schedule.
    pub enabled: bool,
    /// API-specific settings (secrets sealed).
    pub config: Map<String, Value>,
    /// Seconds between fetches.
    pub interval_seconds: i64,
}

async fn load(state: &AppState, name: &str) -> Result<Option<Exchange>, ApiError> {
    let s = &state.store;
    let Some(r) = sqlx::query(&s.sql("SELECT * FROM hma_exchanges WHERE name = ?"))
        .bind(name)
        .fetch_optional(&s.pool)
        .await?
    else {
        return Ok(None);
    };
    let api: String = r.try_get("api")?;
    let config: String = r.try_get("config")?;
    Ok(Some(Exchange {
        name: r.try_get("name")?,
        api: Api::parse(&api)
            .ok_or_else(|| ApiError::internal(format!("unknown exchange api {api}")))?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        config: serde_json::from_str(&config).map_err(ApiError::internal)?,
        interval_seconds: r.try_get("interval_seconds")?,
    }))
}

async fn load_or_404(state: &AppState, name: &str) -> Result<Exchange, ApiError> {
    load(state, name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Exchange '{}' not found",
            crate::error::snippet(name)
        ))
    })
}

/// An exchange as the API shows it (sealed secrets as `has_key`).
fn exchange_json(e: &Exchange) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(e.name));
    m.insert("api".into(), json!(e.api.name()));
    m.insert("enabled".into(), json!(e.enabled));
    m.insert("interval_seconds".into(), json!(e.interval_seconds));
    for (k, v) in &e.config {
        if k == "key_sealed" {
            m.insert("has_key".into(), json!(true));
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
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
                json!(state.kek.seal(&seal_name(name), key.as_bytes())),
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
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let rows = sqlx::query("SELECT name FROM hma_exchanges ORDER BY name")
        .fetch_all(&state.store.pool)
        .await?;
    let names = rows
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!(names)))
}

/// `POST /c/exchanges` with `{"bank", "api", "api_json"}`: creates the
/// exchange and its bank; 201.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    if db::bank_by_name(&state.store, &bank).await?.is_some()
        || load(&state, &bank).await?.is_some()
    {
        return Err(ApiError::bad_request(format!(
            "a bank named {bank} exists; an exchange makes its own bank"
        )));
    }
    create_bank(&state, &caller, &bank, 1.0).await?;
    let s = &state.store;
    let now = now_ms();
    sqlx::query(&s.sql(
        "INSERT INTO hma_exchanges (name, api, enabled, config, interval_seconds, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(&bank)
    .bind(api.name())
    .bind(i64::from(enabled))
    .bind(Value::Object(config).to_string())
    .bind(interval)
    .bind(now)
    .bind(now)
    .execute(&s.pool)
    .await?;
    sqlx::query(&s.sql(
        "INSERT INTO hma_exchange_status (name, checkpoint_ts, up_to_date, fetched_items) VALUES (?, 0, 0, 0)",
    ))
    .bind(&bank)
    .execute(&s.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"message": "Created successfully"})),
    ))
}

/// `GET /c/exchange/<name>`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    Ok(Json(exchange_json(&load_or_404(&state, &name).await?)))
}

/// `PUT /c/exchange/<name>` with `{"enabled"?, "interval_seconds"?, "api_json"?}`.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let mut e = load_or_404(&state, &name).await?;
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
        e.config = check_config(&state, &e.name, e.api, o.clone(), Some(&e.config))?;
    }
    let s = &state.store;
    sqlx::query(&s.sql(
        "UPDATE hma_exchanges SET enabled = ?, interval_seconds = ?, config = ?, updated_at = ? WHERE name = ?",
    ))
    .bind(i64::from(e.enabled))
    .bind(e.interval_seconds)
    .bind(Value::Object(e.config.clone()).to_string())
    .bind(now_ms())
    .bind(&e.name)
    .execute(&s.pool)
    .await?;
    Ok(Json(exchange_json(&e)))
}

/// `DELETE /c/exchange/<name>`: removes the exchange and its bank;
/// `{"message": "Exchange deleted"}`, also when there was none (as HMA).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    if load(&state, &name).await?.is_some() {
        let s = &state.store;
        for sql in [
            "DELETE FROM hma_exchange_status WHERE name = ?",
            "DELETE FROM hma_follow_map WHERE exchange = ?",
            "DELETE FROM hma_exchanges WHERE name = ?",
        ] {
            sqlx::query(&s.sql(sql))
                .bind(&name)
                .execute(&s.pool)
                .await?;
        }
        if let Some(bank) = db::bank_by_name(s, &name).await? {
            delete_bank(&state, &caller, &bank).await?;
        }
    }
    Ok(Json(json!({"message": "Exchange deleted"})))
}

/// `GET /c/exchange/<name>/status`: HMA's `FetchStatus` fields (times in
/// Unix seconds), and Bulwark's `last_error`.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    load_or_404(&state, &name).await?;
    Ok(Json(status_json(&state, &name).await?))
}

async fn status_json(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let s = &state.store;
    let r = sqlx::query(&s.sql("SELECT * FROM hma_exchange_status WHERE name = ?"))
        .bind(name)
        .fetch_one(&s.pool)
        .await?;
    let secs = |c: &str| -> Result<Option<i64>, sqlx::Error> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(|ms| ms / 1000))
    };
    Ok(json!({
        "checkpoint_ts": r.try_get::<i64, _>("checkpoint_ts")?,
        "running_fetch_start_ts": secs("running_fetch_start_ts")?,
        "last_fetch_complete_ts": secs("last_fetch_complete_ts")?,
        "last_fetch_succeeded": r.try_get::<Option<i64>, _>("last_fetch_succeeded")?.map(|v| v != 0),
        "up_to_date": r.try_get::<i64, _>("up_to_date")? != 0,
        "fetched_items": r.try_get::<i64, _>("fetched_items")?,
        "last_error": r.try_get::<Option<String>, _>("last_error")?,
        "skipped_signals": r
            .try_get::<Option<String>, _>("checkpoint")?
            .and_then(|c| serde_json::from_str::<Value>(&c).ok())
            .and_then(|c| c.get("skipped").cloned())
            .unwrap_or_else(|| json!({})),
    }))
}

/// `POST /c/exchange/<name>/fetch` (Bulwark's): fetches now; answers the
/// status.
pub async fn fetch_now(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let e = load_or_404(&state, &name).await?;
    run(&state, &e).await?;
    Ok(Json(status_json(&state, &name).await?))
}

/// `GET /c/exchanges/apis`.
pub async fn apis(caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    Ok(Json(json!(
        Api::ALL.iter().map(|a| a.name()).collect::<Vec<_>>()
    )))
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
    let s = &state.store;
    let Some(r) = sqlx::query(&s.sql("SELECT sealed FROM hma_api_credentials WHERE api = ?"))
        .bind(api.name())
        .fetch_optional(&s.pool)
        .await?
    else {
        return Ok(None);
    };
    let sealed: String = r.try_get("sealed")?;
    let plain = state
        .kek
        .open(&format!("hma-api:{}", api.name()), &sealed)
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(ApiError::internal)
}

async fn api_json(state: &AppState, api: Api) -> Result<Value, ApiError> {
    let set = sqlx::query(
        &state
            .store
            .sql("SELECT api FROM hma_api_credentials WHERE api = ?"),
    )
    .bind(api.name())
    .fetch_optional(&state.store.pool)
    .await?
    .is_some();
    Ok(json!({
        "supports_authentification": api.credential_fields().is_some(),
        "has_set_authentification": set,
    }))
}

/// `GET /c/exchanges/api/<api>`.
pub async fn api_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    Ok(Json(api_json(&state, api_or_400(&name)?).await?))
}

/// `POST /c/exchanges/api/<api>` with `{"credential_json": {...}}` (`{}`
/// unsets): stored sealed under the key-encryption key. Admin only.
pub async fn api_set(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let api = api_or_400(&name)?;
    let Body::Json(Value::Object(m)) = hashing::read_body(req, &state).await? else {
        return Err(ApiError::bad_request(
            "this endpoint expects a json object payload",
        ));
    };
    let s = &state.store;
    match m.get("credential_json") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) if c.is_empty() => {
            sqlx::query(&s.sql("DELETE FROM hma_api_credentials WHERE api = ?"))
                .bind(api.name())
                .execute(&s.pool)
                .await?;
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
            let sealed = state.kek.seal(
                &format!("hma-api:{}", api.name()),
                Value::Object(c.clone()).to_string().as_bytes(),
            );
            sqlx::query(&s.sql(
                "INSERT INTO hma_api_credentials (api, sealed) VALUES (?, ?) \
                 ON CONFLICT (api) DO UPDATE SET sealed = excluded.sealed",
            ))
            .bind(api.name())
            .bind(sealed)
            .execute(&s.pool)
            .await?;
        }
        Some(_) => return Err(ApiError::bad_request("credential_json must be an object")),
    }
    Ok(Json(api_json(&state, api).await?))
}

/// `GET /c/exchanges/api/<api>/schema`.
pub async fn api_schema(caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let api = Api::parse(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "Exchange API '{}' not found",
            crate::error::snippet(&name)
        ))
    })?;
    Ok(Json(json!({
        "config_schema": schema_json(&api.config_fields()),
        "credentials_schema": api.credential_fields().map(|f| schema_json(&f)),
    })))
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

async fn next_page(state: &AppState, e: &Exchange, checkpoint: &Value) -> Result<Page, String> {
    let policy = Policy::of(&state.config.hma);
    let now = now_ms() / 1000;
    match e.api {
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
        source: Some(format!("exchange {} ({})", e.name, e.api.name())),
        signals,
        frames: Vec::new(),
    }
}

async fn mapped(state: &AppState, exchange: &str, key: &str) -> Result<Option<i64>, ApiError> {
    let s = &state.store;
    Ok(sqlx::query(
        &s.sql("SELECT local_id FROM hma_follow_map WHERE exchange = ? AND remote_id = ?"),
    )
    .bind(exchange)
    .bind(key)
    .fetch_optional(&s.pool)
    .await?
    .map(|r| r.try_get::<i64, _>("local_id"))
    .transpose()?)
}

async fn unmap(
    state: &AppState,
    caller: &Caller,
    bank: &db::BankRow,
    exchange: &str,
    key: &str,
) -> Result<(), ApiError> {
    if let Some(local) = mapped(state, exchange, key).await? {
        delete_content(state, caller, bank, local).await?;
        let s = &state.store;
        sqlx::query(&s.sql("DELETE FROM hma_follow_map WHERE exchange = ? AND remote_id = ?"))
            .bind(exchange)
            .bind(key)
            .execute(&s.pool)
            .await?;
    }
    Ok(())
}

/// Whether an item is banked already with the same signals, note and
/// metadata (a file re-read changes only what changed).
async fn unchanged(state: &AppState, e: &Exchange, it: &Item) -> Result<bool, ApiError> {
    let Some(local) = mapped(state, &e.name, &it.key).await? else {
        return Ok(false);
    };
    let want = new_content(e, it);
    let s = &state.store;
    let Some(row) = sqlx::query(&s.sql("SELECT * FROM content WHERE id = ?"))
        .bind(local)
        .fetch_optional(&s.pool)
        .await?
    else {
        return Ok(false);
    };
    let c = db::ContentRow::from_row(&row)?;
    let mut have = db::signals_of(s, local).await?;
    have.sort_by(|a, b| (&a.signal_type, &a.value).cmp(&(&b.signal_type, &b.value)));
    let same_meta = c
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        == want
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok());
    Ok(have == want.signals && c.note == want.note && same_meta)
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
        if !it.deleted && unchanged(state, e, it).await? {
            continue;
        }
        unmap(state, &caller, bank, &e.name, &it.key).await?;
        if it.deleted || (it.signals.is_empty() && it.text.is_empty()) {
            n += 1;
            continue;
        }
        match v1content::insert_one(state, &caller, bank, &new_content(e, it)).await {
            Ok((id, _)) => {
                sqlx::query(&s.sql(
                    "INSERT INTO hma_follow_map (exchange, remote_id, local_id) VALUES (?, ?, ?) \
                     ON CONFLICT (exchange, remote_id) DO UPDATE SET local_id = excluded.local_id",
                ))
                .bind(&e.name)
                .bind(&it.key)
                .bind(id)
                .execute(&s.pool)
                .await?;
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

/// The page's checkpoint carrying `skipped`: the counts of signals skipped
/// for their type ([`sources::map_signal`]) over every fetch so far, by the
/// remote's type name (shown by the status route as `skipped_signals`). A
/// page that is the whole remote list (`full`) replaces the counts.
fn with_skipped(mut next: Value, previous: &Value, page: &sources::Skipped, full: bool) -> Value {
    let mut total: sources::Skipped = if full {
        sources::Skipped::new()
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
        m.insert("skipped".into(), json!(total));
    }
    next
}

/// NCMEC ranges end this many seconds before now (as python-threatexchange's
/// client: entries stamped at the very end of a range may not all be
/// listed yet).
const NCMEC_END_MARGIN_SECS: i64 = 5;

/// Most pages one run fetches before yielding to the next run.
const MAX_PAGES_PER_RUN: usize = 200;

/// Runs one fetch of an exchange: pages until up to date, each page's
/// items applied and its checkpoint stored before the next.
pub async fn run(state: &AppState, e: &Exchange) -> Result<(), ApiError> {
    let s = &state.store;
    let started = now_ms();
    let claimed = sqlx::query(&s.sql(
        "UPDATE hma_exchange_status SET running_fetch_start_ts = ? WHERE name = ? \
         AND (running_fetch_start_ts IS NULL OR running_fetch_start_ts < ?)",
    ))
    .bind(started)
    .bind(&e.name)
    .bind(started - 3_600_000)
    .execute(&s.pool)
    .await?;
    if claimed.rows_affected() == 0 {
        return Err(ApiError::conflict(format!(
            "exchange {} is fetching already",
            e.name
        )));
    }
    let result: Result<(), String> = async {
        let bank = bank_or_404(state, &e.name).await.map_err(|e| e.message)?;
        let r = sqlx::query(&s.sql("SELECT checkpoint FROM hma_exchange_status WHERE name = ?"))
            .bind(&e.name)
            .fetch_one(&s.pool)
            .await
            .map_err(|e| e.to_string())?;
        let mut checkpoint: Value = r
            .try_get::<Option<String>, _>("checkpoint")
            .map_err(|e| e.to_string())?
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(Value::Null);
        for _ in 0..MAX_PAGES_PER_RUN {
            let page = next_page(state, e, &checkpoint).await?;
            let n = apply(state, e, &bank, &page.items)
                .await
                .map_err(|e| e.message)?;
            if page.full {
                let keep: HashSet<&str> = page.items.iter().map(|i| i.key.as_str()).collect();
                let rows =
                    sqlx::query(&s.sql("SELECT remote_id FROM hma_follow_map WHERE exchange = ?"))
                        .bind(&e.name)
                        .fetch_all(&s.pool)
                        .await
                        .map_err(|e| e.to_string())?;
                let caller = Caller {
                    key_id: format!("exchange:{}", e.name),
                    role: Role::Curator,
                    device: None,
                };
                for r in rows {
                    let k: String = r.try_get("remote_id").map_err(|e| e.to_string())?;
                    if !keep.contains(k.as_str()) {
                        unmap(state, &caller, &bank, &e.name, &k)
                            .await
                            .map_err(|e| e.message)?;
                    }
                }
            }
            checkpoint = with_skipped(page.checkpoint, &checkpoint, &page.skipped, page.full);
            if !page.skipped.is_empty() {
                tracing::info!(
                    "exchange {}: skipped signals of types Bulwark does not hold: {:?}",
                    e.name,
                    page.skipped
                );
            }
            sqlx::query(&s.sql(
                "UPDATE hma_exchange_status SET checkpoint = ?, checkpoint_ts = ?, \
                 fetched_items = fetched_items + ?, up_to_date = ? WHERE name = ?",
            ))
            .bind(checkpoint.to_string())
            .bind(page.checkpoint_ts)
            .bind(n)
            .bind(i64::from(!page.more))
            .bind(&e.name)
            .execute(&s.pool)
            .await
            .map_err(|e| e.to_string())?;
            if !page.more {
                break;
            }
        }
        Ok(())
    }
    .await;
    let (ok, err) = match &result {
        Ok(()) => (1, None),
        Err(m) => (0, Some(crate::error::client_message(m))),
    };
    sqlx::query(&s.sql(
        "UPDATE hma_exchange_status SET running_fetch_start_ts = NULL, last_fetch_complete_ts = ?, \
         last_fetch_succeeded = ?, last_error = ? WHERE name = ?",
    ))
    .bind(now_ms())
    .bind(ok)
    .bind(err)
    .bind(&e.name)
    .execute(&s.pool)
    .await?;
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
    let s = &state.store;
    let rows = sqlx::query(
        "SELECT e.name, e.interval_seconds, st.last_fetch_complete_ts FROM hma_exchanges e \
         JOIN hma_exchange_status st ON st.name = e.name WHERE e.enabled = 1",
    )
    .fetch_all(&s.pool)
    .await?;
    let now = now_ms();
    for r in rows {
        let name: String = r.try_get("name")?;
        let every: i64 = r.try_get("interval_seconds")?;
        let last: Option<i64> = r.try_get("last_fetch_complete_ts")?;
        if last.is_some_and(|l| now - l < every * 1000) {
            continue;
        }
        if let Some(e) = load(state, &name).await?
            && let Err(err) = run(state, &e).await
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
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let after = q.after.unwrap_or(0).max(0);
    let s = &state.store;
    let rows = sqlx::query(&s.sql(
        "SELECT seq, content_id FROM changes WHERE seq > ? AND bank_id = ? AND content_id IS NOT NULL \
         ORDER BY seq LIMIT ?",
    ))
    .bind(after)
    .bind(bank.id)
    .bind(limit)
    .fetch_all(&s.pool)
    .await?;
    let mut last = after;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let pairs: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| Ok((r.try_get("seq")?, r.try_get("content_id")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let now = now_ms();
    // Latest change of each content first-seen from the end, so that the
    // answer carries each item once, in its current state.
    for &(seq, id) in pairs.iter().rev() {
        last = last.max(seq);
        if !seen.insert(id) {
            continue;
        }
        let row = sqlx::query(&s.sql("SELECT * FROM content WHERE id = ? AND bank_id = ?"))
            .bind(id)
            .bind(bank.id)
            .fetch_optional(&s.pool)
            .await?;
        let Some(row) = row else {
            out.push(json!({"seq": seq, "content_id": id, "deleted": true}));
            continue;
        };
        let c = db::ContentRow::from_row(&row)?;
        let sigs = db::signals_of(s, id).await?;
        out.push(json!({
            "seq": seq,
            "content_id": id,
            "deleted": false,
            "enabled": c.enabled || c.disabled_until.is_some_and(|t| t <= now),
            "signals": sigs.iter().map(|x| json!({"signal_type": x.signal_type, "value": x.value, "quality": x.quality})).collect::<Vec<_>>(),
            "note": c.note,
            "metadata": c.metadata.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
        }));
    }
    out.reverse();
    Ok(Json(json!({
        "changes": out,
        "next_after": last,
        "more": pairs.len() as i64 == limit,
    })))
}
