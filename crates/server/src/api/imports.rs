//! Import jobs over HTTP ([`bulwark_service::imports`]):
//! `POST /v1/banks/{bank}/imports` spools a list to the data directory and
//! answers `202` with a job (`200` with the first job when a retry carries
//! the same `Idempotency-Key`); a worker imports it in batches, each
//! committed with the job's checkpoint, so a job resumes after a crash or
//! restart. `GET /v1/imports/{id}` shows progress, `DELETE /v1/imports/{id}`
//! cancels (what was committed stays).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use bulwark_service::imports::{self as service, ImportJob, ImportJobs, NewJob, Spool};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiResult;

/// Query of `POST /v1/banks/{bank}/imports`.
#[derive(Deserialize)]
pub struct CreateQuery {
    format: Option<String>,
    source: Option<String>,
}

/// Where this server spools lists: `imports/` in its data directory.
fn spool(state: &AppState) -> Spool {
    Spool {
        dir: state.config.data_dir.join("imports"),
        max_bytes: state.config.max_import_bytes,
    }
}

/// `POST /v1/banks/{bank}/imports`: spools the body and queues a job.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImportJob>)> {
    caller.require(Role::Curator)?;
    let new = NewJob {
        bank: &bank,
        format: q.format.as_deref(),
        source: q.source,
        idempotency_key: headers.get("idempotency-key").map(|v| v.as_bytes()),
    };
    let created = service::create(
        &state.store,
        &spool(&state),
        &caller.key_id,
        new,
        body.into_data_stream(),
    )
    .await?;
    let status = if created.new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created.job)))
}

/// `GET /v1/imports/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportJob>> {
    caller.require(Role::Curator)?;
    Ok(Json(service::get(&state.store, &id).await?))
}

/// Query of `GET /v1/imports`.
#[derive(Deserialize)]
pub struct ListQuery {
    bank: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/imports?bank=&limit=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ImportJobs>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::list(&state.store, q.bank.as_deref(), q.limit).await?,
    ))
}

/// `DELETE /v1/imports/{id}`: cancels a queued or running job; batches
/// already committed stay.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportJob>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::cancel(&state.store, &caller.key_id, &id).await?,
    ))
}

/// Runs queued jobs (and resumes interrupted ones) one at a time, oldest
/// first, forever ([`service::work`]).
pub fn spawn_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(service::work(state.store.clone(), state.catalog.clone()))
}
