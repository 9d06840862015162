//! Verifiable reports: `POST /v1/franking/stamp` for the delivery service,
//! `POST /v1/reports` for report intake, `GET /v1/reports[/{id}]` for review.
//!
//! A report is verified message by message (franking tag from content and
//! salt, then the service's stamp over tag, sender, conversation and time);
//! attachments sent with their ciphertext are opened with their committed key,
//! hashed and matched against the banks. A report that fails verification is
//! stored as `rejected` with the reason, never silently dropped.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bulwark_franking::{Context, FrankingTag, Keyring};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use zeroize::Zeroizing;

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};

/// The franking keys (creating the first on an empty table).
pub async fn keyring(state: &AppState) -> Result<Keyring, ApiError> {
    let s = &state.store;
    let load = || async {
        sqlx::query("SELECT id, secret FROM franking_keys WHERE retired_at IS NULL ORDER BY id")
            .fetch_all(&s.pool)
            .await
    };
    let mut rows = load().await?;
    if rows.is_empty() {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        // Replicas racing here agree: the first insert wins, the rest read it.
        sqlx::query(&s.sql(
            "INSERT INTO franking_keys (id, secret, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
        ))
        .bind(hex::encode(k.as_ref()))
        .bind(now_ms())
        .execute(&s.pool)
        .await?;
        rows = load().await?;
    }
    let mut keys = Vec::new();
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        let secret: String = r.try_get("secret")?;
        let mut k = [0u8; 32];
        hex::decode_to_slice(secret.as_bytes(), &mut k)
            .map_err(|e| ApiError::internal(format!("franking key {id}: {e}")))?;
        keys.push((id as u32, k));
        zeroize::Zeroize::zeroize(&mut k);
    }
    Ok(Keyring::from_keys(keys))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampRequest {
    tag: String,
    sender: String,
    conversation: String,
    accepted_at: Option<u64>,
}

/// `POST /v1/franking/stamp`: the delivery service stamps a message's
/// franking tag with sender, conversation and acceptance time.
pub async fn stamp(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(r): JsonBody<StampRequest>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(r.tag.as_bytes(), &mut tag)
        .map_err(|_| ApiError::bad_request("tag must be 64 hex digits"))?;
    if r.sender.len() > 1024 || r.conversation.len() > 1024 {
        return Err(ApiError::bad_request(
            "sender and conversation are at most 1024 bytes",
        ));
    }
    let accepted_at = r.accepted_at.unwrap_or_else(|| (now_ms() / 1000) as u64);
    let ring = keyring(&state).await?;
    let st = ring.stamp(
        &FrankingTag(tag),
        &Context {
            sender: r.sender.as_bytes(),
            conversation: r.conversation.as_bytes(),
            accepted_at,
        },
    );
    Ok(Json(
        json!({"key_id": st.key_id, "mac": hex::encode(st.mac), "accepted_at": accepted_at}),
    ))
}

/// `POST /v1/franking/rotate` (admin): a new stamping key; old keys still verify.
pub async fn rotate(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    keyring(&state).await?;
    let s = &state.store;
    let mut k = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(k.as_mut());
    let mut tx = s.pool.begin().await?;
    let id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM franking_keys")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    sqlx::query(&s.sql("INSERT INTO franking_keys (id, secret, created_at) VALUES (?, ?, ?)"))
        .bind(id)
        .bind(hex::encode(k.as_ref()))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "franking.rotate",
        None,
        None,
        json!({"key_id": id}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"key_id": id})))
}

struct AttachmentOutcome {
    msg: usize,
    idx: usize,
    blob_id: String,
    media_type: String,
    size: u64,
    ciphertext_sha256: String,
    status: &'static str,
    error: Option<String>,
    hashes: Option<Value>,
    matches: Option<Vec<Value>>,
    plaintext: Option<Vec<u8>>,
}

/// `POST /v1/reports`: verify, hash and match attachments, store, queue for review.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(Role::Matcher)?;
    let report = bulwark_franking::wire::parse_report(&body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if report.reason.as_ref().is_some_and(|r| r.len() > 200)
        || report.text.as_ref().is_some_and(|t| t.len() > 16 << 10)
    {
        return Err(ApiError::bad_request(
            "reason is at most 200 bytes and text at most 16 KiB",
        ));
    }
    let ring = keyring(&state).await?;
    let mut rejection: Option<String> = None;
    let mut verified = Vec::new();
    for (i, m) in report.messages.iter().enumerate() {
        match ring.verify_report(&m.as_reported()) {
            Ok(_) => verified.push(None),
            Err(e) => {
                rejection.get_or_insert_with(|| format!("message {i}: {e}"));
                verified.push(Some(e.to_string()));
            }
        }
    }
    // Attachments: opened only when their message verified.
    let mut outcomes = Vec::new();
    for (i, m) in report.messages.iter().enumerate() {
        for (j, (r, ct)) in m.attachments.iter().enumerate() {
            let mut o = AttachmentOutcome {
                msg: i,
                idx: j,
                blob_id: r.blob_id.clone(),
                media_type: r.media_type.clone(),
                size: r.size,
                ciphertext_sha256: hex::encode(r.ciphertext_sha256),
                status: "not_provided",
                error: None,
                hashes: None,
                matches: None,
                plaintext: None,
            };
            if !r.is_referenced_by(&m.content) {
                o.status = "rejected";
                o.error = Some("not referenced by the franked content".into());
                rejection.get_or_insert_with(|| {
                    format!("message {i} attachment {j}: not referenced by the franked content")
                });
            } else if let (Some(ct), None) = (ct, &verified[i]) {
                match bulwark_franking::attachment::open(r, ct) {
                    Err(e) => {
                        o.status = "rejected";
                        o.error = Some(e.to_string());
                        rejection.get_or_insert_with(|| format!("message {i} attachment {j}: {e}"));
                    }
                    Ok(plain) => {
                        o.status = "opened";
                        let hashed = state.media.hash(Bytes::from(plain.clone())).await;
                        match hashed {
                            Ok(h) => {
                                let matches =
                                    super::matching::match_hashed(&state, &h, None).await?;
                                o.hashes = Some(h.summary_json());
                                o.matches = Some(matches);
                            }
                            Err(e) => o.error = Some(e.message),
                        }
                        o.plaintext = Some(plain);
                    }
                }
            }
            outcomes.push(o);
        }
    }
    let status = if rejection.is_some() {
        "rejected"
    } else {
        "queued"
    };
    let s = &state.store;
    let mut tx = s.pool.begin().await?;
    let id: i64 = sqlx::query(&s.sql(
        "INSERT INTO reports (received_at, submitted_by, status, reason, text, rejection) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(now_ms())
    .bind(&caller.key_id)
    .bind(status)
    .bind(&report.reason)
    .bind(&report.text)
    .bind(&rejection)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    for (i, m) in report.messages.iter().enumerate() {
        sqlx::query(&s.sql(
            "INSERT INTO report_messages (report_id, idx, sender, conversation, accepted_at, content, key_id, verified, rejection) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(id)
        .bind(i as i64)
        .bind(&m.sender)
        .bind(&m.conversation)
        .bind(m.accepted_at as i64)
        .bind(m.content.clone())
        .bind(m.stamp.key_id as i64)
        .bind(verified[i].is_none() as i64)
        .bind(&verified[i])
        .execute(&mut *tx)
        .await?;
    }
    for o in &outcomes {
        sqlx::query(&s.sql(
            "INSERT INTO report_attachments (report_id, msg_idx, idx, blob_id, media_type, size, ciphertext_sha256, \
             status, error, hashes, matches, plaintext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(id)
        .bind(o.msg as i64)
        .bind(o.idx as i64)
        .bind(&o.blob_id)
        .bind(&o.media_type)
        .bind(o.size as i64)
        .bind(&o.ciphertext_sha256)
        .bind(o.status)
        .bind(&o.error)
        .bind(o.hashes.as_ref().map(|h| h.to_string()))
        .bind(o.matches.as_ref().map(|m| Value::Array(m.clone()).to_string()))
        .bind(o.plaintext.clone())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let summary = json!({
        "id": id,
        "status": status,
        "messages": report.messages.len(),
        "attachments": outcomes.iter().map(attachment_json_of).collect::<Vec<_>>(),
    });
    match rejection {
        None => Ok((StatusCode::CREATED, Json(summary)).into_response()),
        Some(reason) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": {"code": "report_rejected", "message": format!("the report does not verify: {reason}")},
                "report_id": id,
            })),
        )
            .into_response()),
    }
}

fn attachment_json_of(o: &AttachmentOutcome) -> Value {
    json!({
        "message": o.msg,
        "index": o.idx,
        "blob_id": o.blob_id,
        "media_type": o.media_type,
        "size": o.size,
        "ciphertext_sha256": o.ciphertext_sha256,
        "status": o.status,
        "error": o.error,
        "hashes": o.hashes,
        "matches": o.matches,
    })
}

#[derive(Deserialize)]
pub struct ReportQuery {
    status: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

fn report_json(r: &sqlx::any::AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": r.try_get::<i64, _>("id")?,
        "received_at": rfc3339(r.try_get("received_at")?),
        "submitted_by": r.try_get::<String, _>("submitted_by")?,
        "status": r.try_get::<String, _>("status")?,
        "reason": r.try_get::<Option<String>, _>("reason")?,
        "text": r.try_get::<Option<String>, _>("text")?,
        "rejection": r.try_get::<Option<String>, _>("rejection")?,
    }))
}

/// `GET /v1/reports`: newest last, by status.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let s = &state.store;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = match &q.status {
        Some(st) => {
            sqlx::query(
                &s.sql("SELECT * FROM reports WHERE status = ? AND id > ? ORDER BY id LIMIT ?"),
            )
            .bind(st)
            .bind(q.after.unwrap_or(0))
            .bind(limit)
            .fetch_all(&s.pool)
            .await?
        }
        None => {
            sqlx::query(&s.sql("SELECT * FROM reports WHERE id > ? ORDER BY id LIMIT ?"))
                .bind(q.after.unwrap_or(0))
                .bind(limit)
                .fetch_all(&s.pool)
                .await?
        }
    };
    let items = rows
        .iter()
        .map(report_json)
        .collect::<Result<Vec<_>, _>>()?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().and_then(|r| r["id"].as_i64()))
        .flatten();
    Ok(Json(json!({"items": items, "next_after": next})))
}

/// `GET /v1/reports/{id}`: the verified facts, message contents, attachment hashes and matches.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let s = &state.store;
    let row = sqlx::query(&s.sql("SELECT * FROM reports WHERE id = ?"))
        .bind(id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no report {id}")))?;
    let mut j = report_json(&row)?;
    let msgs =
        sqlx::query(&s.sql("SELECT * FROM report_messages WHERE report_id = ? ORDER BY idx"))
            .bind(id)
            .fetch_all(&s.pool)
            .await?;
    let atts = sqlx::query(&s.sql(
        "SELECT msg_idx, idx, blob_id, media_type, size, ciphertext_sha256, status, error, hashes, matches \
         FROM report_attachments WHERE report_id = ? ORDER BY msg_idx, idx",
    ))
    .bind(id)
    .fetch_all(&s.pool)
    .await?;
    let mut messages = Vec::new();
    for m in &msgs {
        let idx: i64 = m.try_get("idx")?;
        let content: Vec<u8> = m.try_get("content")?;
        let attachments: Vec<Value> = atts
            .iter()
            .filter(|a| a.try_get::<i64, _>("msg_idx").ok() == Some(idx))
            .map(|a| {
                let parse = |c: &str| -> Result<Value, sqlx::Error> {
                    Ok(a.try_get::<Option<String>, _>(c)?
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or(Value::Null))
                };
                Ok(json!({
                    "index": a.try_get::<i64, _>("idx")?,
                    "blob_id": a.try_get::<String, _>("blob_id")?,
                    "media_type": a.try_get::<String, _>("media_type")?,
                    "size": a.try_get::<i64, _>("size")?,
                    "ciphertext_sha256": a.try_get::<String, _>("ciphertext_sha256")?,
                    "status": a.try_get::<String, _>("status")?,
                    "error": a.try_get::<Option<String>, _>("error")?,
                    "hashes": parse("hashes")?,
                    "matches": parse("matches")?,
                }))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        messages.push(json!({
            "index": idx,
            "sender": m.try_get::<String, _>("sender")?,
            "conversation": m.try_get::<String, _>("conversation")?,
            "accepted_at": rfc3339(m.try_get::<i64, _>("accepted_at")? * 1000),
            "verified": m.try_get::<i64, _>("verified")? != 0,
            "rejection": m.try_get::<Option<String>, _>("rejection")?,
            "key_id": m.try_get::<i64, _>("key_id")?,
            "content_base64": base64::engine::general_purpose::STANDARD.encode(&content),
            "content_text": String::from_utf8(content).ok(),
            "attachments": attachments,
        }));
    }
    j["messages"] = Value::Array(messages);
    Ok(Json(j))
}
