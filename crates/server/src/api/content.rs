//! `/v1/banks/{bank}/content`: add (upload or signals), list, get, enable or
//! disable (also until a time), delete ([`bulwark_service::content`]).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bulwark_service::content::{self as service, Added, Content, ContentPage, ContentPatch};
use serde::{Deserialize, Serialize};

use super::{JsonBody, Upload, bank_or_404};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, NewContent};
use crate::error::{ApiError, ApiResult};
use crate::media::Hashed;

pub use bulwark_service::content::{from_hashed, from_signals};

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
    Ok(service::insert(
        &state.store,
        &state.catalog,
        &caller.key_id,
        bank,
        c,
        extras,
        state.media.bank_kinds(),
    )
    .await?)
}

/// `POST /v1/banks/{bank}/content` (curator): a file (multipart) or signals
/// (JSON); 201 when added, 200 with `duplicate: true` when the bank held it.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    upload: Upload,
) -> ApiResult<(StatusCode, Json<Added>)> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let mut extras = Vec::new();
    let c = match upload {
        Upload::File { file, fields } => {
            let file = file
                .ok_or_else(|| ApiError::bad_request("the multipart body has no `file` field"))?;
            let _slot = state.media.upload_slot().await?;
            let hashed = state.media.hash_for_bank(file).await?;
            if let Hashed::Photo { extras: e, .. } = &hashed {
                extras.clone_from(e);
            }
            service::from_upload(&hashed, &fields)?
        }
        Upload::Json(v) => service::from_json(&v)?,
    };
    let added = service::add(
        &state.store,
        &state.catalog,
        &caller.key_id,
        &bank,
        c,
        &extras,
        state.media.bank_kinds(),
    )
    .await?;
    let status = if added.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(added)))
}

/// `GET /v1/banks/{bank}/content/{id}` (curator).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Content>> {
    caller.require(Role::Curator)?;
    Ok(Json(service::get(&state.store, &bank_name, id).await?))
}

/// The query of `GET /v1/banks/{bank}/content`.
#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
    after: Option<i64>,
}

/// `GET /v1/banks/{bank}/content?limit=&after=` (curator).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(p): Query<Page>,
) -> ApiResult<Json<ContentPage>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::list(&state.store, &bank_name, p.limit, p.after).await?,
    ))
}

/// `PATCH /v1/banks/{bank}/content/{id}` (curator).
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
    JsonBody(p): JsonBody<ContentPatch>,
) -> ApiResult<Json<Content>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::update(
            &state.store,
            &state.catalog,
            &caller.key_id,
            &bank_name,
            id,
            p,
        )
        .await?,
    ))
}

/// The body of `DELETE /v1/banks/{bank}/content/{id}`.
#[derive(Serialize)]
pub struct Deleted {
    /// The item's id.
    deleted: i64,
}

/// `DELETE /v1/banks/{bank}/content/{id}` (curator).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((bank_name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Deleted>> {
    caller.require(Role::Curator)?;
    service::delete(&state.store, &state.catalog, &caller.key_id, &bank_name, id).await?;
    Ok(Json(Deleted { deleted: id }))
}
