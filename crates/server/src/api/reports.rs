//! Verifiable reports over HTTP: `POST /v1/franking/stamp` for the delivery
//! service (stamper role only), `GET /v1/franking/keys` for receivers,
//! `POST /v1/franking/rotate` (admin), `POST /v1/reports` for report intake,
//! `GET /v1/reports[/{id}]` for review. The operations are
//! [`bulwark_service::franking`] and [`bulwark_service::reports`], which
//! describe the verification.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_service::franking;
use bulwark_service::reports::{self as service, Intake, Report, ReportPage, Submitted};
use serde::{Deserialize, Serialize};

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult, client_message};

/// The body of `POST /v1/franking/stamp`: what the delivery service's
/// authenticated session attests. The time is the server's, the stamper is
/// the calling key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampRequest {
    tag: String,
    sender: String,
    conversation: String,
    message_id: String,
    epoch: u64,
    recipients: Vec<String>,
}

/// The answer of `POST /v1/franking/stamp`.
#[derive(Serialize)]
pub struct StampAnswer {
    /// The franking key's id.
    key_id: u32,
    /// The stamp's MAC, hex.
    mac: String,
    /// The Ed25519 signature over the same context, hex.
    signature: String,
    /// The service's time (seconds).
    accepted_at: u64,
    /// The stamping key.
    stamper: String,
}

/// `POST /v1/franking/stamp` (stamper role only): stamps and signs a
/// message's franking tag with sender, conversation, message id, epoch,
/// recipients, the server's time and the stamping key's id.
pub async fn stamp(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(r): JsonBody<StampRequest>,
) -> ApiResult<Json<StampAnswer>> {
    caller.require(Role::Stamper)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(r.tag.as_bytes(), &mut tag)
        .map_err(|_| ApiError::bad_request("tag must be 64 hex digits"))?;
    let st = franking::stamp(
        &state.store,
        &state.kek,
        &caller.key_id,
        franking::StampRequest {
            tag,
            sender: r.sender,
            conversation: r.conversation,
            message_id: r.message_id,
            epoch: r.epoch,
            recipients: r.recipients,
        },
    )
    .await?;
    Ok(Json(StampAnswer {
        key_id: st.key_id,
        mac: hex::encode(st.mac),
        signature: hex::encode(st.signature),
        accepted_at: st.accepted_at,
        stamper: st.stamper,
    }))
}

/// The answer of `GET /v1/franking/keys`.
#[derive(Serialize)]
pub struct SigningKey {
    /// Always `ed25519`.
    algorithm: &'static str,
    /// The public key, hex.
    public_key: String,
}

/// `GET /v1/franking/keys` (public): the stamp signing key receivers check.
pub async fn keys(State(state): State<AppState>) -> ApiResult<Json<SigningKey>> {
    let k = franking::signing_key(&state.store, &state.kek).await?;
    Ok(Json(SigningKey {
        algorithm: "ed25519",
        public_key: hex::encode(k.verifying_key().to_bytes()),
    }))
}

/// The answer of `POST /v1/franking/rotate`.
#[derive(Serialize)]
pub struct Rotated {
    /// The new franking key's id.
    key_id: i64,
}

/// `POST /v1/franking/rotate` (admin): a new stamping key; old keys still verify.
pub async fn rotate(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Rotated>> {
    caller.require(Role::Admin)?;
    let key_id = franking::rotate(&state.store, &state.kek, &caller.key_id).await?;
    Ok(Json(Rotated { key_id }))
}

/// The `422` answer of `POST /v1/reports`: the usual error object and the
/// id the rejected report was stored under.
#[derive(Serialize)]
pub struct RejectedAnswer {
    /// `report_rejected` and why.
    error: ErrorBody,
    /// The stored report.
    report_id: i64,
}

/// `{"code", "message"}`, as every error answers.
#[derive(Serialize)]
pub struct ErrorBody {
    /// Stable code.
    code: &'static str,
    /// What a person can act on.
    message: String,
}

/// `POST /v1/reports` (a device key for its own reports, or a matcher key
/// relaying): [`service::submit`]; 201 queued, 200 a duplicate, 422 rejected
/// (and stored).
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    if !(caller.role.allows(Role::Matcher) || caller.role == Role::Device) {
        caller.require(Role::Matcher)?;
    }
    let report = bulwark_franking::wire::parse_report(&body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let cx = Intake {
        store: &state.store,
        kek: &state.kek,
        media: &state.media,
        catalog: &state.catalog,
        metrics: &state.metrics,
        text_index: &state.text_index,
    };
    Ok(match service::submit(cx, &caller, &report).await? {
        Submitted::Queued(q) => (StatusCode::CREATED, Json(q)).into_response(),
        Submitted::Duplicate(d) => (StatusCode::OK, Json(d)).into_response(),
        Submitted::Rejected(r) => {
            let e = r.error();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(RejectedAnswer {
                    error: ErrorBody {
                        code: e.code,
                        message: client_message(&e.message),
                    },
                    report_id: r.report_id,
                }),
            )
                .into_response()
        }
    })
}

/// The query of `GET /v1/reports`.
#[derive(Deserialize)]
pub struct ReportQuery {
    status: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/reports` (curator): newest last, by status.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<ReportPage>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::list(&state.store, q.status.as_deref(), q.after, q.limit).await?,
    ))
}

/// `GET /v1/reports/{id}` (curator): the verified facts, message contents,
/// attachment hashes and matches, reporters and text signals (and rescue
/// matches, for a designated rescue reviewer).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Report>> {
    caller.require(Role::Curator)?;
    Ok(Json(service::get(&state.store, &caller, id).await?))
}
