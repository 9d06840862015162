//! Enrolled devices: the messenger backend (the delivery service, stamper
//! role) enrols each device of an account it authenticated with the
//! device's Ed25519 public key; the device gets an API key of the `device`
//! role, bound to that account and device. Vouchers and reports are then
//! signed by the device key, so a key of another role cannot file vouchers
//! or reports in someone else's name.
//!
//! - `POST /v1/devices` (stamper): `{"account", "device", "public_key"}` →
//!   `{"account", "device", "key"}` (the device's API key, shown once);
//! - `DELETE /v1/devices/{account}/{device}` (stamper or admin): revokes the
//!   device and its key;
//! - `GET /v1/devices/{account}` (admin): the account's devices.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::JsonBody;
use crate::AppState;
use crate::auth::{self, Caller, Role};
use crate::db::{self, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult, snippet};

/// Longest account or device id.
pub const MAX_ID_BYTES: usize = 256;

/// The body of `POST /v1/devices`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrol {
    account: String,
    device: String,
    public_key: String,
}

fn check_id(what: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > MAX_ID_BYTES || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must be 1–{MAX_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// An Ed25519 public key from 64 hex digits, refusing small-order keys.
pub(crate) fn parse_public_key(hexed: &str) -> Result<ed25519_dalek::VerifyingKey, ApiError> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hexed.as_bytes(), &mut b)
        .map_err(|_| ApiError::bad_request("public_key must be 64 hex digits (Ed25519)"))?;
    let k = ed25519_dalek::VerifyingKey::from_bytes(&b)
        .map_err(|_| ApiError::bad_request("public_key is not an Ed25519 public key"))?;
    if k.is_weak() {
        return Err(ApiError::bad_request(
            "public_key is a weak (small-order) Ed25519 key",
        ));
    }
    Ok(k)
}

/// `POST /v1/devices` (stamper).
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(e): JsonBody<Enrol>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Stamper)?;
    check_id("account", &e.account)?;
    check_id("device", &e.device)?;
    let pk = parse_public_key(&e.public_key)?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let exists =
        sqlx::query(&s.sql("SELECT revoked_at FROM devices WHERE account = ? AND device = ?"))
            .bind(&e.account)
            .bind(&e.device)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_some() {
        return Err(ApiError::conflict(format!(
            "device {:?} of account {:?} is already enrolled (a revoked device id is not reused)",
            snippet(&e.device),
            snippet(&e.account)
        )));
    }
    let key = auth::create_key_in(
        s,
        &mut tx,
        Role::Device,
        &format!("device {}", snippet(&e.device)),
        Some((&e.account, &e.device)),
    )
    .await
    .map_err(ApiError::internal)?;
    sqlx::query(&s.sql(
        "INSERT INTO devices (account, device, public_key, key_id, enrolled_at, enrolled_by) VALUES (?, ?, ?, ?, ?, ?)",
    ))
    .bind(&e.account)
    .bind(&e.device)
    .bind(hex::encode(pk.to_bytes()))
    .bind(&key.id)
    .bind(now_ms())
    .bind(&caller.key_id)
    .execute(&mut *tx)
    .await?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "device.enrol",
        None,
        None,
        json!({"account": e.account, "device": e.device, "key_id": key.id}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"account": e.account, "device": e.device, "key": key.key.as_str()})),
    ))
}

/// `DELETE /v1/devices/{account}/{device}` (stamper or admin).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, device)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if caller.role != Role::Stamper {
        caller.require(Role::Admin)?;
    }
    let s = &state.store;
    let mut tx = s.begin().await?;
    let row =
        sqlx::query(&s.sql(
            "SELECT key_id FROM devices WHERE account = ? AND device = ? AND revoked_at IS NULL",
        ))
        .bind(&account)
        .bind(&device)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("no such enrolled device"))?;
    let key_id: String = row.try_get("key_id")?;
    let now = now_ms();
    sqlx::query(&s.sql("UPDATE devices SET revoked_at = ? WHERE account = ? AND device = ?"))
        .bind(now)
        .bind(&account)
        .bind(&device)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&s.sql("UPDATE api_keys SET revoked_at = ? WHERE id = ?"))
        .bind(now)
        .bind(&key_id)
        .execute(&mut *tx)
        .await?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "device.revoke",
        None,
        None,
        json!({"account": account, "device": device}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"revoked": true})))
}

/// `GET /v1/devices/{account}` (admin).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let s = &state.store;
    let rows = sqlx::query(&s.sql(
        "SELECT device, public_key, enrolled_at, revoked_at FROM devices WHERE account = ? ORDER BY device",
    ))
    .bind(&account)
    .fetch_all(&s.pool)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "device": r.try_get::<String, _>("device")?,
                "public_key": r.try_get::<String, _>("public_key")?,
                "enrolled_at": rfc3339(r.try_get("enrolled_at")?),
                "revoked_at": r.try_get::<Option<i64>, _>("revoked_at")?.map(rfc3339),
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({"account": account, "devices": items})))
}

/// The public key of an enrolled, not revoked device.
pub async fn public_key(
    state: &AppState,
    account: &str,
    device: &str,
) -> Result<Option<ed25519_dalek::VerifyingKey>, ApiError> {
    let s = &state.store;
    let Some(row) = sqlx::query(&s.sql(
        "SELECT public_key FROM devices WHERE account = ? AND device = ? AND revoked_at IS NULL",
    ))
    .bind(account)
    .bind(device)
    .fetch_optional(&s.pool)
    .await?
    else {
        return Ok(None);
    };
    let hexed: String = row.try_get("public_key")?;
    parse_public_key(&hexed)
        .map(Some)
        .map_err(|_| ApiError::internal("a stored device key does not parse"))
}
