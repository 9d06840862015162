//! Hash-list providers, provider signatures on pdata releases, and the
//! public append-only log of signed roots.
//!
//! A provider is an enrolled Ed25519 key, not a free-text label. A release
//! built by `POST /v1/pdata/build` waits until at least `max(2,
//! min_providers)` distinct enrolled providers have signed its root and
//! header (`POST /v1/pdata/releases/{id}/signatures`); only then is its
//! signed root appended to the log and the release served to devices. No
//! one — not an admin — can publish with fewer: the build refuses
//! `min_providers < 2` and devices refuse a root with fewer than two
//! signatures by providers they pinned, whatever the header says.
//!
//! - `POST /v1/providers` (admin) `{"name", "public_key"}`; `GET /v1/providers`
//!   (public); `DELETE /v1/providers/{name}` (admin, revokes);
//! - `GET /v1/pdata/releases/{id}` (public): a release's pdata, pending or
//!   published, for providers to check before they sign;
//! - `POST /v1/pdata/releases/{id}/signatures` (the signature authenticates):
//!   `{"public_key", "signature"}`;
//! - `GET /v1/pdata/signed` (public): the current release's signed root, with
//!   its log index in `X-Bulwark-Log-Index`;
//! - `GET /v1/pdata/log` (public): the tree head; `GET
//!   /v1/pdata/log/inclusion?index=&size=` and `GET
//!   /v1/pdata/log/consistency?old=&new=`: RFC 6962 proofs.
//!
//! The operations are [`bulwark_service::providers`].

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bulwark_service::providers::{
    self as service, Consistency, Enrolled, Head, Inclusion, NewProvider, Provider, SignatureIn,
    Signed,
};
use serde::{Deserialize, Serialize};

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiResult;

/// `POST /v1/providers` (admin).
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(p): JsonBody<NewProvider>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    caller.require(Role::Admin)?;
    let enrolled = service::enrol(&state.store, &caller.key_id, p).await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// The body of `GET /v1/providers`.
#[derive(Serialize)]
pub struct ProviderList {
    /// Every provider, revoked or not, by name.
    providers: Vec<Provider>,
}

/// `GET /v1/providers` (public: the keys devices may pin, as the service knows them).
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ProviderList>> {
    Ok(Json(ProviderList {
        providers: service::list(&state.store).await?,
    }))
}

/// The body of `DELETE /v1/providers/{name}`.
#[derive(Serialize)]
pub struct Revoked {
    /// Always true.
    revoked: bool,
}

/// `DELETE /v1/providers/{name}` (admin): its signatures no longer count for new releases.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Revoked>> {
    caller.require(Role::Admin)?;
    service::revoke(&state.store, &caller.key_id, &name).await?;
    Ok(Json(Revoked { revoked: true }))
}

/// `GET /v1/pdata/releases/{id}` (public): the pdata of a release, pending or not.
pub async fn release_pdata(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let r = service::release_pdata(&state.store, id).await?;
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                axum::http::HeaderName::from_static("x-bulwark-pdata-root"),
                r.root,
            ),
            (
                axum::http::HeaderName::from_static("x-bulwark-release-published"),
                r.published.to_string(),
            ),
        ],
        r.pdata,
    )
        .into_response())
}

/// `POST /v1/pdata/releases/{id}/signatures`: one provider's signature; the
/// release is published once enough distinct enrolled providers signed.
pub async fn sign(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<SignatureIn>,
) -> ApiResult<Json<Signed>> {
    Ok(Json(
        service::sign(&state.store, &state.releases, id, b).await?,
    ))
}

/// `GET /v1/pdata/signed` (public): the current release's signed root.
pub async fn signed(State(state): State<AppState>) -> ApiResult<Response> {
    let (bytes, idx) = service::signed_root(&state.store).await?;
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                axum::http::HeaderName::from_static("x-bulwark-log-index"),
                idx.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /v1/pdata/log` (public): the tree head.
pub async fn head(State(state): State<AppState>) -> ApiResult<Json<Head>> {
    Ok(Json(service::head(&state.store).await?))
}

/// Query of the proof routes.
#[derive(Deserialize)]
pub struct ProofQuery {
    index: Option<u64>,
    size: Option<u64>,
    old: Option<u64>,
    new: Option<u64>,
}

/// `GET /v1/pdata/log/inclusion?index=&size=` (public).
pub async fn inclusion(
    State(state): State<AppState>,
    Query(q): Query<ProofQuery>,
) -> ApiResult<Json<Inclusion>> {
    Ok(Json(
        service::inclusion(&state.store, q.index, q.size).await?,
    ))
}

/// `GET /v1/pdata/log/consistency?old=&new=` (public).
pub async fn consistency(
    State(state): State<AppState>,
    Query(q): Query<ProofQuery>,
) -> ApiResult<Json<Consistency>> {
    Ok(Json(
        service::consistency(&state.store, q.old, q.new).await?,
    ))
}
