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
//!
//! The operations are [`bulwark_service::devices`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bulwark_service::devices::{self as service, AccountDevices, Enrolled};
use serde::{Deserialize, Serialize};

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiResult;

/// The body of `POST /v1/devices`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrol {
    account: String,
    device: String,
    public_key: String,
}

/// `POST /v1/devices` (stamper): [`service::enrol`].
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(e): JsonBody<Enrol>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    caller.require(Role::Stamper)?;
    let enrolled = service::enrol(
        &state.store,
        &caller.key_id,
        &e.account,
        &e.device,
        &e.public_key,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// The answer of `DELETE /v1/devices/{account}/{device}`.
#[derive(Serialize)]
pub struct Revoked {
    /// Always true.
    revoked: bool,
}

/// `DELETE /v1/devices/{account}/{device}` (stamper or admin): [`service::revoke`].
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, device)): Path<(String, String)>,
) -> ApiResult<Json<Revoked>> {
    if caller.role != Role::Stamper {
        caller.require(Role::Admin)?;
    }
    service::revoke(&state.store, &caller.key_id, &account, &device).await?;
    Ok(Json(Revoked { revoked: true }))
}

/// `GET /v1/devices/{account}` (admin).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<Json<AccountDevices>> {
    caller.require(Role::Admin)?;
    Ok(Json(service::list(&state.store, &account).await?))
}
