//! `/v1/banks`: create, list, get, update, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{JsonBody, bank_or_404, valid_bank_name};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::catalog::DEFAULT_MIN_QUALITY;
use crate::db::{BankRow, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};

/// A bank as the API shows it.
pub fn bank_json(b: &BankRow) -> Value {
    json!({
        "name": b.name,
        "threshold": b.threshold,
        "min_quality": b.min_quality,
        "enabled": b.enabled,
        "description": b.description,
        "provider": b.provider,
        "created_at": rfc3339(b.created_at),
        "updated_at": rfc3339(b.updated_at),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBank {
    name: String,
    threshold: Option<u32>,
    min_quality: Option<u32>,
    enabled: Option<bool>,
    description: Option<String>,
    provider: Option<String>,
}

/// Longest bank description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Longest provider name, in bytes.
pub const MAX_PROVIDER_BYTES: usize = 256;

fn check_texts(description: Option<&str>, provider: Option<&str>) -> Result<(), ApiError> {
    if description.is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES) {
        return Err(ApiError::bad_request(format!(
            "description is over {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    if provider.is_some_and(|p| p.is_empty() || p.len() > MAX_PROVIDER_BYTES) {
        return Err(ApiError::bad_request(format!(
            "provider must be 1–{MAX_PROVIDER_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_min_quality(q: u32) -> Result<(), ApiError> {
    if q > 100 {
        return Err(ApiError::bad_request(format!(
            "min_quality {q} is out of range 0..=100 (HMA recommends 50)"
        )));
    }
    Ok(())
}

fn check_threshold(t: u32) -> Result<(), ApiError> {
    if t > 128 {
        return Err(ApiError::bad_request(format!(
            "threshold {t} is out of range 0..=128 (PDQ's usual is 31)"
        )));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<NewBank>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Curator)?;
    valid_bank_name(&b.name)?;
    let threshold = b.threshold.unwrap_or(state.config.default_threshold);
    check_threshold(threshold)?;
    let min_quality = b.min_quality.unwrap_or(DEFAULT_MIN_QUALITY);
    check_min_quality(min_quality)?;
    check_texts(b.description.as_deref(), b.provider.as_deref())?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let now = now_ms();
    let row = sqlx::query(&s.sql(
        "INSERT INTO banks (name, threshold, enabled, description, provider, created_at, updated_at, min_quality) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING *",
    ))
    .bind(&b.name)
    .bind(threshold as i64)
    .bind(b.enabled.unwrap_or(true) as i64)
    .bind(b.description.clone().unwrap_or_default())
    .bind(&b.provider)
    .bind(now)
    .bind(now)
    .bind(i64::from(min_quality))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::conflict(format!(
            "a bank named {:?} exists",
            b.name
        )));
    };
    let bank = BankRow::from_row(&row)?;
    super::commit_bank_change(
        &state,
        tx,
        &caller,
        "bank.create",
        (bank.id, &bank.name),
        None,
        bank_json(&bank),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(bank_json(&bank))))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let banks: Vec<Value> = crate::db::banks(&state.store)
        .await?
        .iter()
        .map(bank_json)
        .collect();
    Ok(Json(json!({ "banks": banks })))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let bank = bank_or_404(&state, &name).await?;
    let (content, disabled) = crate::db::bank_counts(&state.store, bank.id).await?;
    let mut j = bank_json(&bank);
    j["content_count"] = json!(content);
    j["disabled_count"] = json!(disabled);
    Ok(Json(j))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankPatch {
    threshold: Option<u32>,
    min_quality: Option<u32>,
    enabled: Option<bool>,
    description: Option<String>,
    provider: Option<Option<String>>,
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(p): JsonBody<BankPatch>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    check_texts(
        p.description.as_deref(),
        p.provider.as_ref().and_then(|p| p.as_deref()),
    )?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let row = sqlx::query(&s.sql("SELECT * FROM banks WHERE name = ?"))
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no bank named {name:?}")))?;
    let mut b = BankRow::from_row(&row)?;
    if let Some(t) = p.threshold {
        check_threshold(t)?;
        b.threshold = t as i64;
    }
    if let Some(q) = p.min_quality {
        check_min_quality(q)?;
        b.min_quality = i64::from(q);
    }
    if let Some(e) = p.enabled {
        b.enabled = e;
    }
    if let Some(d) = p.description.clone() {
        b.description = d;
    }
    if let Some(pr) = p.provider.clone() {
        b.provider = pr;
    }
    b.updated_at = now_ms();
    sqlx::query(&s.sql(
        "UPDATE banks SET threshold = ?, enabled = ?, description = ?, provider = ?, updated_at = ?, \
         min_quality = ? WHERE id = ?",
    ))
    .bind(b.threshold)
    .bind(b.enabled as i64)
    .bind(&b.description)
    .bind(&b.provider)
    .bind(b.updated_at)
    .bind(b.min_quality)
    .bind(b.id)
    .execute(&mut *tx)
    .await?;
    super::commit_bank_change(
        &state,
        tx,
        &caller,
        "bank.update",
        (b.id, &b.name),
        None,
        bank_json(&b),
    )
    .await?;
    Ok(Json(bank_json(&b)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &name).await?;
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
    super::commit_bank_change(
        &state,
        tx,
        &caller,
        "bank.delete",
        (bank.id, &bank.name),
        None,
        json!({"content_deleted": n}),
    )
    .await?;
    Ok(Json(json!({"deleted": bank.name, "content_deleted": n})))
}
