//! Health, metrics, the OpenAPI document and the audit log.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, Backend, now_ms, rfc3339};
use crate::error::ApiResult;

/// The answer of `GET /v1/health`.
#[derive(Serialize)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
    /// This binary's version.
    version: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
    /// This node's index.
    index: IndexHealth,
}

/// The index as `GET /v1/health` reports it.
#[derive(Serialize)]
pub struct IndexHealth {
    /// Loaded from the store or a snapshot.
    loaded: bool,
    /// Loaded and refreshed within three poll intervals.
    current: bool,
    /// PDQ entries (photo hashes and video frames).
    entries: usize,
    /// Entries in the append segment.
    pending_merge: usize,
    /// The highest change applied.
    applied_change: i64,
    /// When it was last refreshed (RFC 3339), if ever.
    last_refresh: Option<String>,
}

/// `GET /v1/health`: always 200 while the process lives; says whether the
/// index is loaded and current (refreshed within three poll intervals).
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let c = &state.catalog;
    let (entries, pending) = c.index_size();
    let last = c.last_refresh_ms.load(Ordering::Acquire);
    let max_age = 3 * state.config.refresh_interval.as_millis() as i64 + 1000;
    let current = c.is_loaded() && now_ms() - last <= max_age;
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        database: match state.store.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        index: IndexHealth {
            loaded: c.is_loaded(),
            current,
            entries,
            pending_merge: pending,
            applied_change: c.applied_seq(),
            last_refresh: (last > 0).then(|| rfc3339(last)),
        },
    })
}

/// `GET /metrics`: Prometheus text (any valid key).
pub async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Matcher)?;
    let (entries, pending) = state.catalog.index_size();
    let (alone, beside) = state.store.import_batches();
    let text = state.metrics.render(
        &[
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
                "bulwark_index_segments",
                "Indexed segments of the PDQ index, each probed by every search.",
                state.catalog.index_segments() as f64,
            ),
            (
                "bulwark_index_applied_change",
                "Highest change applied to this node's index.",
                state.catalog.applied_seq() as f64,
            ),
        ],
        &[(
            "bulwark_import_batches_total",
            "Import job batches committed by this node: written without waiting for the batch \
             before to commit (beside: two at once, PostgreSQL) or alone.",
            "written",
            &[("alone", alone), ("beside", beside)],
        )],
    );
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

/// A page of the audit log.
#[derive(Serialize)]
pub struct AuditPage {
    /// Oldest first.
    entries: Vec<db::AuditEntry>,
    /// The `after` of the next page; `null` on the last.
    next_after: Option<i64>,
}

/// `GET /v1/audit`: who changed what, when (admin).
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries =
        db::audit_list(&state.store, q.after.unwrap_or(0), limit, q.bank.as_deref()).await?;
    let next_after = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}
