//! HMA curation: `/c/banks`, `/c/bank/<name>`, bank content and signals,
//! `/c/signal_type`, `/c/content_type`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use bulwark_service::hma::{self, HmaBank};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::hashing::{self, Body};
use super::{HMA_SIGNAL_TYPES, check_bank_name, hma_type_name, parse_bool};
use crate::AppState;
use crate::api::{bank_or_404, content as v1content};
use crate::auth::{Caller, Role};
use crate::db::{self, BankRow, ContentRow};
use crate::error::{ApiError, ApiResult};

/// Longest note HMA accepts, in characters.
pub const MAX_NOTE_CHARS: usize = 255;

/// `GET /c/banks`.
pub async fn banks(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<HmaBank>>> {
    caller.require(Role::Matcher)?;
    Ok(Json(hma::banks(&state.store).await?))
}

/// `GET /c/bank/<name>`.
pub async fn bank_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<HmaBank>> {
    caller.require(Role::Matcher)?;
    let b = hma::bank(&state.store, &name).await?;
    Ok(Json(hma::shown(&state.store, &b).await?))
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

/// Creates a bank with HMA's name rule (also used by exchanges); 403 if it
/// exists, as HMA answers.
pub async fn create_bank(
    state: &AppState,
    caller: &Caller,
    name: &str,
    ratio: f64,
) -> Result<BankRow, ApiError> {
    Ok(hma::create_bank(
        &state.store,
        &state.catalog,
        &caller.key_id,
        state.config.default_threshold,
        name,
        ratio,
    )
    .await?)
}

/// `POST /c/banks` with `{"name", "enabled"?, "enabled_ratio"?}`: 201.
pub async fn bank_create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<(StatusCode, Json<HmaBank>)> {
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
        Json(HmaBank {
            matching_enabled_ratio: ratio,
            name: bank.name,
        }),
    ))
}

/// `PUT /c/bank/<name>` with `{"name"?, "enabled"?, "enabled_ratio"?}`.
pub async fn bank_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<HmaBank>> {
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
            Some(n.as_str())
        }
        Some(_) => return Err(ApiError::bad_request("name must be a string")),
    };
    let ratio = ratio_from(m)?;
    Ok(Json(
        hma::update_bank(
            &state.store,
            &state.catalog,
            &caller.key_id,
            &bank,
            new_name,
            ratio,
        )
        .await?,
    ))
}

/// Deletes a bank and its content (also used by exchanges).
pub async fn delete_bank(
    state: &AppState,
    caller: &Caller,
    bank: &BankRow,
) -> Result<i64, ApiError> {
    Ok(hma::delete_bank(&state.store, &state.catalog, &caller.key_id, bank).await?)
}

/// HMA's `{"message": ...}` answer.
#[derive(Serialize)]
pub struct Message {
    /// What was done.
    pub message: &'static str,
}

/// `DELETE /c/bank/<name>`: `{"message": "Done"}`, also for a bank that
/// does not exist (as HMA answers).
pub async fn bank_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Message>> {
    caller.require(Role::Curator)?;
    if let Some(bank) = db::bank_by_name(&state.store, &name).await? {
        delete_bank(&state, &caller, &bank).await?;
    }
    Ok(Json(Message { message: "Done" }))
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
) -> ApiResult<Json<Added>> {
    caller.require(Role::Curator)?;
    let bank = hma::bank(&state.store, &bank_name).await?;
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
    Ok(Json(Added {
        id,
        signals: hashed.hma,
    }))
}

/// What `POST /c/bank/<name>/content` and `/signal` answer.
#[derive(Serialize)]
pub struct Added {
    /// The content id.
    id: i64,
    /// Its signals, `{TYPE: VALUE}`.
    signals: BTreeMap<String, String>,
}

/// A content item as HMA shows it (fields in sorted order, as HMA's JSON).
#[derive(Serialize)]
pub struct HmaContent {
    /// Its bank.
    bank: HmaBank,
    /// See [`hma::disable_until_ts`].
    disable_until_ts: i64,
    /// Its id.
    id: i64,
    /// `content_id`, `content_uri`, `json`, `collab`, when any is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
    /// Its note.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// Always null: Bulwark keeps no media.
    original_media_uri: Option<String>,
    /// `{TYPE: VALUE}` of the listed types, when asked for and any.
    #[serde(skip_serializing_if = "Option::is_none")]
    signals: Option<BTreeMap<String, String>>,
}

async fn content_json(
    state: &AppState,
    bank: &BankRow,
    c: &ContentRow,
    include_signals: bool,
    include_metadata: bool,
) -> Result<HmaContent, ApiError> {
    let mut out = HmaContent {
        bank: hma::shown(&state.store, bank).await?,
        disable_until_ts: hma::disable_until_ts(c),
        id: c.id,
        metadata: None,
        note: c.note.clone(),
        original_media_uri: None,
        signals: None,
    };
    if include_signals {
        let mut sigs = BTreeMap::new();
        let listed = super::listed_types(state);
        for s in db::signals_of(&state.store, c.id).await? {
            // A text/entity signal, when its type is listed (`[hma] signal_types`).
            if let Some(t) = crate::api::signals::text_type(&s.signal_type)
                && listed.contains(&super::AnyType::Text(t))
            {
                sigs.insert(t.name().to_string(), s.value);
                continue;
            }
            if let Ok(t) = s.signal_type.parse::<bulwark_banks::SignalType>() {
                // A photo is PDQ in HMA; its file MD5 is Bulwark's own.
                let photo_md5 = c.kind == "photo" && t == bulwark_banks::SignalType::Md5;
                if HMA_SIGNAL_TYPES.contains(&t) && !photo_md5 {
                    sigs.insert(hma_type_name(t).to_string(), s.value);
                }
            }
        }
        if !sigs.is_empty() {
            out.signals = Some(sigs);
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
                out.metadata = Some(keep);
            }
        }
    }
    Ok(out)
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
) -> ApiResult<Json<HmaContent>> {
    caller.require(Role::Curator)?;
    let bank = hma::bank(&state.store, &bank_name).await?;
    let c = hma::content(&state.store, &bank, id).await?;
    let sig = parse_bool(q.include_signals.as_deref(), false)?;
    let meta = parse_bool(q.include_metadata.as_deref(), true)?;
    Ok(Json(content_json(&state, &bank, &c, sig, meta).await?))
}

/// `PUT /c/bank/<name>/content/<id>` with `{"disable_until_ts"?, "note"?}`.
pub async fn content_update(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
    req: Request,
) -> ApiResult<Json<HmaContent>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let mut c = hma::content(&state.store, &bank, id).await?;
    let body = hashing::read_body(req, &state).await?;
    let m = object(&body)?;
    if let Some(v) = m.get("disable_until_ts") {
        let ts = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| ApiError::bad_request(format!("Invalid int: '{v}'")))?;
        (c.enabled, c.disabled_until) = hma::disable_until(ts)?;
    }
    let note_changed = m.contains_key("note");
    if note_changed {
        c.note = check_note(m.get("note"))?;
    }
    hma::update_content(
        &state.store,
        &state.catalog,
        &caller.key_id,
        &bank,
        &c,
        note_changed,
    )
    .await?;
    Ok(Json(content_json(&state, &bank, &c, false, true).await?))
}

/// What `DELETE /c/bank/<name>/content/<id>` answers.
#[derive(Serialize)]
pub struct Deleted {
    /// How many items were deleted (0 or 1).
    deleted: u64,
}

/// `DELETE /c/bank/<name>/content/<id>`: `{"deleted": N}` (0 when absent).
pub async fn content_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Deleted>> {
    caller.require(Role::Curator)?;
    let bank = hma::bank(&state.store, &bank_name).await?;
    let deleted =
        hma::delete_content(&state.store, &state.catalog, &caller.key_id, &bank, id).await?;
    Ok(Json(Deleted { deleted }))
}

/// `POST /c/bank/<name>/signal` with `{TYPE: VALUE, ..., "note"?}`.
pub async fn add_signal(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    req: Request,
) -> ApiResult<Json<Added>> {
    caller.require(Role::Curator)?;
    let bank = hma::bank(&state.store, &bank_name).await?;
    let body = hashing::read_body(req, &state).await?;
    let mut m = object(&body)?.clone();
    let note = check_note(m.remove("note").as_ref())?;
    if m.is_empty() {
        return Err(ApiError::bad_request("No signals given"));
    }
    let mut echo = BTreeMap::new();
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
        echo.insert(k.to_ascii_lowercase(), value);
    }
    let mut c = v1content::from_signals(&m, None)?;
    c.note = note;
    let (id, _) = v1content::insert_one(&state, &caller, &bank, &c).await?;
    Ok(Json(Added { id, signals: echo }))
}

/// A signal type or content type as HMA lists it (fields in sorted order).
#[derive(Serialize)]
pub struct SignalTypeShown {
    /// Always 1: every listed type is on.
    enabled_ratio: f64,
    /// Its HMA name.
    name: &'static str,
}

/// `GET /c/signal_type`: the types `[hma] signal_types` lists (HMA's
/// default `pdq`, `video_md5`; text and entity types when configured).
pub async fn signal_types(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SignalTypeShown>>> {
    caller.require(Role::Matcher)?;
    Ok(Json(
        super::listed_types(&state)
            .iter()
            .map(|t| SignalTypeShown {
                enabled_ratio: 1.0,
                name: t.hma_name(),
            })
            .collect(),
    ))
}

/// `PUT /c/signal_type/<name>`: Bulwark matches every signal type it
/// knows; per-type ratios are not offered.
pub async fn signal_type_update(caller: Caller, Path(name): Path<String>) -> ApiResult<()> {
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
    Ok(hma::type_stats(&state.store, t.db_name()).await?)
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

/// One signal type's index, as `/c/signal_type/index` shows it (fields in
/// sorted order).
#[derive(Serialize)]
pub struct TypeIndex {
    /// Signals of the type stored.
    db_size: i64,
    /// Unix time (s) the index holds every change to.
    index_built_to: i64,
    /// The index is stale.
    index_out_of_date: bool,
    /// Signals of the type indexed (every stored one).
    index_size: i64,
    /// Unix time (s) of the last change.
    newest_db_item: i64,
}

/// `GET /c/signal_type/index`: Bulwark's index applies this node's writes
/// at once and other replicas' within a poll; it is out of date when it is
/// stale (see [`super::matching::freshness`]).
pub async fn signal_type_index(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TypeQuery>,
) -> ApiResult<Json<BTreeMap<&'static str, TypeIndex>>> {
    caller.require(Role::Matcher)?;
    let f = super::matching::freshness(&state).await?;
    let mut out = BTreeMap::new();
    for t in selected_types(&state, q.signal_type.as_deref())? {
        let (n, at) = type_stats(&state, t).await?;
        out.insert(
            t.hma_name(),
            TypeIndex {
                db_size: n,
                index_built_to: f.built_to,
                index_out_of_date: f.stale,
                index_size: n,
                newest_db_item: at,
            },
        );
    }
    Ok(Json(out))
}

/// A content type as HMA lists it (fields in sorted order).
#[derive(Serialize)]
pub struct ContentTypeShown {
    /// Always true.
    enabled: bool,
    /// `photo`, `video`, `text`.
    name: &'static str,
}

/// `GET /c/content_type` (`text` too when a text/entity type is listed).
pub async fn content_types(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ContentTypeShown>>> {
    caller.require(Role::Matcher)?;
    let mut out = vec!["photo", "video"];
    if super::listed_types(&state)
        .iter()
        .any(|t| matches!(t, super::AnyType::Text(_)))
    {
        out.push("text");
    }
    Ok(Json(
        out.into_iter()
            .map(|name| ContentTypeShown {
                enabled: true,
                name,
            })
            .collect(),
    ))
}
