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
use bulwark_service::devices::{check_id, parse_public_key};
use serde::Deserialize;
use serde_json::{Value, json};

use super::JsonBody;
use crate::AppState;
use crate::auth::{self, Caller, Role};
use crate::db::{self, devices, rfc3339};
use crate::error::{ApiError, ApiResult, snippet};

/// The body of `POST /v1/devices`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrol {
    account: String,
    device: String,
    public_key: String,
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
    if devices::exists(s, &mut tx, &e.account, &e.device).await? {
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
    devices::insert(
        s,
        &mut tx,
        &e.account,
        &e.device,
        &hex::encode(pk.to_bytes()),
        &key.id,
        &caller.key_id,
    )
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
    if !devices::revoke(s, &mut tx, &account, &device).await? {
        return Err(ApiError::not_found("no such enrolled device"));
    }
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
    let items: Vec<Value> = devices::of_account(&state.store, &account)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "device": d.device,
                "public_key": d.public_key,
                "enrolled_at": rfc3339(d.enrolled_at),
                "revoked_at": d.revoked_at.map(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({"account": account, "devices": items})))
}

/// The public key of an enrolled, not revoked device.
pub async fn public_key(
    state: &AppState,
    account: &str,
    device: &str,
) -> Result<Option<ed25519_dalek::VerifyingKey>, ApiError> {
    Ok(bulwark_service::devices::public_key(&state.store, account, device).await?)
}
