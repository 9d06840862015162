//! `/v1/banks/{bank}/content`: add (upload or signals), list, get, enable or
//! disable (also until a time), delete.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bulwark_banks::SignalType;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{JsonBody, Upload, bank_or_404};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, ContentRow, NewContent, SignalRow, now_ms, parse_rfc3339, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::media::Hashed;

/// Content as the API shows it.
pub fn content_json(c: &ContentRow, bank: &str, signals: &[SignalRow], frames: usize) -> Value {
    let now = now_ms();
    let active = c.enabled || c.disabled_until.is_some_and(|t| t <= now);
    let mut j = json!({
        "id": c.id,
        "bank": bank,
        "kind": c.kind,
        "signals": signals.iter().map(|s| json!({
            "signal_type": s.signal_type,
            "signal": s.value,
            "quality": s.quality,
        })).collect::<Vec<_>>(),
        "note": c.note,
        "metadata": c.metadata.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
        "enabled": active,
        "disabled_until": if c.enabled { None } else { c.disabled_until.map(rfc3339) },
        "added_by": c.added_by,
        "source": c.source,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    });
    if c.kind == "video" {
        j["frames"] = json!(frames);
    }
    j
}

/// Checks optional metadata: a JSON object of at most 64 KiB.
pub fn metadata_text(v: Option<&Value>) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(m @ Value::Object(_)) => {
            let t = m.to_string();
            if t.len() > 64 << 10 {
                return Err(ApiError::bad_request("metadata is over 64 KiB"));
            }
            Ok(Some(t))
        }
        Some(_) => Err(ApiError::bad_request("metadata must be a JSON object")),
    }
}

/// Content to bank from an uploaded file's hashes.
pub fn from_hashed(h: &Hashed) -> NewContent {
    let sig = |t: &str, v: String, q: Option<i64>| SignalRow {
        signal_type: t.to_string(),
        value: v,
        quality: q,
    };
    match h {
        Hashed::Photo {
            pdq,
            quality,
            md5,
            sha256,
            ..
        } => NewContent {
            kind: "photo",
            dedup_key: format!("sha256:{}", hex::encode(sha256)),
            note: None,
            metadata: None,
            source: None,
            signals: vec![
                sig("pdq", pdq.to_string(), Some(*quality as i64)),
                sig("md5", hex::encode(md5), None),
                sig("sha256", hex::encode(sha256), None),
            ],
            frames: Vec::new(),
        },
        Hashed::Video {
            frames,
            md5,
            sha256,
        } => NewContent {
            kind: "video",
            dedup_key: format!("sha256:{}", hex::encode(sha256)),
            note: None,
            metadata: None,
            source: None,
            signals: vec![
                sig("md5", hex::encode(md5), None),
                sig("sha256", hex::encode(sha256), None),
            ],
            frames: frames.clone(),
        },
    }
}

/// Content to bank from signals given as `{"pdq": HEX, "md5": HEX, ...}`;
/// text and entity signals too (`{"phone": "+1 415 555 0142"}`, canonicalised).
pub fn from_signals(
    map: &serde_json::Map<String, Value>,
    quality: Option<u32>,
) -> Result<NewContent, ApiError> {
    if map.is_empty() {
        return Err(ApiError::bad_request(
            "no signals given (e.g. {\"pdq\": \"<64 hex digits>\"})",
        ));
    }
    let mut by_type: HashMap<SignalType, String> = HashMap::new();
    // Text and entity signals (issue 18), after the media ones in the dedup key.
    let mut text: std::collections::BTreeMap<&'static str, String> = Default::default();
    for (k, v) in map {
        let v = v
            .as_str()
            .ok_or_else(|| ApiError::bad_request(format!("signal {k} must be a string")))?;
        if let Some(tt) = super::signals::text_type(k) {
            let s = tt
                .parse(v)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            if text.insert(tt.name(), s.value()).is_some() {
                return Err(ApiError::bad_request(format!(
                    "signal type {tt} given twice"
                )));
            }
            continue;
        }
        let t: SignalType = k.parse().map_err(|_| {
            ApiError::bad_request(
                bulwark_banks::SignalError::UnknownAnyType(crate::error::snippet(k)).to_string(),
            )
        })?;
        let s = t
            .parse(v)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if by_type.insert(t, s.value()).is_some() {
            return Err(ApiError::bad_request(format!(
                "signal type {t} given twice"
            )));
        }
    }
    if let Some(q) = quality
        && q > 100
    {
        return Err(ApiError::bad_request("quality must be 0..=100"));
    }
    let mut types: Vec<SignalType> = by_type.keys().copied().collect();
    types.sort();
    let dedup_key = types
        .iter()
        .map(|t| format!("{t}:{}", by_type[t]))
        .chain(text.iter().map(|(t, v)| format!("{t}:{v}")))
        .collect::<Vec<_>>()
        .join("|");
    Ok(NewContent {
        kind: "signals",
        dedup_key,
        note: None,
        metadata: None,
        source: None,
        signals: types
            .iter()
            .map(|t| SignalRow {
                signal_type: t.name().to_string(),
                value: by_type[t].clone(),
                quality: (*t == SignalType::Pdq)
                    .then_some(quality.map(i64::from))
                    .flatten(),
            })
            .chain(text.iter().map(|(t, v)| SignalRow {
                signal_type: t.to_string(),
                value: v.clone(),
                quality: None,
            }))
            .collect(),
        frames: Vec::new(),
    })
}

/// Adds content in one transaction (with its audit entry and change row) and
/// applies it to the index; returns (id, newly added).
pub async fn insert_one(
    state: &AppState,
    caller: &Caller,
    bank: &db::BankRow,
    c: &NewContent,
) -> Result<(i64, bool), ApiError> {
    insert_one_with_extras(state, caller, bank, c, &[]).await
}

/// [`insert_one`] of a photo hashed from media, storing with it the extra
/// PDQ hashes the server's configuration banks (`crate::extras`): the kinds
/// of [`crate::media::Pool::bank_kinds`] among `extras`, at or above the
/// bank's quality floor.
pub async fn insert_one_with_extras(
    state: &AppState,
    caller: &Caller,
    bank: &db::BankRow,
    c: &NewContent,
    extras: &[bulwark_pdq::KindHash],
) -> Result<(i64, bool), ApiError> {
    for sig in c.signals.iter().filter(|s| s.signal_type == "pdq") {
        let usable = sig.value.parse::<bulwark_pdq::PdqHash>().is_ok_and(|h| {
            crate::catalog::pdq_usable(
                &h,
                sig.quality.map(|q| q.clamp(0, 100) as u32),
                bank.min_quality.clamp(0, 100) as u32,
            )
        });
        if !usable {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "low_quality",
                format!(
                    "this PDQ hash's quality is below bank {:?}'s floor of {} (or the hash is degenerate, e.g. a blank image); it would match unrelated images",
                    crate::error::snippet(&bank.name),
                    bank.min_quality
                ),
            ));
        }
    }
    let s = &state.store;
    let mut tx = s.begin().await?;
    match db::insert_content(s, &mut tx, bank.id, &caller.key_id, c).await? {
        Some(id) => {
            let banked = crate::extras::to_bank(extras, state.media.bank_kinds(), bank.min_quality);
            crate::extras::insert(s, &mut tx, bank.id, id, &banked).await?;
            let detail = json!({
                "kind": c.kind,
                "signals": c.signals.iter().map(|s| format!("{} {}", s.signal_type, s.value)).collect::<Vec<_>>(),
                "frames": c.frames.len(),
                "source": c.source,
            });
            super::commit_bank_change(
                state,
                tx,
                caller,
                "content.add",
                (bank.id, &bank.name),
                Some(id),
                detail,
            )
            .await?;
            Ok((id, true))
        }
        None => {
            tx.rollback().await?;
            let id = db::content_by_dedup(s, bank.id, &c.dedup_key)
                .await?
                .ok_or_else(|| ApiError::internal("dedup conflict without a row"))?;
            Ok((id, false))
        }
    }
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    upload: Upload,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let mut extras = Vec::new();
    let mut c = match upload {
        Upload::File { file, fields } => {
            let file = file
                .ok_or_else(|| ApiError::bad_request("the multipart body has no `file` field"))?;
            let _slot = state.media.upload_slot().await?;
            let hashed = state.media.hash_for_bank(file).await?;
            if let Hashed::Photo { extras: e, .. } = &hashed {
                extras.clone_from(e);
            }
            let mut c = from_hashed(&hashed);
            c.note = fields.get("note").cloned();
            c.source = fields.get("source").cloned();
            if let Some(m) = fields.get("metadata") {
                let v: Value = serde_json::from_str(m)
                    .map_err(|e| ApiError::bad_request(format!("metadata is not JSON: {e}")))?;
                c.metadata = metadata_text(Some(&v))?;
            }
            c
        }
        Upload::Json(v) => {
            let obj = v
                .as_object()
                .ok_or_else(|| ApiError::bad_request("expected a JSON object"))?;
            for k in obj.keys() {
                if !["signals", "quality", "note", "metadata", "source"].contains(&k.as_str()) {
                    return Err(ApiError::bad_request(format!("unknown field {k:?}")));
                }
            }
            let signals = obj
                .get("signals")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    ApiError::bad_request("`signals` must be an object like {\"pdq\": HEX}")
                })?;
            let quality =
                match obj.get("quality") {
                    None | Some(Value::Null) => None,
                    Some(q) => Some(q.as_u64().and_then(|q| u32::try_from(q).ok()).ok_or_else(
                        || ApiError::bad_request("quality must be an integer 0..=100"),
                    )?),
                };
            let mut c = from_signals(signals, quality)?;
            c.note = obj.get("note").and_then(Value::as_str).map(str::to_string);
            c.source = obj
                .get("source")
                .and_then(Value::as_str)
                .map(str::to_string);
            c.metadata = metadata_text(obj.get("metadata"))?;
            c
        }
    };
    if c.note.as_ref().is_some_and(|n| n.len() > 16 << 10) {
        return Err(ApiError::bad_request("note is over 16 KiB"));
    }
    if c.source.as_ref().is_some_and(|n| n.len() > 1024) {
        return Err(ApiError::bad_request("source is over 1 KiB"));
    }
    c.note = c.note.filter(|n| !n.is_empty());
    let (id, added) = insert_one_with_extras(&state, &caller, &bank, &c, &extras).await?;
    let mut j = load_json(&state, &bank, id).await?;
    j["duplicate"] = json!(!added);
    if !extras.is_empty() {
        let stored = crate::extras::of_content(&state.store, id).await?;
        j["extra_hashes"] = stored
            .into_iter()
            .map(|(k, v)| json!({"hash_kind": k, "pdq": v}))
            .collect();
    }
    Ok((
        if added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(j),
    ))
}

async fn load_json(state: &AppState, bank: &db::BankRow, id: i64) -> Result<Value, ApiError> {
    let s = &state.store;
    let row = sqlx::query(&s.sql("SELECT * FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank.id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no content {id} in bank {:?}", bank.name)))?;
    let c = ContentRow::from_row(&row)?;
    let signals = db::signals_of(s, id).await?;
    let frames = if c.kind == "video" {
        sqlx::query(&s.sql("SELECT COUNT(*) AS n FROM video_frames WHERE content_id = ?"))
            .bind(id)
            .fetch_one(&s.pool)
            .await?
            .try_get::<i64, _>("n")? as usize
    } else {
        0
    };
    Ok(content_json(&c, &bank.name, &signals, frames))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    Ok(Json(load_json(&state, &bank, id).await?))
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
    after: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(p): Query<Page>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let s = &state.store;
    let rows = sqlx::query(
        &s.sql("SELECT * FROM content WHERE bank_id = ? AND id > ? ORDER BY id LIMIT ?"),
    )
    .bind(bank.id)
    .bind(p.after.unwrap_or(0))
    .bind(limit)
    .fetch_all(&s.pool)
    .await?;
    let contents = rows
        .iter()
        .map(ContentRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut signals: HashMap<i64, Vec<SignalRow>> = HashMap::new();
    let mut frames: HashMap<i64, usize> = HashMap::new();
    if !contents.is_empty() {
        let ids = contents
            .iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        // Ids are integers from the database: no injection.
        for r in sqlx::query(&format!(
            "SELECT content_id, signal_type, value, quality FROM signals WHERE content_id IN ({ids}) ORDER BY id"
        ))
        .fetch_all(&s.pool)
        .await?
        {
            signals.entry(r.try_get("content_id")?).or_default().push(SignalRow {
                signal_type: r.try_get("signal_type")?,
                value: r.try_get("value")?,
                quality: r.try_get("quality")?,
            });
        }
        for r in sqlx::query(&format!(
            "SELECT content_id, COUNT(*) AS n FROM video_frames WHERE content_id IN ({ids}) GROUP BY content_id"
        ))
        .fetch_all(&s.pool)
        .await?
        {
            frames.insert(r.try_get("content_id")?, r.try_get::<i64, _>("n")? as usize);
        }
    }
    let items: Vec<Value> = contents
        .iter()
        .map(|c| {
            content_json(
                c,
                &bank.name,
                signals.get(&c.id).map_or(&[][..], Vec::as_slice),
                frames.get(&c.id).copied().unwrap_or(0),
            )
        })
        .collect();
    let next = (contents.len() as i64 == limit)
        .then(|| contents.last().map(|c| c.id))
        .flatten();
    Ok(Json(json!({ "items": items, "next_after": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentPatch {
    enabled: Option<bool>,
    disabled_until: Option<String>,
    note: Option<String>,
    metadata: Option<Value>,
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
    JsonBody(p): JsonBody<ContentPatch>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let row = sqlx::query(&s.sql("SELECT * FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank.id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no content {id} in bank {bank_name:?}")))?;
    let mut c = ContentRow::from_row(&row)?;
    match (p.enabled, &p.disabled_until) {
        (Some(true), Some(_)) => {
            return Err(ApiError::bad_request(
                "disabled_until makes no sense with enabled: true",
            ));
        }
        (_, Some(t)) => {
            let until = parse_rfc3339(t).map_err(ApiError::bad_request)?;
            c.enabled = false;
            c.disabled_until = Some(until);
        }
        (Some(e), None) => {
            c.enabled = e;
            c.disabled_until = None;
        }
        (None, None) => {}
    }
    if let Some(n) = p.note {
        if n.len() > 16 << 10 {
            return Err(ApiError::bad_request("note is over 16 KiB"));
        }
        c.note = Some(n).filter(|n| !n.is_empty());
    }
    if p.metadata.is_some() {
        c.metadata = metadata_text(p.metadata.as_ref())?;
    }
    c.updated_at = now_ms();
    sqlx::query(&s.sql(
        "UPDATE content SET enabled = ?, disabled_until = ?, note = ?, metadata = ?, updated_at = ? WHERE id = ?",
    ))
    .bind(c.enabled as i64)
    .bind(c.disabled_until)
    .bind(&c.note)
    .bind(&c.metadata)
    .bind(c.updated_at)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let detail = json!({
        "enabled": c.enabled,
        "disabled_until": c.disabled_until.map(rfc3339),
        "note_changed": true,
    });
    super::commit_bank_change(
        &state,
        tx,
        &caller,
        "content.update",
        (bank.id, &bank.name),
        Some(id),
        detail,
    )
    .await?;
    Ok(Json(load_json(&state, &bank, id).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let signals = db::signals_of(s, id).await?;
    let done = sqlx::query(&s.sql("DELETE FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank.id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "no content {id} in bank {bank_name:?}"
        )));
    }
    let detail = json!({"signals": signals.iter().map(|s| format!("{} {}", s.signal_type, s.value)).collect::<Vec<_>>()});
    super::commit_bank_change(
        &state,
        tx,
        &caller,
        "content.delete",
        (bank.id, &bank.name),
        Some(id),
        detail,
    )
    .await?;
    Ok(Json(json!({"deleted": id})))
}
