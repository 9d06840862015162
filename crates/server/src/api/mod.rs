//! The HTTP API: `/v1/...`, HMA-compatible routes, `/metrics`.

mod banks;
mod content;
mod devices;
pub mod hma;
pub mod imports;
mod lists;
mod matching;
mod ops;
mod providers;
mod reports;
pub mod signals;
pub mod vouchers;

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use tower_http::timeout::TimeoutLayer;

use crate::AppState;
use crate::error::ApiError;

/// The OpenAPI document, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every route.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_upload_bytes;
    let timeout = state.config.request_timeout;
    Router::new()
        .route("/v1/health", get(ops::health))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/metrics", get(ops::metrics))
        .route("/v1/audit", get(ops::audit))
        .route("/v1/banks", get(banks::list).post(banks::create))
        .route(
            "/v1/banks/{bank}",
            get(banks::get).patch(banks::update).delete(banks::delete),
        )
        .route(
            "/v1/banks/{bank}/content",
            get(content::list).post(content::add),
        )
        .route(
            "/v1/banks/{bank}/content/{id}",
            get(content::get)
                .patch(content::update)
                .delete(content::delete),
        )
        .route("/v1/banks/{bank}/import", post(lists::import))
        .route("/v1/banks/{bank}/export", get(lists::export))
        .route("/v1/banks/{bank}/imports", post(imports::create))
        .route("/v1/imports", get(imports::list))
        .route(
            "/v1/imports/{id}",
            get(imports::get).delete(imports::cancel),
        )
        .route("/v1/hash", post(matching::hash))
        .route("/v1/match", post(matching::match_))
        .route("/v1/franking/stamp", post(reports::stamp))
        .route("/v1/franking/rotate", post(reports::rotate))
        .route("/v1/franking/keys", get(reports::keys))
        .route("/v1/devices", post(devices::enrol))
        .route("/v1/devices/{account}", get(devices::list))
        .route("/v1/devices/{account}/{device}", delete(devices::revoke))
        .route("/v1/accounts/{id}/clear", post(vouchers::clear))
        .route("/v1/reports", get(reports::list).post(reports::submit))
        .route("/v1/reports/{id}", get(reports::get))
        .route("/v1/pdata", get(vouchers::get))
        .route("/v1/pdata/root", get(vouchers::root))
        .route("/v1/pdata/build", post(vouchers::build))
        .route("/v1/pdata/releases/{id}", get(providers::release_pdata))
        .route("/v1/pdata/releases/{id}/signatures", post(providers::sign))
        .route("/v1/pdata/signed", get(providers::signed))
        .route("/v1/pdata/log", get(providers::head))
        .route("/v1/pdata/log/inclusion", get(providers::inclusion))
        .route("/v1/pdata/log/consistency", get(providers::consistency))
        .route("/v1/providers", get(providers::list).post(providers::enrol))
        .route("/v1/providers/{name}", delete(providers::revoke))
        .route("/v1/vouchers", post(vouchers::submit))
        .route("/v1/accounts/{id}", get(vouchers::account))
        .merge(hma::routes())
        .merge(signals::routes())
        .merge(crate::console::router())
        .fallback(|| async { ApiError::not_found("no such route (see /v1/openapi.json)") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Gives every error the JSON error shape: axum's own rejections (a path or
/// query value of the wrong type, 405, a body over the limit) and the
/// timeout's empty 408 are plain text, which clients cannot parse the same
/// way as the handlers' errors. HTML (the console) and JSON pass unchanged,
/// and so does HMA's `/status`, whose 503 is plain text (`INDEX-STALE`).
async fn json_errors(req: Request, next: Next) -> Response {
    use axum::http::{StatusCode, header};
    let hma_status = req.uri().path() == "/status";
    let resp = next.run(req).await;
    let status = resp.status();
    if hma_status || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/json") || ct.starts_with("text/html") {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "busy",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = match (text.is_empty(), status) {
        (false, _) => text,
        (true, StatusCode::REQUEST_TIMEOUT) => {
            "the request took longer than request_timeout".into()
        }
        (true, s) => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

async fn record(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    state
        .metrics
        .request(&method, &route, resp.status().as_u16(), started.elapsed());
    resp
}

/// A request body that is either a multipart upload (`file` plus text fields)
/// or a JSON document.
pub enum Upload {
    /// `multipart/form-data`.
    File {
        /// The `file` field, if sent.
        file: Option<Bytes>,
        /// Other fields, as text.
        fields: HashMap<String, String>,
    },
    /// `application/json`.
    Json(serde_json::Value),
}

impl FromRequest<AppState> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ct.starts_with("multipart/form-data") {
            let mut mp = Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
            let mut file = None;
            let mut fields = HashMap::new();
            while let Some(field) = mp.next_field().await? {
                let name = field.name().unwrap_or("").to_string();
                if name == "file" {
                    if file.is_some() {
                        return Err(ApiError::bad_request("send one `file` field per request"));
                    }
                    file = Some(field.bytes().await?);
                } else {
                    let text = field.text().await?;
                    if text.len() > 1 << 20 {
                        return Err(ApiError::bad_request(format!(
                            "field `{name}` is over 1 MiB"
                        )));
                    }
                    fields.insert(name, text);
                }
            }
            Ok(Upload::File { file, fields })
        } else if ct.starts_with("application/json") {
            let Json(v) = Json::<serde_json::Value>::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
            Ok(Upload::Json(v))
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send multipart/form-data with a `file` field, or application/json",
            ))
        }
    }
}

/// JSON body with a clear 400 on malformed input and a 413 over
/// [`MAX_JSON_BODY`] (uploads and imports have their own limits).
pub struct JsonBody<T>(pub T);

/// Largest JSON request body for the routes that take [`JsonBody`].
pub const MAX_JSON_BODY: usize = 1 << 20;

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let req =
            req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, MAX_JSON_BODY)));
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| JsonBody(v))
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        e.status(),
                        "too_large",
                        format!("the JSON body is over {MAX_JSON_BODY} bytes"),
                    )
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })
    }
}

/// Ends a write to a bank: its audit entry and change row in the same
/// transaction, the commit, then this node's index (other nodes follow the
/// change row).
pub async fn commit_bank_change(
    state: &AppState,
    tx: sqlx::Transaction<'_, sqlx::Any>,
    caller: &crate::auth::Caller,
    action: &str,
    bank: (i64, &str),
    content: Option<i64>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    Ok(bulwark_service::banks::commit_change(
        &state.store,
        &state.catalog,
        tx,
        &caller.key_id,
        bulwark_service::banks::Change {
            action,
            bank,
            content,
            detail,
        },
    )
    .await?)
}

/// Checks a bank name: 1–64 of `A–Z a–z 0–9 _ -`.
pub fn valid_bank_name(name: &str) -> Result<(), ApiError> {
    Ok(bulwark_service::banks::valid_name(name)?)
}

/// A bank by name, or 404.
pub async fn bank_or_404(state: &AppState, name: &str) -> Result<crate::db::BankRow, ApiError> {
    Ok(bulwark_service::banks::by_name(&state.store, name).await?)
}

/// Parses a `banks` restriction: a comma-separated list or a JSON array.
pub fn bank_filter(
    v: Option<&serde_json::Value>,
) -> Result<Option<std::collections::HashSet<String>>, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(
            s.split(',')
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect(),
        )),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|b| {
                b.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("`banks` must be a list of bank names"))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(ApiError::bad_request(
            "`banks` must be a list of bank names",
        )),
    }
}
