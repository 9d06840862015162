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

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bulwark_psi::log::MerkleLog;
use bulwark_psi::{Pdata, ProviderPublic, RootSignature, SignedRoot};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult, snippet};

/// The body of `POST /v1/providers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    name: String,
    public_key: String,
}

fn parse_key(hexed: &str) -> Result<ProviderPublic, ApiError> {
    Ok(ProviderPublic(
        bulwark_service::devices::parse_public_key(hexed)?.to_bytes(),
    ))
}

/// `POST /v1/providers` (admin).
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(p): JsonBody<NewProvider>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    if p.name.is_empty() || p.name.len() > 128 || p.name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must be 1–128 bytes without control characters",
        ));
    }
    let key = parse_key(&p.public_key)?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let done = sqlx::query(&s.sql(
        "INSERT INTO providers (name, public_key, enrolled_at, enrolled_by) VALUES (?, ?, ?, ?) \
         ON CONFLICT DO NOTHING",
    ))
    .bind(&p.name)
    .bind(hex::encode(key.0))
    .bind(now_ms())
    .bind(&caller.key_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(ApiError::conflict(format!(
            "a provider named {:?} or with that key is already enrolled",
            snippet(&p.name)
        )));
    }
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "provider.enrol",
        None,
        None,
        json!({"name": p.name, "public_key": hex::encode(key.0)}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": p.name, "public_key": hex::encode(key.0)})),
    ))
}

/// `GET /v1/providers` (public: the keys devices may pin, as the service knows them).
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let s = &state.store;
    let rows = sqlx::query(
        "SELECT name, public_key, enrolled_at, revoked_at FROM providers ORDER BY name",
    )
    .fetch_all(&s.pool)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "name": r.try_get::<String, _>("name")?,
                "public_key": r.try_get::<String, _>("public_key")?,
                "enrolled_at": rfc3339(r.try_get("enrolled_at")?),
                "revoked_at": r.try_get::<Option<i64>, _>("revoked_at")?.map(rfc3339),
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({"providers": items})))
}

/// `DELETE /v1/providers/{name}` (admin): its signatures no longer count for new releases.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let done = sqlx::query(
        &s.sql("UPDATE providers SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"),
    )
    .bind(now_ms())
    .bind(&name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(ApiError::not_found("no such enrolled provider"));
    }
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "provider.revoke",
        None,
        None,
        json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"revoked": true})))
}

/// Enrolled, not revoked provider keys.
async fn enrolled(conn: &mut sqlx::AnyConnection) -> Result<Vec<ProviderPublic>, ApiError> {
    let rows = sqlx::query("SELECT public_key FROM providers WHERE revoked_at IS NULL")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let h: String = r.try_get("public_key")?;
            parse_key(&h).map_err(|_| ApiError::internal("a stored provider key does not parse"))
        })
        .collect()
}

/// `GET /v1/pdata/releases/{id}` (public): the pdata of a release, pending or not.
pub async fn release_pdata(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let s = &state.store;
    let row =
        sqlx::query(&s.sql("SELECT root, pdata, published_at FROM pdata_releases WHERE id = ?"))
            .bind(id)
            .fetch_optional(&s.pool)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no release {id}")))?;
    let root: String = row.try_get("root")?;
    let bytes: Vec<u8> = row.try_get("pdata")?;
    let published = row.try_get::<Option<i64>, _>("published_at")?.is_some();
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                axum::http::HeaderName::from_static("x-bulwark-pdata-root"),
                root,
            ),
            (
                axum::http::HeaderName::from_static("x-bulwark-release-published"),
                published.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The body of `POST /v1/pdata/releases/{id}/signatures`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureIn {
    public_key: String,
    signature: String,
}

/// `POST /v1/pdata/releases/{id}/signatures`: one provider's signature; the
/// release is published once enough distinct enrolled providers signed.
pub async fn sign(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<SignatureIn>,
) -> ApiResult<Json<Value>> {
    let key = parse_key(&b.public_key)?;
    let signature: [u8; 64] = hex::decode(&b.signature)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ApiError::bad_request("signature must be 128 hex digits"))?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let row = sqlx::query(&s.sql(&format!(
        "SELECT root, pdata, published_at, min_providers FROM pdata_releases WHERE id = ?{}",
        if s.backend == db::Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        }
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no release {id}")))?;
    let root: bulwark_psi::Root = row
        .try_get::<String, _>("root")?
        .parse()
        .map_err(ApiError::internal)?;
    let bytes: Vec<u8> = row.try_get("pdata")?;
    let min_providers: i64 = row.try_get("min_providers")?;
    let pdata = Pdata::from_bytes(&bytes, &root).map_err(ApiError::internal)?;
    let pinned = enrolled(&mut tx).await?;
    if !pinned.contains(&key) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "that key is not an enrolled provider (POST /v1/providers)",
        ));
    }
    let mut one = SignedRoot::new(&pdata);
    one.add(RootSignature { key, signature });
    if one.valid_signers(&[key]).is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_signature",
            "the signature does not verify over this release's root and header",
        ));
    }
    sqlx::query(&s.sql(
        "INSERT INTO pdata_signatures (release_id, public_key, signature, at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (release_id, public_key) DO NOTHING",
    ))
    .bind(id)
    .bind(hex::encode(key.0))
    .bind(hex::encode(signature))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    // Every stored signature by a still-enrolled provider.
    let mut signed = SignedRoot::new(&pdata);
    for r in sqlx::query(&s.sql(
        "SELECT public_key, signature FROM pdata_signatures WHERE release_id = ? ORDER BY at, public_key",
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    {
        let k = parse_key(&r.try_get::<String, _>("public_key")?)?;
        let sig: [u8; 64] = hex::decode(r.try_get::<String, _>("signature")?)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| ApiError::internal("a stored signature does not parse"))?;
        if pinned.contains(&k) {
            signed.add(RootSignature {
                key: k,
                signature: sig,
            });
        }
    }
    let valid = signed.valid_signers(&pinned).len();
    let need = usize::try_from(min_providers.max(2)).unwrap_or(2);
    let already = row.try_get::<Option<i64>, _>("published_at")?.is_some();
    let mut published = already;
    let mut log_index = None;
    if !already && valid >= need {
        let leaf = signed.to_bytes();
        let idx: i64 = sqlx::query("SELECT COALESCE(MAX(idx), -1) + 1 AS n FROM pdata_log")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        sqlx::query(
            &s.sql("INSERT INTO pdata_log (idx, release_id, leaf, at) VALUES (?, ?, ?, ?)"),
        )
        .bind(idx)
        .bind(id)
        .bind(leaf.clone())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query(&s.sql(
            "UPDATE pdata_releases SET published_at = ?, signed_root = ?, log_index = ? WHERE id = ?",
        ))
        .bind(now_ms())
        .bind(leaf)
        .bind(idx)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        db::audit(
            s,
            &mut tx,
            &format!("provider:{}", &hex::encode(key.0)[..12]),
            "pdata.publish",
            None,
            None,
            json!({"release": id, "root": root.to_string(), "signers": valid, "log_index": idx}),
        )
        .await?;
        published = true;
        log_index = Some(idx);
    }
    tx.commit().await?;
    if published && !already {
        state.releases.clear_cache();
    }
    Ok(Json(json!({
        "release": id,
        "valid_signatures": valid,
        "required": need,
        "published": published,
        "log_index": log_index,
    })))
}

/// Every logged leaf, oldest first.
async fn load_log(state: &AppState) -> Result<(MerkleLog, Vec<i64>), ApiError> {
    let rows = sqlx::query("SELECT release_id, leaf FROM pdata_log ORDER BY idx")
        .fetch_all(&state.store.pool)
        .await?;
    let mut log = MerkleLog::new();
    let mut releases = Vec::with_capacity(rows.len());
    for r in &rows {
        log.append(&r.try_get::<Vec<u8>, _>("leaf")?);
        releases.push(r.try_get("release_id")?);
    }
    Ok((log, releases))
}

/// `GET /v1/pdata/signed` (public): the current release's signed root.
pub async fn signed(State(state): State<AppState>) -> ApiResult<Response> {
    let s = &state.store;
    let row = sqlx::query(
        "SELECT id, signed_root, log_index FROM pdata_releases WHERE published_at IS NOT NULL \
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&s.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("no published release yet"))?;
    let bytes: Vec<u8> = row.try_get("signed_root")?;
    let idx: i64 = row.try_get("log_index")?;
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
pub async fn head(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let (log, releases) = load_log(&state).await?;
    let h = log.head();
    Ok(Json(json!({
        "size": h.size,
        "root": hex::encode(h.root),
        "releases": releases,
    })))
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
) -> ApiResult<Json<Value>> {
    let (log, _) = load_log(&state).await?;
    let index = q
        .index
        .ok_or_else(|| ApiError::bad_request("index is required"))?;
    let size = q.size.unwrap_or(log.size());
    let proof = log
        .inclusion_proof(index, size)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({
        "index": index,
        "size": size,
        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/pdata/log/consistency?old=&new=` (public).
pub async fn consistency(
    State(state): State<AppState>,
    Query(q): Query<ProofQuery>,
) -> ApiResult<Json<Value>> {
    let (log, _) = load_log(&state).await?;
    let old = q
        .old
        .ok_or_else(|| ApiError::bad_request("old is required"))?;
    let new = q.new.unwrap_or(log.size());
    let proof = log
        .consistency_proof(old, new)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({
        "old": old,
        "new": new,
        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}
