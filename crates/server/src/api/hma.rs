//! Routes with the shapes of Meta's Hasher-Matcher-Actioner (HMA 2.x) for the
//! calls its clients make most, so an HMA user can switch by changing the
//! base URL and adding an `Authorization` header.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, Query, State};
use bulwark_banks::SignalType;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, bank_or_404};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize)]
pub struct Lookup {
    signal_type: Option<String>,
    signal: Option<String>,
}

/// `GET /m/lookup?signal_type=pdq&signal=HEX`: the names of the banks with a
/// match, as HMA answers.
pub async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<Lookup>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let (Some(t), Some(v)) = (q.signal_type, q.signal) else {
        return Err(ApiError::bad_request("signal_type and signal are required"));
    };
    let t: SignalType = t
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{e}")))?;
    let s = t
        .parse(&v)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hits = match s {
        bulwark_banks::Signal::Pdq(h) => state.catalog.search_usable(&h, None, None),
        other => super::matching::exact(&state, &other, None).await?,
    };
    let banks: BTreeSet<String> = hits.iter().map(|h| h.bank.to_string()).collect();
    Ok(Json(json!(banks)))
}

/// `GET /c/banks`: banks as HMA lists them.
pub async fn banks(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let out: Vec<Value> = crate::db::banks(&state.store)
        .await?
        .iter()
        .map(|b| json!({"name": b.name, "matching_enabled_ratio": if b.enabled { 1.0 } else { 0.0 }}))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `POST /c/bank/{bank}/signal` with `{"pdq": HEX, ...}`: adds content by
/// signals; answers `{"id": N, "signals": {...}}`.
pub async fn add_signal(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    JsonBody(body): JsonBody<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let c = super::content::from_signals(&body, None)?;
    let (id, _) = super::content::insert_one(&state, &caller, &bank, &c).await?;
    let signals: serde_json::Map<String, Value> = c
        .signals
        .iter()
        .map(|s| (s.signal_type.clone(), Value::String(s.value.clone())))
        .collect();
    Ok(Json(json!({"id": id, "signals": signals})))
}
