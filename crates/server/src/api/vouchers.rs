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
    /// Voucher intake limits.
    limits: RateLimits,
    /// Wakes the voucher worker when a voucher is queued.
    wake: tokio::sync::Notify,
}

impl Releases {
    /// Forgets the cached release: the next request reads the store.
    pub fn clear_cache(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

async fn psi_keys(state: &AppState, create: bool) -> Result<Option<ServerKeys>, ApiError> {
    let s = &state.store;
    if let Some(stored) = db::meta(s, "psi_server_keys").await? {
        let bytes = state
            .kek
            .open("psi_server_keys", &stored)
            .map_err(ApiError::internal)?;
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
    .bind(
        state
            .kek
            .seal("psi_server_keys", keys.to_bytes().as_slice()),
    )
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
        && at.elapsed() < Duration::from_secs(2)
    {
        return Ok(Some(Arc::clone(r)));
    }
    let s = &state.store;
    let Some(latest) =
        sqlx::query("SELECT MAX(id) AS id FROM pdata_releases WHERE published_at IS NOT NULL")
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
    if !b.len().is_multiple_of(40) {
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
    /// `default` (6 tables, 2 must agree), `compact` (3 tables, any one) or
    /// `multiprobe` (6 tables, 2 must agree, several probes per table).
    profile: Option<String>,
    /// Independent providers a hash must come from and that must sign the
    /// root (default 2; less than 2 is refused).
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
        Some("multiprobe") => Params::multiprobe(),
        Some(p) => {
            return Err(ApiError::bad_request(format!(
                "unknown profile {p:?} (default, compact or multiprobe)"
            )));
        }
    };
    if let Some(t) = req.threshold {
        params.threshold = t;
    }
    params
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let min_providers = req.min_providers.unwrap_or(2);
    if !(2..=16).contains(&min_providers) {
        return Err(ApiError::bad_request(
            "min_providers must be 2..=16: devices only use hashes, and roots, that at least two independent providers vouch for",
        ));
    }
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
    // The epoch: one per release, so every device secret is derived anew.
    let epoch: i64 = sqlx::query("SELECT COALESCE(MAX(epoch), 0) + 1 AS e FROM pdata_releases")
        .fetch_one(&s.pool)
        .await?
        .try_get("e")?;
    let release = bulwark_psi::Release {
        epoch: epoch as u64,
        min_providers: min_providers as u16,
    };
    let (pdata, entries) = tokio::task::spawn_blocking(move || {
        Pdata::build_release(&keys, &params, release, &entries, &mut rand::rngs::OsRng)
            .map(|(p, _)| (p, entries))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let root = pdata.root().to_string();
    let params_json = json!({
        "tables": params.tables, "min_tables": params.min_tables, "bits_per_table": params.bits_per_table, "probes": params.probes,
        "threshold": params.threshold, "max_synthetic": params.max_synthetic,
        "synthetic_probability": params.synthetic_probability, "radius": params.radius,
        "derivative_bytes": params.derivative_bytes, "min_providers": min_providers,
        "epoch": epoch,
    });
    let mut tx = s.begin().await?;
    let id: i64 = sqlx::query(&s.sql(
        "INSERT INTO pdata_releases (root, params, pdata, entries, entry_count, created_at, created_by, \
         epoch, min_providers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(&root)
    .bind(params_json.to_string())
    .bind(pdata.to_bytes())
    .bind(encode_entries(&entries))
    .bind(n as i64)
    .bind(now_ms())
    .bind(&caller.key_id)
    .bind(epoch)
    .bind(min_providers as i64)
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
            "status": "awaiting provider signatures",
            "sign_at": format!("/v1/pdata/releases/{id}/signatures"),
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
        "params": {"tables": p.tables, "min_tables": p.min_tables, "bits_per_table": p.bits_per_table, "probes": p.probes,
            "threshold": p.threshold, "synthetic_probability": p.synthetic_probability, "radius": p.radius},
    })))
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

/// Token buckets for voucher intake, per device and per relaying key.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    /// Takes one token from `key`'s bucket (`per_minute` capacity, refilled
    /// evenly); false when empty.
    fn take(&self, key: &str, per_minute: u32) -> bool {
        let cap = f64::from(per_minute.max(1));
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() > 100_000 {
            b.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(120));
        }
        let now = Instant::now();
        let (tokens, at) = b.entry(key.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * cap / 60.0).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn too_many(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many vouchers from this {what}; slow down"),
    )
}

/// `POST /v1/vouchers`.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(v): JsonBody<VoucherIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    for (what, f) in [("account", &v.account), ("device", &v.device)] {
        if f.is_empty() || f.len() > super::devices::MAX_ID_BYTES {
            return Err(ApiError::bad_request(format!(
                "{what} must be 1–{} bytes",
                super::devices::MAX_ID_BYTES
            )));
        }
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.voucher.as_bytes())
        .map_err(|_| ApiError::bad_request("voucher must be base64"))?;
    // Who: an enrolled device's signature, before anything else is looked at.
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, "bad_signature", m);
    let public = super::devices::public_key(&state, &v.account, &v.device)
        .await?
        .ok_or_else(|| forbidden("the device is not enrolled for this account (or was revoked)"))?;
    let sig = hex::decode(&v.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .ok_or_else(|| ApiError::bad_request("signature must be 128 hex digits"))?;
    public
        .verify_strict(
            &bulwark_psi::envelope::signing_input(&v.account, &v.device, &bytes),
            &sig,
        )
        .map_err(|_| forbidden("the voucher's signature does not verify with the device's key"))?;
    let cfg = &state.config;
    let limits = &state.releases.limits;
    if !limits.take(
        &format!("d\u{0}{}\u{0}{}", v.account, v.device),
        cfg.vouchers_per_device_per_minute,
    ) {
        return Err(too_many("device"));
    }
    if !limits.take(
        &format!("k\u{0}{}", caller.key_id),
        cfg.vouchers_per_key_per_minute,
    ) {
        return Err(too_many("key"));
    }
    // Form: from the bytes and the published pdata alone.
    let voucher = Voucher::from_bytes(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_voucher", e.to_string()))?;
    let release = current(&state)
        .await?
        .ok_or_else(|| ApiError::not_found("no pdata release yet"))?;
    match bulwark_psi::envelope::check_shape(&voucher, &release.pdata) {
        Ok(()) => {}
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
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_voucher",
                e.to_string(),
            ));
        }
    }
    // Queued: whatever happens when it is opened, the answer is this one.
    let s = &state.store;
    sqlx::query(&s.sql(
        "INSERT INTO psi_pending (account, device, release_id, voucher, received_at) VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(&v.account)
    .bind(&v.device)
    .bind(release.id)
    .bind(bytes)
    .bind(now_ms())
    .execute(&s.pool)
    .await?;
    state.releases.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true}))))
}

/// Ingests queued vouchers (up to `batch`), opening and flagging accounts
/// above the threshold. Returns how many queued vouchers it took. Run by the
/// background worker; tests call it to drain the queue.
pub async fn process_pending(state: &AppState, batch: i64) -> Result<usize, ApiError> {
    let s = &state.store;
    let rows = sqlx::query(
        &s.sql("SELECT id, account, release_id, voucher FROM psi_pending ORDER BY id LIMIT ?"),
    )
    .bind(batch)
    .fetch_all(&s.pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let keys = psi_keys(state, false)
        .await?
        .ok_or_else(|| ApiError::internal("no PSI keys"))?;
    let keys = Arc::new(keys);
    let mut n = 0;
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let account: String = row.try_get("account")?;
        let release_id: i64 = row.try_get("release_id")?;
        let bytes: Vec<u8> = row.try_get("voucher")?;
        let release = current(state).await?;
        let mut tx = s.begin().await?;
        let took = sqlx::query(&s.sql("DELETE FROM psi_pending WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        n += 1;
        // Another replica took it, or it belongs to a release no longer current.
        let Some(release) = release.filter(|r| took == 1 && r.id == release_id) else {
            tx.commit().await?;
            continue;
        };
        let lock_clause = if s.backend == db::Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let existing = sqlx::query(&s.sql(&format!(
            "SELECT state FROM psi_states WHERE account = ? AND release_id = ?{lock_clause}"
        )))
        .bind(&account)
        .bind(release_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut st = match &existing {
            Some(r) => AccountState::from_bytes(&r.try_get::<Vec<u8>, _>("state")?)
                .map_err(ApiError::internal)?,
            None => AccountState::new(),
        };
        let params = *release.pdata.params();
        if st.len() >= params.max_entries_per_epoch() {
            tracing::debug!("account state at its cap; voucher dropped");
            tx.commit().await?;
            continue;
        }
        let (k, r2) = (Arc::clone(&keys), Arc::clone(&release));
        let (result, st, opened) = tokio::task::spawn_blocking(move || {
            let Ok(voucher) = Voucher::from_bytes(&bytes) else {
                return (Err(Rejection::Malformed("stored voucher")), st, None);
            };
            let res = st.ingest(&k, &r2.pdata, &voucher);
            let opened = if res.is_ok() && st.len() > usize::from(r2.pdata.params().threshold) {
                st.open(&r2.pdata, &r2.table)
            } else {
                None
            };
            (res, st, opened)
        })
        .await
        .map_err(ApiError::internal)?;
        if let Err(e) = result {
            tracing::debug!("queued voucher refused: {e}");
            tx.commit().await?;
            continue;
        }
        let now = now_ms();
        sqlx::query(&s.sql(
            "INSERT INTO psi_states (account, release_id, state, entries, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (account, release_id) DO UPDATE SET state = excluded.state, entries = excluded.entries, \
             updated_at = excluded.updated_at",
        ))
        .bind(&account)
        .bind(release_id)
        .bind(st.to_bytes())
        .bind(st.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Flag only on a real match that decrypted; never unflag here.
        if let Some(opened) = opened.filter(|o| !o.is_empty()) {
            sqlx::query(&s.sql(
                "INSERT INTO psi_accounts (account, state, flagged, updated_at, flagged_at) VALUES (?, ?, 1, ?, ?) \
                 ON CONFLICT (account) DO UPDATE SET flagged = 1, updated_at = excluded.updated_at, \
                 flagged_at = COALESCE(psi_accounts.flagged_at, excluded.flagged_at)",
            ))
            .bind(&account)
            .bind(Vec::<u8>::new())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&s.sql("DELETE FROM psi_opened WHERE account = ? AND release_id = ?"))
                .bind(&account)
                .bind(release_id)
                .execute(&mut *tx)
                .await?;
            for o in &opened {
                sqlx::query(&s.sql(
                    "INSERT INTO psi_opened (account, content_id, distance, hash, derivative, opened_at, release_id) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                ))
                .bind(&account)
                .bind(o.content_id as i64)
                .bind(o.distance as i64)
                .bind(o.hash.to_string())
                .bind(o.derivative.clone())
                .bind(now)
                .bind(release_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(n)
}

/// Runs [`process_pending`] whenever vouchers are queued (and every second,
/// for vouchers queued by other replicas).
pub fn spawn_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match process_pending(&state, 64).await {
                Ok(64) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!("voucher worker: {}", e.message),
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(1), state.releases.wake.notified()).await;
        }
    })
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
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let req: ClearRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ClearRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid clear request: {e}")))?
    };
    if req.note.as_ref().is_some_and(|n| n.len() > 4096) {
        return Err(ApiError::bad_request("note is at most 4096 bytes"));
    }
    clear_account(&state, &caller.key_id, &id, req.note).await?;
    Ok(Json(json!({"account": id, "status": "not flagged"})))
}

/// Unflags an account: its opened vouchers and epoch states are deleted and
/// the clearing is audited, in one transaction. The one way to clear, shared
/// by `POST /v1/accounts/{id}/clear` and the reviewer console.
pub async fn clear_account(
    state: &AppState,
    actor: &str,
    id: &str,
    note: Option<String>,
) -> Result<(), ApiError> {
    let s = &state.store;
    let mut tx = s.begin().await?;
    let done = sqlx::query(&s.sql(
        "UPDATE psi_accounts SET flagged = 0, cleared_at = ?, cleared_by = ? WHERE account = ? AND flagged = 1",
    ))
    .bind(now_ms())
    .bind(actor)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(ApiError::not_found("no flagged account with that id"));
    }
    for table in ["psi_opened", "psi_states"] {
        sqlx::query(&s.sql(&format!("DELETE FROM {table} WHERE account = ?")))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    db::audit(
        s,
        &mut tx,
        actor,
        "account.clear",
        None,
        None,
        json!({"account": id, "note": note}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::RateLimits;

    #[test]
    fn a_device_gets_its_burst_then_is_refused() {
        let l = RateLimits::default();
        let granted = (0..100).filter(|_| l.take("d\0alice\0phone", 10)).count();
        assert_eq!(
            granted, 10,
            "a burst of the per-minute budget, then refusals"
        );
        // Another device has its own bucket.
        assert!(l.take("d\0bob\0phone", 10));
    }
}
