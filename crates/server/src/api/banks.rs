//! `/v1/banks`: create, list, get, update, delete ([`bulwark_service::banks`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bulwark_service::banks::{self as service, Bank, BankPatch, BankWithCounts, NewBank};
use serde::Serialize;

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiResult;

/// `POST /v1/banks` (curator).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<NewBank>,
) -> ApiResult<(StatusCode, Json<Bank>)> {
    caller.require(Role::Curator)?;
    let bank = service::create(
        &state.store,
        &state.catalog,
        &caller.key_id,
        state.config.default_threshold,
        b,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(bank)))
}

/// The body of `GET /v1/banks`.
#[derive(Serialize)]
pub struct BankList {
    /// Every bank, by name.
    banks: Vec<Bank>,
}

/// `GET /v1/banks` (matcher).
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<BankList>> {
    caller.require(Role::Matcher)?;
    Ok(Json(BankList {
        banks: service::list(&state.store).await?,
    }))
}

/// `GET /v1/banks/{bank}` (matcher).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<BankWithCounts>> {
    caller.require(Role::Matcher)?;
    Ok(Json(service::get(&state.store, &name).await?))
}

/// `PATCH /v1/banks/{bank}` (curator).
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(p): JsonBody<BankPatch>,
) -> ApiResult<Json<Bank>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::update(&state.store, &state.catalog, &caller.key_id, &name, p).await?,
    ))
}

/// The body of `DELETE /v1/banks/{bank}`.
#[derive(Serialize)]
pub struct Deleted {
    /// The bank's name.
    deleted: String,
    /// How many content items went with it.
    content_deleted: i64,
}

/// `DELETE /v1/banks/{bank}` (curator).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Deleted>> {
    caller.require(Role::Curator)?;
    let content_deleted =
        service::delete(&state.store, &state.catalog, &caller.key_id, &name).await?;
    Ok(Json(Deleted {
        deleted: name,
        content_deleted,
    }))
}
