//! Health, metrics, the OpenAPI document and the audit log.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, Backend, now_ms, rfc3339};
use crate::error::ApiResult;

/// `GET /v1/health`: always 200 while the process lives; says whether the
/// index is loaded and current (refreshed within three poll intervals).
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let c = &state.catalog;
    let (entries, pending) = c.index_size();
    let last = c.last_refresh_ms.load(Ordering::Acquire);
    let max_age = 3 * state.config.refresh_interval.as_millis() as i64 + 1000;
    let current = c.is_loaded() && now_ms() - last <= max_age;
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "database": match state.store.backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
        "index": {
            "loaded": c.is_loaded(),
            "current": current,
            "entries": entries,
            "pending_merge": pending,
            "applied_change": c.applied_seq(),
            "last_refresh": if last > 0 { Some(rfc3339(last)) } else { None },
        }
    }))
}

/// `GET /metrics`: Prometheus text (any valid key).
pub async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Matcher)?;
    let (entries, pending) = state.catalog.index_size();
    let text = state.metrics.render(&[
        (
            "bulwark_index_entries",
            "PDQ index entries (photo hashes and video frames).",
            entries as f64,
        ),
        (
            "bulwark_index_pending_merge",
            "Index entries in the append segment.",
            pending as f64,
        ),
        (
            "bulwark_index_applied_change",
            "Highest change applied to this node's index.",
            state.catalog.applied_seq() as f64,
        ),
    ]);
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], super::OPENAPI)
}

#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
    bank: Option<String>,
}

/// `GET /v1/audit`: who changed what, when (admin).
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries =
        db::audit_list(&state.store, q.after.unwrap_or(0), limit, q.bank.as_deref()).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({"entries": entries, "next_after": next})))
}
