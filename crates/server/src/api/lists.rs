//! List import and export: `/v1/banks/{bank}/import` and `/export`
//! ([`bulwark_service::lists`]), in python-threatexchange's `pdq HASH`
//! lines, CSV `hash,quality,note`, and JSON lines. Lists may hold text and
//! entity signals too (`text_hash HEX`, `phone +E164`, `url URL`, …; see
//! docs/SIGNALS.md); CSV carries PDQ hashes only.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bulwark_service::lists::{self as service, ImportReport};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiResult;

#[derive(Deserialize)]
pub struct ImportQuery {
    format: Option<String>,
    source: Option<String>,
}

/// Streams a list into a bank. Idempotent: a record already in the bank is
/// counted as a duplicate. Bad lines are reported with their numbers; the
/// rest are imported. Records are committed in batches: if the connection
/// drops, what was committed stays (re-running the import is safe).
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(q): Query<ImportQuery>,
    body: Body,
) -> ApiResult<Json<ImportReport>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::import(
            &state.store,
            &state.catalog,
            &caller.key_id,
            &bank_name,
            q.format.as_deref(),
            q.source,
            body.into_data_stream(),
        )
        .await?,
    ))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    include_disabled: Option<bool>,
}

/// Streams a bank's signals as a list (enabled content only unless
/// `include_disabled=true`; the CSV format carries PDQ hashes only).
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    caller.require(Role::Curator)?;
    let (format, stream) = service::export(
        &state.store,
        &bank_name,
        q.format.as_deref(),
        q.include_disabled.unwrap_or(false),
    )
    .await?;
    Ok((
        [(CONTENT_TYPE, format.content_type())],
        Body::from_stream(stream),
    )
        .into_response())
}
