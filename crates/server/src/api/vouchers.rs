//! Private matching in the service: publishing the blinded tables ("pdata")
//! and their root, taking safety vouchers, and telling reviewers about an
//! account only once it is over the threshold.
//!
//! - `POST /v1/pdata/build` (admin): a new release from the banks that at
//!   least `min_providers` independent providers agree on;
//! - `GET /v1/pdata`, `GET /v1/pdata/root`: public, like any published list;
//! - `POST /v1/vouchers` (matcher: the app's backend relays devices' vouchers):
//!   every well-formed voucher for the current release gets the same answer,
//!   whether or not it opened anything;
//! - `GET /v1/accounts/{id}` (curator): "not flagged" at or below the
//!   threshold — no count, no hint — and the opened matches above it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bulwark_pdq::PdqHash;
use bulwark_psi::{AccountState, Params, Pdata, Rejection, Root, ServerKeys, ServerTable, Voucher};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};

/// One published release, as this node serves it.
pub struct Release {
    id: i64,
    root: Root,
    bytes: Vec<u8>,
    pdata: Pdata,
    table: ServerTable,
    entry_count: i64,
    created_at: i64,
}

/// The current release, re-checked against the store every two seconds so
/// replicas follow a new build.
#[derive(Default)]
pub struct Releases {
    current: Mutex<Option<(Arc<Release>, Instant)>>,
    /// One voucher at a time per account on this node (the store's transaction
    /// serialises across nodes).
    accounts: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Releases {
    /// Forgets the cached release: the next request reads the store.
    pub fn clear_cache(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

async fn psi_keys(state: &AppState, create: bool) -> Result<Option<ServerKeys>, ApiError> {
    let s = &state.store;
    if let Some(hexed) = db::meta(s, "psi_server_keys").await? {
        let bytes = zeroize::Zeroizing::new(hex::decode(hexed).map_err(ApiError::internal)?);
        return Ok(Some(
            ServerKeys::from_bytes(&bytes).map_err(ApiError::internal)?,
        ));
    }
    if !create {
        return Ok(None);
    }
    let keys = ServerKeys::generate(&mut rand::rngs::OsRng);
    sqlx::query(&s.sql(
        "INSERT INTO meta (key, value) VALUES ('psi_server_keys', ?) ON CONFLICT (key) DO NOTHING",
    ))
    .bind(hex::encode(keys.to_bytes().as_slice()))
    .execute(&s.pool)
    .await?;
    // Another replica may have won the race: use what is stored.
    Box::pin(psi_keys(state, false)).await
}

async fn current(state: &AppState) -> Result<Option<Arc<Release>>, ApiError> {
    let releases = &state.releases;
    if let Some((r, at)) = releases
        .current
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        if at.elapsed() < Duration::from_secs(2) {
            return Ok(Some(Arc::clone(r)));
        }
    }
    let s = &state.store;
    let Some(latest) = sqlx::query("SELECT MAX(id) AS id FROM pdata_releases")
        .fetch_one(&s.pool)
        .await?
        .try_get::<Option<i64>, _>("id")?
    else {
        return Ok(None);
    };
    let cached = releases
        .current
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|(r, _)| Arc::clone(r));
    let release = match cached {
        Some(r) if r.id == latest => r,
        _ => {
            let row = sqlx::query(&s.sql("SELECT * FROM pdata_releases WHERE id = ?"))
                .bind(latest)
                .fetch_one(&s.pool)
                .await?;
            let root: Root = row
                .try_get::<String, _>("root")?
                .parse()
                .map_err(ApiError::internal)?;
            let bytes: Vec<u8> = row.try_get("pdata")?;
            let entries_blob: Vec<u8> = row.try_get("entries")?;
            let entries = decode_entries(&entries_blob).map_err(ApiError::internal)?;
            let (pdata, table, bytes) = tokio::task::spawn_blocking(move || {
                let pdata = Pdata::from_bytes(&bytes, &root)?;
                let table = ServerTable::new(&pdata, &entries);
                Ok::<_, bulwark_psi::PdataError>((pdata, table, bytes))
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
            Arc::new(Release {
                id: latest,
                root,
                bytes,
                pdata,
                table,
                entry_count: row.try_get("entry_count")?,
                created_at: row.try_get("created_at")?,
            })
        }
    };
    *releases.current.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((Arc::clone(&release), Instant::now()));
    Ok(Some(release))
}

fn encode_entries(e: &[(u64, PdqHash)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.len() * 40);
    for (id, h) in e {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(h.as_bytes());
    }
    out
}

fn decode_entries(b: &[u8]) -> Result<Vec<(u64, PdqHash)>, String> {
    if b.len() % 40 != 0 {
        return Err(format!(
            "stored pdata entries: {} bytes is not a multiple of 40",
            b.len()
        ));
    }
    Ok(b.chunks_exact(40)
        .map(|c| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&c[..8]);
            let mut h = [0u8; 32];
            h.copy_from_slice(&c[8..]);
            (u64::from_be_bytes(id), PdqHash::from_bytes(h))
        })
        .collect())
}

/// The body of `POST /v1/pdata/build` (all optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// `default` (6 tables, 2 must agree) or `compact` (3 tables, any one).
    profile: Option<String>,
    /// Independent providers a hash must come from (default 2).
    min_providers: Option<usize>,
    /// Override the threshold t (testing and small deployments; devices
    /// refuse t < 30 under the default policy).
    threshold: Option<u16>,
}

/// `POST /v1/pdata/build` (admin).
pub async fn build(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let req: BuildRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BuildRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid build request: {e}")))?
    };
    let mut params = match req.profile.as_deref() {
        None | Some("default") => Params::default(),
        Some("compact") => Params::compact(),
        Some(p) => {
            return Err(ApiError::bad_request(format!(
                "unknown profile {p:?} (default or compact)"
            )));
        }
    };
    if let Some(t) = req.threshold {
        params.threshold = t;
    }
    params
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let min_providers = req.min_providers.unwrap_or(2).max(1);
    // The list: PDQ hashes that banks of at least `min_providers` distinct
    // providers hold (enabled banks and content); the entry's id is the
    // lowest content id holding it.
    let s = &state.store;
    let rows = sqlx::query(&s.sql(
        "SELECT s.value, b.provider, MIN(s.content_id) AS cid FROM signals s \
         JOIN banks b ON b.id = s.bank_id JOIN content c ON c.id = s.content_id \
         WHERE s.signal_type = 'pdq' AND b.enabled = 1 AND c.enabled = 1 AND b.provider IS NOT NULL \
         GROUP BY s.value, b.provider",
    ))
    .fetch_all(&s.pool)
    .await?;
    let mut by_hash: HashMap<String, (usize, i64)> = HashMap::new();
    for r in &rows {
        let v: String = r.try_get("value")?;
        let cid: i64 = r.try_get("cid")?;
        let e = by_hash.entry(v).or_insert((0, cid));
        e.0 += 1;
        e.1 = e.1.min(cid);
    }
    let mut entries: Vec<(u64, PdqHash)> = by_hash
        .into_iter()
        .filter(|(_, (n, _))| *n >= min_providers)
        .map(|(v, (_, cid))| v.parse::<PdqHash>().map(|h| (cid as u64, h)))
        .collect::<Result<_, _>>()
        .map_err(ApiError::internal)?;
    entries.sort_by_key(|e| e.0);
    if entries.is_empty() {
        return Err(ApiError::bad_request(format!(
            "no PDQ hash is held by banks of {min_providers} or more distinct providers (set each bank's `provider`)"
        )));
    }
    let keys = psi_keys(&state, true)
        .await?
        .ok_or_else(|| ApiError::internal("no PSI keys"))?;
    let n = entries.len();
    let started = Instant::now();
    let (pdata, entries) = tokio::task::spawn_blocking(move || {
        Pdata::build(&keys, &params, &entries, &mut rand::rngs::OsRng).map(|(p, _)| (p, entries))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let root = pdata.root().to_string();
    let params_json = json!({
        "tables": params.tables, "min_tables": params.min_tables, "bits_per_table": params.bits_per_table,
        "threshold": params.threshold, "max_synthetic": params.max_synthetic,
        "synthetic_probability": params.synthetic_probability, "radius": params.radius,
        "derivative_bytes": params.derivative_bytes, "min_providers": min_providers,
    });
    let mut tx = s.pool.begin().await?;
    let id: i64 = sqlx::query(&s.sql(
        "INSERT INTO pdata_releases (root, params, pdata, entries, entry_count, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(&root)
    .bind(params_json.to_string())
    .bind(pdata.to_bytes())
    .bind(encode_entries(&entries))
    .bind(n as i64)
    .bind(now_ms())
    .bind(&caller.key_id)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "pdata.build",
        None,
        None,
        json!({"release": id, "root": root, "entries": n, "params": params_json}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"release": id, "root": root, "entries": n, "bytes": pdata.byte_len(), "params": params_json,
            "build_seconds": started.elapsed().as_secs_f64()}),
        ),
    ))
}

/// `GET /v1/pdata`: the current release's bytes; its root in `X-Bulwark-Pdata-Root`.
pub async fn get(State(state): State<AppState>) -> ApiResult<Response> {
    let r = current(&state)
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

/// `GET /v1/pdata/root`.
pub async fn root(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let r = current(&state)
        .await?
        .ok_or_else(|| ApiError::not_found("no pdata release yet (POST /v1/pdata/build)"))?;
    let p = r.pdata.params();
    Ok(Json(json!({
        "release": r.id, "root": r.root.to_string(), "entries": r.entry_count, "bytes": r.bytes.len(),
        "created_at": rfc3339(r.created_at),
        "params": {"tables": p.tables, "min_tables": p.min_tables, "bits_per_table": p.bits_per_table,
            "threshold": p.threshold, "synthetic_probability": p.synthetic_probability, "radius": p.radius},
    })))
}

/// The body of `POST /v1/vouchers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherIn {
    account: String,
    voucher: String,
}

/// `POST /v1/vouchers`.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(v): JsonBody<VoucherIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Matcher)?;
    if v.account.is_empty() || v.account.len() > 256 {
        return Err(ApiError::bad_request("account must be 1–256 bytes"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.voucher.as_bytes())
        .map_err(|_| ApiError::bad_request("voucher must be base64"))?;
    let voucher = Voucher::from_bytes(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_voucher", e.to_string()))?;
    let release = current(&state)
        .await?
        .ok_or_else(|| ApiError::not_found("no pdata release yet"))?;
    let keys = psi_keys(&state, false)
        .await?
        .ok_or_else(|| ApiError::internal("no PSI keys"))?;
    let lock = {
        let mut m = state.releases.accounts.lock().await;
        if m.len() > 10_000 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(m.entry(v.account.clone()).or_default())
    };
    let _one_at_a_time = lock.lock().await;
    let s = &state.store;
    let mut tx = s.pool.begin().await?;
    let lock_clause = if s.backend == db::Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = sqlx::query(&s.sql(&format!(
        "SELECT state FROM psi_accounts WHERE account = ?{lock_clause}"
    )))
    .bind(&v.account)
    .fetch_optional(&mut *tx)
    .await?;
    let mut account = match &row {
        Some(r) => AccountState::from_bytes(&r.try_get::<Vec<u8>, _>("state")?)
            .map_err(ApiError::internal)?,
        None => AccountState::new(),
    };
    let r2 = Arc::clone(&release);
    let (result, account) = tokio::task::spawn_blocking(move || {
        let res = account.ingest(&keys, &r2.pdata, &voucher);
        (res, account)
    })
    .await
    .map_err(ApiError::internal)?;
    match result {
        Err(Rejection::WrongPdata) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "stale_pdata",
                format!(
                    "the voucher was made against another pdata; fetch /v1/pdata (root {})",
                    release.root
                ),
            ));
        }
        Err(Rejection::Malformed(m)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_voucher",
                format!("malformed voucher: {m}"),
            ));
        }
        // Every other outcome gets the same answer as an accepted voucher:
        // a different one would tell the sender something about matching.
        Err(e) => {
            tracing::info!("voucher for account refused: {e}");
            tx.rollback().await?;
            return Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true}))));
        }
        Ok(()) => {}
    }
    let threshold = usize::from(release.pdata.params().threshold);
    let opened = if account.len() > threshold {
        let (a, r3) = (account.clone(), Arc::clone(&release));
        tokio::task::spawn_blocking(move || a.open(&r3.pdata, &r3.table))
            .await
            .map_err(ApiError::internal)?
    } else {
        None
    };
    let flagged = opened.is_some();
    sqlx::query(&s.sql(
        "INSERT INTO psi_accounts (account, state, flagged, updated_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (account) DO UPDATE SET state = excluded.state, flagged = excluded.flagged, updated_at = excluded.updated_at",
    ))
    .bind(&v.account)
    .bind(account.to_bytes())
    .bind(flagged as i64)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if let Some(opened) = opened {
        sqlx::query(&s.sql("DELETE FROM psi_opened WHERE account = ?"))
            .bind(&v.account)
            .execute(&mut *tx)
            .await?;
        for o in &opened {
            sqlx::query(&s.sql(
                "INSERT INTO psi_opened (account, content_id, distance, hash, derivative, opened_at) VALUES (?, ?, ?, ?, ?, ?)",
            ))
            .bind(&v.account)
            .bind(o.content_id as i64)
            .bind(o.distance as i64)
            .bind(o.hash.to_string())
            .bind(o.derivative.clone())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true}))))
}

/// `GET /v1/accounts/{id}` (curator).
pub async fn account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let s = &state.store;
    let flagged = sqlx::query(&s.sql("SELECT flagged FROM psi_accounts WHERE account = ?"))
        .bind(&id)
        .fetch_optional(&s.pool)
        .await?
        .map(|r| r.try_get::<i64, _>("flagged"))
        .transpose()?
        == Some(1);
    if !flagged {
        // The same answer for an unknown account, one with no matches, and
        // one with any number of matches at or below the threshold.
        return Ok(Json(json!({"account": id, "status": "not flagged"})));
    }
    let rows = sqlx::query(&s.sql(
        "SELECT o.content_id, o.distance, o.hash, o.derivative, b.name AS bank FROM psi_opened o \
         LEFT JOIN content c ON c.id = o.content_id LEFT JOIN banks b ON b.id = c.bank_id \
         WHERE o.account = ? ORDER BY o.distance, o.content_id",
    ))
    .bind(&id)
    .fetch_all(&s.pool)
    .await?;
    let matches = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "bank": r.try_get::<Option<String>, _>("bank")?,
                "content_id": r.try_get::<i64, _>("content_id")?,
                "distance": r.try_get::<i64, _>("distance")?,
                "hash": r.try_get::<String, _>("hash")?,
                "derivative_base64": base64::engine::general_purpose::STANDARD.encode(r.try_get::<Vec<u8>, _>("derivative")?),
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(
        json!({"account": id, "status": "flagged", "matches": matches}),
    ))
}
