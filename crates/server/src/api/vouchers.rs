//! Private matching in the service: publishing the blinded tables ("pdata")
//! and their root, taking safety vouchers, and telling reviewers about an
//! account only once it is over the threshold.
//!
//! - `POST /v1/pdata/build` (admin): a new release from the banks that at
//!   least `min_providers` independent providers agree on;
//! - `GET /v1/pdata`, `GET /v1/pdata/root`: public, like any published list;
//! - `POST /v1/vouchers` (an enrolled device with its own device key, or a
//!   matcher key relaying for it): each voucher is signed by the device's
//!   enrolled key; after the signature, shape and root checks — which depend
//!   on the bytes alone — every voucher gets the same 202 and is queued;
//!   nothing is opened on the request path;
//! - a background worker ([`process_pending`]) ingests queued vouchers into
//!   the account's state for that release (one state per account and
//!   release: the release is the epoch), opens states above the threshold,
//!   and flags an account only when at least one real match decrypts. A flag
//!   is sticky: only a reviewer clears it (`POST /v1/accounts/{id}/clear`,
//!   audited);
//! - `GET /v1/accounts/{id}` (curator): "not flagged" at or below the
//!   threshold — no count, no hint — and the opened matches above it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bulwark_service::vouchers::{
    self as service, BuildOptions, IntakeLimits, NearDuplicates, ReleaseParams, Submission,
    VariantCounts,
};
use serde::{Deserialize, Serialize};

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};

pub use bulwark_service::vouchers::Releases;

/// The body of `POST /v1/pdata/build` (all optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// `default` (6 tables, 2 must agree), `compact` (3 tables, any one),
    /// `multiprobe` (6 tables, any one, 5 probes per table) or `expanded`
    /// (multiprobe's vouchers, 44 bits per table, with the banked photos'
    /// stored pdata variants: see `bulwark_service::vouchers::build`).
    profile: Option<String>,
    /// Independent providers a hash must come from and that must sign the
    /// root (default 2; less than 2 is refused).
    min_providers: Option<usize>,
    /// Override the threshold t (testing and small deployments; devices
    /// refuse t < 30 under the default policy).
    threshold: Option<u16>,
}

/// The answer of `POST /v1/pdata/build`: the release built
/// ([`service::Built`]), awaiting its providers' signatures.
#[derive(Serialize)]
pub struct BuildAnswer {
    /// Its id.
    release: i64,
    /// Its root.
    root: String,
    /// Banked hashes in it.
    entries: usize,
    /// Its size in bytes.
    bytes: usize,
    /// Its parameters.
    params: ReleaseParams,
    /// Always `awaiting provider signatures`.
    status: &'static str,
    /// Where providers post their signatures of the root.
    sign_at: String,
    /// How long building took.
    build_seconds: f64,
    /// The `expanded` profile's variants; `null` for the other profiles.
    variants: Option<VariantCounts>,
    /// Near-duplicate content in the release.
    near_duplicates: NearDuplicates,
    /// What an admin should know before asking providers to sign.
    warnings: Vec<String>,
}

/// `POST /v1/pdata/build` (admin).
pub async fn build(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<BuildAnswer>)> {
    caller.require(Role::Admin)?;
    let req: BuildRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BuildRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid build request: {e}")))?
    };
    let built = service::build(
        &state.store,
        &state.kek,
        &caller.key_id,
        BuildOptions {
            profile: req.profile,
            min_providers: req.min_providers,
            threshold: req.threshold,
        },
    )
    .await?;
    let id = built.release;
    Ok((
        StatusCode::CREATED,
        Json(BuildAnswer {
            release: id,
            root: built.root,
            entries: built.entries,
            bytes: built.bytes,
            params: built.params,
            status: "awaiting provider signatures",
            sign_at: format!("/v1/pdata/releases/{id}/signatures"),
            build_seconds: built.build_seconds,
            variants: built.variants,
            near_duplicates: built.near_duplicates,
            warnings: built.warnings,
        }),
    ))
}

/// `GET /v1/pdata`: the current release's bytes; its root in `X-Bulwark-Pdata-Root`.
pub async fn get(State(state): State<AppState>) -> ApiResult<Response> {
    let r = state
        .releases
        .current(&state.store)
        .await?
        .ok_or_else(|| ApiError::not_found("no pdata release yet (POST /v1/pdata/build)"))?;
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                axum::http::HeaderName::from_static("x-bulwark-pdata-root"),
                r.root.to_string(),
            ),
        ],
        r.bytes.clone(),
    )
        .into_response())
}

/// The answer of `GET /v1/pdata/root`.
#[derive(Serialize)]
pub struct RootAnswer {
    /// The current release.
    release: i64,
    /// Its root.
    root: String,
    /// Banked hashes in it.
    entries: i64,
    /// Its size in bytes.
    bytes: usize,
    /// When it was built (RFC 3339).
    created_at: String,
    /// What a device needs of its parameters.
    params: PublishedParams,
}

/// A release's parameters as a device checks them.
#[derive(Serialize)]
pub struct PublishedParams {
    tables: u16,
    min_tables: u16,
    bits_per_table: u8,
    probes: u8,
    threshold: u16,
    synthetic_probability: f64,
    radius: u16,
}

/// `GET /v1/pdata/root`.
pub async fn root(State(state): State<AppState>) -> ApiResult<Json<RootAnswer>> {
    let r = state
        .releases
        .current(&state.store)
        .await?
        .ok_or_else(|| ApiError::not_found("no pdata release yet (POST /v1/pdata/build)"))?;
    let p = r.pdata.params();
    Ok(Json(RootAnswer {
        release: r.id,
        root: r.root.to_string(),
        entries: r.entry_count,
        bytes: r.bytes.len(),
        created_at: rfc3339(r.created_at),
        params: PublishedParams {
            tables: p.tables,
            min_tables: p.min_tables,
            bits_per_table: p.bits_per_table,
            probes: p.probes,
            threshold: p.threshold,
            synthetic_probability: p.synthetic_probability,
            radius: p.radius,
        },
    }))
}

/// The body of `POST /v1/vouchers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherIn {
    account: String,
    device: String,
    voucher: String,
    /// Ed25519 over `bulwark_psi::envelope::signing_input`, hex.
    signature: String,
}

/// The answer of `POST /v1/vouchers`: the same for every voucher that
/// passed the checks on its bytes.
#[derive(Serialize)]
pub struct Accepted {
    /// Always true.
    accepted: bool,
}

/// `POST /v1/vouchers`.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(v): JsonBody<VoucherIn>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    match &caller.device {
        Some((account, device)) if caller.role == Role::Device => {
            if *account != v.account || *device != v.device {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "a device key submits only its own vouchers",
                ));
            }
        }
        _ => caller.require(Role::Matcher)?,
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.voucher.as_bytes())
        .map_err(|_| ApiError::bad_request("voucher must be base64"))?;
    let cfg = &state.config;
    service::submit(
        &state.store,
        &state.releases,
        IntakeLimits {
            per_device_per_minute: cfg.vouchers_per_device_per_minute,
            per_key_per_minute: cfg.vouchers_per_key_per_minute,
        },
        Submission {
            account: &v.account,
            device: &v.device,
            voucher: &bytes,
            signature: &v.signature,
            key_id: &caller.key_id,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

/// Ingests queued vouchers (up to `batch`): [`service::process_pending`]
/// on this service's state. Tests call it to drain the queue.
pub async fn process_pending(state: &AppState, batch: i64) -> Result<usize, ApiError> {
    Ok(service::process_pending(&state.store, &state.kek, &state.releases, batch).await?)
}

/// Runs the voucher worker ([`service::spawn_worker`]) on this service's state.
pub fn spawn_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    service::spawn_worker(state.store, state.kek, state.releases)
}

/// The body of `POST /v1/accounts/{id}/clear`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Why (kept in the audit log).
    note: Option<String>,
}

/// `POST /v1/accounts/{id}/clear` (curator): a reviewer clears a flagged
/// account; its opened matches and per-release states are dropped and the
/// decision is audited.
pub async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<AccountStatus>> {
    caller.require(Role::Curator)?;
    let req: ClearRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ClearRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid clear request: {e}")))?
    };
    service::clear_account(&state.store, &caller.key_id, &id, req.note).await?;
    Ok(Json(AccountStatus::not_flagged(id)))
}

/// An account's status as a reviewer sees it (`GET /v1/accounts/{id}`,
/// `POST /v1/accounts/{id}/clear`).
#[derive(Serialize)]
pub struct AccountStatus {
    /// The account.
    account: String,
    /// `flagged` or `not flagged`.
    status: &'static str,
    /// A flagged account's opened matches, closest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    matches: Option<Vec<OpenedMatch>>,
}

impl AccountStatus {
    fn not_flagged(account: String) -> AccountStatus {
        AccountStatus {
            account,
            status: "not flagged",
            matches: None,
        }
    }
}

/// One opened match of a flagged account.
#[derive(Serialize)]
pub struct OpenedMatch {
    /// The bank of the matched content (`null` once it is deleted).
    bank: Option<String>,
    /// The matched content.
    content_id: i64,
    /// Hamming distance.
    distance: i64,
    /// The banked PDQ hash.
    hash: String,
    /// The voucher's derivative, base64.
    derivative_base64: String,
}

/// `GET /v1/accounts/{id}` (curator).
pub async fn account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountStatus>> {
    caller.require(Role::Curator)?;
    let Some(matches) = service::account_matches(&state.store, &id).await? else {
        // The same answer for an unknown account, one with no matches, and
        // one with any number of matches at or below the threshold.
        return Ok(Json(AccountStatus::not_flagged(id)));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let matches = matches
        .into_iter()
        .map(|m| OpenedMatch {
            bank: m.bank,
            content_id: m.opened.content_id,
            distance: m.opened.distance,
            derivative_base64: b64.encode(&m.opened.derivative),
            hash: m.opened.hash,
        })
        .collect();
    Ok(Json(AccountStatus {
        account: id,
        status: "flagged",
        matches: Some(matches),
    }))
}
