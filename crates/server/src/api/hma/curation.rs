//! HMA curation: `/c/banks`, `/c/bank/<name>`, bank content and signals,
//! `/c/signal_type`, `/c/content_type`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::Row;

use super::hashing::{self, Body};
use super::{HMA_SIGNAL_TYPES, check_bank_name, hma_type_name, parse_bool};
use crate::AppState;
use crate::api::{bank_or_404, commit_bank_change, content as v1content};
use crate::auth::{Caller, Role};
use crate::catalog::DEFAULT_MIN_QUALITY;
use crate::db::{self, BankRow, ContentRow, now_ms};
use crate::error::{ApiError, ApiResult};

/// Longest note HMA accepts, in characters.
pub const MAX_NOTE_CHARS: usize = 255;

/// Every bank's HMA matching ratio, where one was set.
pub async fn ratios(state: &AppState) -> Result<HashMap<i64, f64>, ApiError> {
    let s = &state.store;
    let rows = sqlx::query("SELECT bank_id, enabled_ratio FROM hma_bank_ratio")
        .fetch_all(&s.pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("bank_id")?, r.try_get("enabled_ratio")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// A bank's HMA ratio: the one set, else 1 when enabled and 0 when not.
pub fn ratio_of(b: &BankRow, ratios: &HashMap<i64, f64>) -> f64 {
    if !b.enabled {
        return 0.0;
    }
    ratios.get(&b.id).copied().unwrap_or(1.0)
}

/// A bank as HMA shows it.
pub fn bank_json(b: &BankRow, ratios: &HashMap<i64, f64>) -> Value {
    json!({"name": b.name, "matching_enabled_ratio": ratio_of(b, ratios)})
}

/// `GET /c/banks`.
pub async fn banks(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let r = ratios(&state).await?;
    let out: Vec<Value> = db::banks(&state.store)
        .await?
        .iter()
        .map(|b| bank_json(b, &r))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// The bank named `name`, or HMA's 404 for it.
async fn hma_bank(state: &AppState, name: &str) -> Result<BankRow, ApiError> {
    db::bank_by_name(&state.store, name).await?.ok_or_else(|| {
        ApiError::not_found(format!("bank '{}' not found", crate::error::snippet(name)))
    })
}

/// `GET /c/bank/<name>`.
pub async fn bank_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let b = hma_bank(&state, &name).await?;
    Ok(Json(bank_json(&b, &ratios(&state).await?)))
}

fn object(body: &Body) -> Result<&Map<String, Value>, ApiError> {
    match body {
        Body::Json(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad_request(
            "this endpoint expects a json object payload",
        )),
    }
}

fn ratio_from(m: &Map<String, Value>) -> Result<Option<f64>, ApiError> {
    let ratio = match m.get("enabled_ratio") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| ApiError::bad_request("enabled_ratio must be a number in 0..=1"))?,
        ),
    };
    let enabled = match m.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) => Some(n.as_f64() != Some(0.0)),
        Some(_) => return Err(ApiError::bad_request("enabled must be a boolean")),
    };
    Ok(ratio.or(enabled.map(|e| if e { 1.0 } else { 0.0 })))
}

async fn set_ratio(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    state: &AppState,
    bank_id: i64,
    ratio: f64,
) -> Result<(), ApiError> {
    sqlx::query(&state.store.sql(
        "INSERT INTO hma_bank_ratio (bank_id, enabled_ratio) VALUES (?, ?) \
         ON CONFLICT (bank_id) DO UPDATE SET enabled_ratio = excluded.enabled_ratio",
    ))
    .bind(bank_id)
    .bind(ratio)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        &state
            .store
            .sql("UPDATE banks SET enabled = ?, updated_at = ? WHERE id = ?"),
    )
    .bind(i64::from(ratio > 0.0))
    .bind(now_ms())
    .bind(bank_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates a bank with HMA's name rule (also used by exchanges); 403 if it
/// exists, as HMA answers.
pub async fn create_bank(
    state: &AppState,
    caller: &Caller,
    name: &str,
    ratio: f64,
) -> Result<BankRow, ApiError> {
    check_bank_name(name)?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let now = now_ms();
    let row = sqlx::query(&s.sql(
        "INSERT INTO banks (name, threshold, enabled, description, provider, created_at, updated_at, min_quality) \
         VALUES (?, ?, ?, '', NULL, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING *",
    ))
    .bind(name)
    .bind(i64::from(state.config.default_threshold))
    .bind(i64::from(ratio > 0.0))
    .bind(now)
    .bind(now)
    .bind(i64::from(DEFAULT_MIN_QUALITY))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "conflict",
            "Bank already exists",
        ));
    };
    let bank = BankRow::from_row(&row)?;
    set_ratio(&mut tx, state, bank.id, ratio).await?;
    commit_bank_change(
        state,
        tx,
        caller,
        "bank.create",
        (bank.id, &bank.name),
        None,
        json!({"via": "hma", "matching_enabled_ratio": ratio}),
    )
    .await?;
    Ok(bank)
}

/// `POST /c/banks` with `{"name", "enabled"?, "enabled_ratio"?}`: 201.
pub async fn bank_create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Curator)?;
    let body = hashing::read_body(req, &state).await?;
    let m = object(&body)?;
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    let ratio = ratio_from(m)?.unwrap_or(1.0);
    let bank = create_bank(&state, &caller, name, ratio).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": bank.name, "matching_enabled_ratio": ratio})),
    ))
}

/// `PUT /c/bank/<name>` with `{"name"?, "enabled"?, "enabled_ratio"?}`.
pub async fn bank_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let body = hashing::read_body(req, &state).await?;
    let m = object(&body)?;
    let bank = db::bank_by_name(&state.store, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("Bank not found"))?;
    let new_name = match m.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => {
            check_bank_name(n)?;
            Some(n.clone())
        }
        Some(_) => return Err(ApiError::bad_request("name must be a string")),
    };
    let ratio = ratio_from(m)?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    if let Some(n) = new_name.as_ref().filter(|n| **n != bank.name) {
        let taken = sqlx::query(&s.sql("SELECT id FROM banks WHERE name = ?"))
            .bind(n)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "conflict",
                "Bank name already exists",
            ));
        }
        sqlx::query(&s.sql("UPDATE banks SET name = ?, updated_at = ? WHERE id = ?"))
            .bind(n)
            .bind(now_ms())
            .bind(bank.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&s.sql("UPDATE hma_exchanges SET name = ? WHERE name = ?"))
            .bind(n)
            .bind(&bank.name)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(r) = ratio {
        set_ratio(&mut tx, &state, bank.id, r).await?;
    }
    let final_name = new_name.clone().unwrap_or_else(|| bank.name.clone());
    commit_bank_change(
        &state,
        tx,
        &caller,
        "bank.update",
        (bank.id, &final_name),
        None,
        json!({"via": "hma", "renamed_from": new_name.as_ref().map(|_| &bank.name), "matching_enabled_ratio": ratio}),
    )
    .await?;
    let b = db::bank_by_name(&state.store, &final_name)
        .await?
        .ok_or_else(|| ApiError::not_found("Bank not found"))?;
    Ok(Json(bank_json(&b, &ratios(&state).await?)))
}

/// Deletes a bank and its content (also used by exchanges).
pub async fn delete_bank(
    state: &AppState,
    caller: &Caller,
    bank: &BankRow,
) -> Result<i64, ApiError> {
    let s = &state.store;
    let mut tx = s.begin().await?;
    let n: i64 = sqlx::query(&s.sql("SELECT COUNT(*) AS n FROM content WHERE bank_id = ?"))
        .bind(bank.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    sqlx::query(&s.sql("DELETE FROM banks WHERE id = ?"))
        .bind(bank.id)
        .execute(&mut *tx)
        .await?;
    commit_bank_change(
        state,
        tx,
        caller,
        "bank.delete",
        (bank.id, &bank.name),
        None,
        json!({"via": "hma", "content_deleted": n}),
    )
    .await?;
    Ok(n)
}

/// `DELETE /c/bank/<name>`: `{"message": "Done"}`, also for a bank that
/// does not exist (as HMA answers).
pub async fn bank_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    if let Some(bank) = db::bank_by_name(&state.store, &name).await? {
        delete_bank(&state, &caller, &bank).await?;
    }
    Ok(Json(json!({"message": "Done"})))
}

/// Checks HMA's content metadata: an object of `content_id`, `content_uri`
/// (strings) and `json` (an object); `collab` is dropped (it is the
/// server's own provenance).
pub fn check_metadata(v: Option<&Value>) -> Result<Option<Map<String, Value>>, ApiError> {
    let m = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::bad_request("metadata should be a json object")),
    };
    let mut out = Map::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("collab", _) | (_, Value::Null) => {}
            ("content_id" | "content_uri", Value::String(_)) | ("json", Value::Object(_)) => {
                out.insert(k.clone(), v.clone());
            }
            ("content_id" | "content_uri", _) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid metadata: {k} must be a string"
                )));
            }
            ("json", _) => {
                return Err(ApiError::bad_request(
                    "Invalid metadata: json must be an object",
                ));
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid metadata: unknown field {:?} (expected content_id, content_uri, json)",
                    crate::error::snippet(k)
                )));
            }
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Checks a note: a string of at most 255 characters; empty is none.
pub fn check_note(v: Option<&Value>) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_NOTE_CHARS => Err(ApiError::bad_request(
            format!("note must be at most {MAX_NOTE_CHARS} characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Bool(false)) => Ok(None),
        Some(_) => Err(ApiError::bad_request("note should be a string")),
    }
}

/// Query parameters.
#[derive(Deserialize)]
pub struct AddQuery {
    url: Option<String>,
    content_type: Option<String>,
    types: Option<String>,
}

/// `POST /c/bank/<name>/content`: by `?url=` (with `content_type`) or a
/// multipart upload (field named `photo` or `video`), with optional
/// `metadata` and `note` (JSON body, or form fields). Answers
/// `{"id", "signals": {TYPE: VALUE}}`.
pub async fn content_add(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(q): Query<AddQuery>,
    req: Request,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = hma_bank(&state, &bank_name).await?;
    let body = hashing::read_body(req, &state).await?;
    let (metadata, note) = match &body {
        Body::Json(Value::Object(m)) => (
            check_metadata(m.get("metadata"))?,
            check_note(m.get("note"))?,
        ),
        Body::Json(_) => return Err(ApiError::bad_request("expected a JSON object")),
        Body::Form(f) => {
            let meta = match f.fields.get("metadata") {
                None => None,
                Some(t) => {
                    let v: Value = serde_json::from_str(t).map_err(|_| {
                        ApiError::bad_request("metadata form field must be valid JSON")
                    })?;
                    check_metadata(Some(&v))?
                }
            };
            let note = check_note(
                f.fields
                    .get("note")
                    .map(|n| Value::String(n.clone()))
                    .as_ref(),
            )?;
            (meta, note)
        }
        Body::Empty => (None, None),
    };
    let hashed = if let Some(url) = q.url.as_deref().filter(|u| !u.is_empty()) {
        hashing::hash_url(&state, url, q.content_type.as_deref(), q.types.as_deref()).await?
    } else if let Body::Form(f) = body {
        hashing::hash_form(&state, f, q.types.as_deref()).await?
    } else {
        return Err(ApiError::bad_request(
            "Neither `url` nor multipart file upload was received",
        ));
    };
    let mut c = hashed.content;
    c.note = note;
    c.metadata = metadata.map(|m| Value::Object(m).to_string());
    let extras = if hashed.hma.contains_key("pdq") {
        hashed.extras.as_slice()
    } else {
        &[]
    };
    let (id, _) = v1content::insert_one_with_extras(&state, &caller, &bank, &c, extras).await?;
    Ok(Json(json!({"id": id, "signals": hashed.hma})))
}

async fn content_row(state: &AppState, bank: &BankRow, id: i64) -> Result<ContentRow, ApiError> {
    let s = &state.store;
    let row = sqlx::query(&s.sql("SELECT * FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank.id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("content '{id}' not found")))?;
    Ok(ContentRow::from_row(&row)?)
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

async fn content_json(
    state: &AppState,
    bank: &BankRow,
    c: &ContentRow,
    include_signals: bool,
    include_metadata: bool,
) -> Result<Value, ApiError> {
    let r = ratios(state).await?;
    let mut j = json!({
        "id": c.id,
        "disable_until_ts": disable_until_ts(c),
        "original_media_uri": null,
        "bank": bank_json(bank, &r),
    });
    if include_signals {
        let mut sigs = Map::new();
        let listed = super::listed_types(state);
        for s in db::signals_of(&state.store, c.id).await? {
            // A text/entity signal, when its type is listed (`[hma] signal_types`).
            if let Some(t) = crate::api::signals::text_type(&s.signal_type)
                && listed.contains(&super::AnyType::Text(t))
            {
                sigs.insert(t.name().to_string(), Value::String(s.value));
                continue;
            }
            if let Ok(t) = s.signal_type.parse::<bulwark_banks::SignalType>() {
                // A photo is PDQ in HMA; its file MD5 is Bulwark's own.
                let photo_md5 = c.kind == "photo" && t == bulwark_banks::SignalType::Md5;
                if HMA_SIGNAL_TYPES.contains(&t) && !photo_md5 {
                    sigs.insert(hma_type_name(t).to_string(), Value::String(s.value));
                }
            }
        }
        if !sigs.is_empty() {
            j["signals"] = Value::Object(sigs);
        }
    }
    if include_metadata {
        let stored = c
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok());
        if let Some(Value::Object(m)) = stored {
            let keep: Map<String, Value> = m
                .into_iter()
                .filter(|(k, _)| {
                    ["content_id", "content_uri", "json", "collab"].contains(&k.as_str())
                })
                .collect();
            if !keep.is_empty() {
                j["metadata"] = Value::Object(keep);
            }
        }
    }
    if let Some(n) = &c.note {
        j["note"] = json!(n);
    }
    Ok(j)
}

/// Query parameters.
#[derive(Deserialize)]
pub struct GetQuery {
    include_signals: Option<String>,
    include_metadata: Option<String>,
}

/// `GET /c/bank/<name>/content/<id>` (`include_signals`, default false;
/// `include_metadata`, default true).
pub async fn content_get(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
    Query(q): Query<GetQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = hma_bank(&state, &bank_name).await?;
    let c = content_row(&state, &bank, id).await?;
    let sig = parse_bool(q.include_signals.as_deref(), false)?;
    let meta = parse_bool(q.include_metadata.as_deref(), true)?;
    Ok(Json(content_json(&state, &bank, &c, sig, meta).await?))
}

/// Latest `disable_until_ts` accepted: five years from now.
fn five_years_from_now() -> i64 {
    now_ms() / 1000 + 5 * 365 * 86_400
}

/// `PUT /c/bank/<name>/content/<id>` with `{"disable_until_ts"?, "note"?}`.
pub async fn content_update(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
    req: Request,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let mut c = content_row(&state, &bank, id).await?;
    let body = hashing::read_body(req, &state).await?;
    let m = object(&body)?;
    if let Some(v) = m.get("disable_until_ts") {
        let ts = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| ApiError::bad_request(format!("Invalid int: '{v}'")))?;
        if ts < 0 {
            return Err(ApiError::bad_request(
                "disable_until_ts must be a non-negative integer",
            ));
        }
        if ts > five_years_from_now() {
            return Err(ApiError::bad_request(
                "disable_until_ts must be less than 5 years in the future",
            ));
        }
        (c.enabled, c.disabled_until) = match ts {
            1 => (true, None),
            0 => (false, None),
            t => (false, Some(t * 1000)),
        };
    }
    if m.contains_key("note") {
        c.note = check_note(m.get("note"))?;
    }
    let s = &state.store;
    let mut tx = s.begin().await?;
    sqlx::query(&s.sql(
        "UPDATE content SET enabled = ?, disabled_until = ?, note = ?, updated_at = ? WHERE id = ?",
    ))
    .bind(i64::from(c.enabled))
    .bind(c.disabled_until)
    .bind(&c.note)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    commit_bank_change(
        &state,
        tx,
        &caller,
        "content.update",
        (bank.id, &bank.name),
        Some(id),
        json!({"via": "hma", "disable_until_ts": disable_until_ts(&c), "note_changed": m.contains_key("note")}),
    )
    .await?;
    Ok(Json(content_json(&state, &bank, &c, false, true).await?))
}

/// `DELETE /c/bank/<name>/content/<id>`: `{"deleted": N}` (0 when absent).
pub async fn content_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = hma_bank(&state, &bank_name).await?;
    let n = delete_content(&state, &caller, &bank, id).await?;
    Ok(Json(json!({"deleted": n})))
}

/// Deletes one content item of a bank; the number deleted (0 or 1).
pub async fn delete_content(
    state: &AppState,
    caller: &Caller,
    bank: &BankRow,
    id: i64,
) -> Result<u64, ApiError> {
    let s = &state.store;
    let mut tx = s.begin().await?;
    let done = sqlx::query(&s.sql("DELETE FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank.id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    commit_bank_change(
        state,
        tx,
        caller,
        "content.delete",
        (bank.id, &bank.name),
        Some(id),
        json!({"via": "hma"}),
    )
    .await?;
    Ok(done.rows_affected())
}

/// `POST /c/bank/<name>/signal` with `{TYPE: VALUE, ..., "note"?}`.
pub async fn add_signal(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = hma_bank(&state, &bank_name).await?;
    let body = hashing::read_body(req, &state).await?;
    let mut m = object(&body)?.clone();
    let note = check_note(m.remove("note").as_ref())?;
    if m.is_empty() {
        return Err(ApiError::bad_request("No signals given"));
    }
    let mut echo = Map::new();
    for (k, v) in &m {
        let t = super::parse_any_type(k).map_err(|_| {
            ApiError::bad_request(format!("No such signal type {}", crate::error::snippet(k)))
        })?;
        let v = v
            .as_str()
            .ok_or_else(|| ApiError::bad_request(format!("Invalid {k} signal: not a string")))?;
        let value = match t {
            super::AnyType::Media(t) => t.parse(v).map(|s| s.value()),
            super::AnyType::Text(t) => t.parse(v).map(|s| s.value()),
        }
        .map_err(|e| ApiError::bad_request(format!("Invalid {k} signal: {e}")))?;
        echo.insert(k.to_ascii_lowercase(), Value::String(value));
    }
    let mut c = v1content::from_signals(&m, None)?;
    c.note = note;
    let (id, _) = v1content::insert_one(&state, &caller, &bank, &c).await?;
    Ok(Json(json!({"id": id, "signals": echo})))
}

/// `GET /c/signal_type`: the types `[hma] signal_types` lists (HMA's
/// default `pdq`, `video_md5`; text and entity types when configured).
pub async fn signal_types(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    Ok(Json(Value::Array(
        super::listed_types(&state)
            .iter()
            .map(|t| json!({"name": t.hma_name(), "enabled_ratio": 1.0}))
            .collect(),
    )))
}

/// `PUT /c/signal_type/<name>`: Bulwark matches every signal type it
/// knows; per-type ratios are not offered.
pub async fn signal_type_update(
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    super::parse_any_type(&name)?;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "per-signal-type ratios are not supported: every signal type is always on (use per-bank ratios)",
    ))
}

/// Number of stored signals of a type, and the time (s) of the last change.
pub async fn type_stats(state: &AppState, t: super::AnyType) -> Result<(i64, i64), ApiError> {
    let s = &state.store;
    let n: i64 = sqlx::query(&s.sql("SELECT COUNT(*) AS n FROM signals WHERE signal_type = ?"))
        .bind(t.db_name())
        .fetch_one(&s.pool)
        .await?
        .try_get("n")?;
    // The newest change by sequence (the primary key; `at` has no index).
    let at: Option<i64> = sqlx::query("SELECT at FROM changes ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&s.pool)
        .await?
        .map(|r| r.try_get("at"))
        .transpose()?;
    Ok((n, at.map_or(-1, |a| a / 1000)))
}

/// Query parameters.
#[derive(Deserialize)]
pub struct TypeQuery {
    signal_type: Option<String>,
}

/// The listed signal types a `signal_type=` query selects (400 if unknown).
pub fn selected_types(state: &AppState, q: Option<&str>) -> Result<Vec<super::AnyType>, ApiError> {
    let listed = super::listed_types(state);
    match q {
        None => Ok(listed),
        Some(n) => {
            let t = listed.iter().find(|t| t.hma_name() == n).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "No such signal type '{}'",
                    crate::error::snippet(n)
                ))
            })?;
            Ok(vec![*t])
        }
    }
}

/// `GET /c/signal_type/index`: Bulwark's index applies this node's writes
/// at once and other replicas' within a poll; it is out of date when it is
/// stale (see [`super::matching::freshness`]).
pub async fn signal_type_index(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TypeQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let f = super::matching::freshness(&state).await?;
    let mut out = Map::new();
    for t in selected_types(&state, q.signal_type.as_deref())? {
        let (n, at) = type_stats(&state, t).await?;
        out.insert(
            t.hma_name().into(),
            json!({"db_size": n, "index_size": n, "index_out_of_date": f.stale,
                   "newest_db_item": at, "index_built_to": f.built_to}),
        );
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /c/content_type` (`text` too when a text/entity type is listed).
pub async fn content_types(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let mut out = vec![
        json!({"name": "photo", "enabled": true}),
        json!({"name": "video", "enabled": true}),
    ];
    if super::listed_types(&state)
        .iter()
        .any(|t| matches!(t, super::AnyType::Text(_)))
    {
        out.push(json!({"name": "text", "enabled": true}));
    }
    Ok(Json(Value::Array(out)))
}
