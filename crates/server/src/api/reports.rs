//! Verifiable reports: `POST /v1/franking/stamp` for the delivery service
//! (stamper role only), `GET /v1/franking/keys` for receivers, `POST
//! /v1/reports` for report intake, `GET /v1/reports[/{id}]` for review.
//!
//! A report is verified message by message (franking tag from content, salt
//! and message info, then the service's stamp over tag, sender,
//! conversation, message id, epoch, recipient set, time and stamper);
//! attachments are accepted only when they are one of the parsed references
//! of the verified content, and, sent with their ciphertext, are opened with
//! their committed key, hashed and matched against the banks. A signed
//! reporter must be an enrolled device of an account that was a recipient of
//! every reported message. A report that fails verification is stored as
//! `rejected` with the reason, never silently dropped. The same message
//! reported again is the same report, with one more reporter.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bulwark_franking::content::Content;
use bulwark_franking::wire::ReportIn;
use bulwark_franking::{Context, FrankingTag, Keyring, MessageInfo};
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

const SIGNING_KEY_NAME: &str = "franking_signing_key";

fn franking_key_name(id: i64) -> String {
    format!("franking_key_{id}")
}

/// The stamp signing key (creating it on first use); its public half is
/// published at `GET /v1/franking/keys`.
async fn signing_key(state: &AppState) -> Result<ed25519_dalek::SigningKey, ApiError> {
    let s = &state.store;
    if db::meta(s, SIGNING_KEY_NAME).await?.is_none() {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        sqlx::query(
            &s.sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"),
        )
        .bind(SIGNING_KEY_NAME)
        .bind(state.kek.seal(SIGNING_KEY_NAME, k.as_ref()))
        .execute(&s.pool)
        .await?;
    }
    // Another replica may have won the race: use what is stored.
    let stored = db::meta(s, SIGNING_KEY_NAME)
        .await?
        .ok_or_else(|| ApiError::internal("stamp signing key vanished"))?;
    let bytes = state
        .kek
        .open(SIGNING_KEY_NAME, &stored)
        .map_err(ApiError::internal)?;
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::internal("stamp signing key is not 32 bytes"))?,
    );
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// The franking keys (creating the first on an empty table), with the
/// signing key.
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
        .bind(state.kek.seal(&franking_key_name(1), k.as_ref()))
        .bind(now_ms())
        .execute(&s.pool)
        .await?;
        rows = load().await?;
    }
    let mut keys = Vec::new();
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        let stored: String = r.try_get("secret")?;
        let secret = state
            .kek
            .open(&franking_key_name(id), &stored)
            .map_err(ApiError::internal)?;
        let k: [u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::internal(format!("franking key {id} is not 32 bytes")))?;
        keys.push((id as u32, k));
    }
    let ring = Keyring::from_keys(keys.iter().copied());
    for (_, k) in &mut keys {
        zeroize::Zeroize::zeroize(k);
    }
    Ok(ring.with_signing_key(signing_key(state).await?))
}

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

/// `POST /v1/franking/stamp` (stamper role only): stamps and signs a
/// message's franking tag with sender, conversation, message id, epoch,
/// recipients, the server's time and the stamping key's id.
pub async fn stamp(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(r): JsonBody<StampRequest>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Stamper)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(r.tag.as_bytes(), &mut tag)
        .map_err(|_| ApiError::bad_request("tag must be 64 hex digits"))?;
    let ctx = Context {
        info: MessageInfo {
            sender: r.sender,
            conversation: r.conversation,
            message_id: r.message_id,
        },
        epoch: r.epoch,
        recipients: r.recipients,
        accepted_at: (now_ms() / 1000) as u64,
        stamper: caller.key_id.clone(),
    };
    ctx.validate().map_err(|_| {
        ApiError::bad_request(format!(
            "sender, conversation, message_id and each recipient must be 1–{} bytes, at most {} recipients",
            bulwark_franking::MAX_ID_BYTES,
            bulwark_franking::MAX_RECIPIENTS
        ))
    })?;
    let ring = keyring(&state).await?;
    let tag = FrankingTag(tag);
    let st = ring.stamp(&tag, &ctx);
    let sig = ring
        .sign(&tag, &ctx)
        .ok_or_else(|| ApiError::internal("no stamp signing key"))?;
    Ok(Json(json!({
        "key_id": st.key_id,
        "mac": hex::encode(st.mac),
        "signature": hex::encode(sig.to_bytes()),
        "accepted_at": ctx.accepted_at,
        "stamper": ctx.stamper,
    })))
}

/// `GET /v1/franking/keys` (public): the stamp signing key receivers check.
pub async fn keys(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let k = signing_key(&state).await?;
    Ok(Json(json!({
        "algorithm": "ed25519",
        "public_key": hex::encode(k.verifying_key().to_bytes()),
    })))
}

/// `POST /v1/franking/rotate` (admin): a new stamping key; old keys still verify.
pub async fn rotate(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    keyring(&state).await?;
    let s = &state.store;
    let mut k = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(k.as_mut());
    let mut tx = s.begin().await?;
    let id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM franking_keys")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    sqlx::query(&s.sql("INSERT INTO franking_keys (id, secret, created_at) VALUES (?, ?, ?)"))
        .bind(id)
        .bind(state.kek.seal(&franking_key_name(id), k.as_ref()))
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

/// The reporter, once its device signature checked out.
struct CheckedReporter {
    account: String,
    device: String,
    signature: String,
}

/// Checks the reporter: an enrolled, not revoked device of its account whose
/// key signed the report; a device key may only report as itself. `Err` is
/// the rejection reason.
async fn check_reporter(
    state: &AppState,
    caller: &Caller,
    report: &ReportIn,
) -> Result<Result<CheckedReporter, String>, ApiError> {
    let Some(rep) = &report.reporter else {
        return Ok(Err(
            "the report is not signed by the reporter's device (reporter is missing)".into(),
        ));
    };
    if caller.role == Role::Device {
        match &caller.device {
            Some((account, device)) if *account == rep.account && *device == rep.device => {}
            _ => return Ok(Err("a device key may only report as its own device".into())),
        }
    }
    let Some(public) = super::devices::public_key(state, &rep.account, &rep.device).await? else {
        return Ok(Err(format!(
            "reporter device {:?} of account {:?} is not enrolled (or was revoked)",
            crate::error::snippet(&rep.device),
            crate::error::snippet(&rep.account)
        )));
    };
    let sig = ed25519_dalek::Signature::from_bytes(&rep.signature);
    if public
        .verify_strict(&report.signing_input(&rep.account, &rep.device), &sig)
        .is_err()
    {
        return Ok(Err("the reporter's signature does not verify".into()));
    }
    Ok(Ok(CheckedReporter {
        account: rep.account.clone(),
        device: rep.device.clone(),
        signature: hex::encode(rep.signature),
    }))
}

/// `POST /v1/reports`: verify, hash and match attachments, store, queue for review.
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
    let mut contents = Vec::new();
    for (i, m) in report.messages.iter().enumerate() {
        match ring.verify_report(&m.as_reported()) {
            Ok(_) => verified.push(None),
            Err(e) => {
                rejection.get_or_insert_with(|| format!("message {i}: {e}"));
                verified.push(Some(e.to_string()));
            }
        }
        // Attachments count only as structured references of the content.
        contents.push(Content::parse(&m.content).ok());
    }
    let reporter = match check_reporter(&state, &caller, &report).await? {
        Ok(r) => {
            for (i, m) in report.messages.iter().enumerate() {
                if !m.context.has_recipient(&r.account) {
                    rejection.get_or_insert_with(|| {
                        format!(
                            "message {i}: the reporter {:?} was not one of its recipients",
                            crate::error::snippet(&r.account)
                        )
                    });
                }
            }
            Some(r)
        }
        Err(why) => {
            rejection.get_or_insert(why);
            None
        }
    };
    // The same verified message reported again is the same report: one more reporter.
    let message_key = format!(
        "{}:{}",
        report.messages[0].stamp.key_id,
        hex::encode(report.messages[0].stamp.mac)
    );
    if rejection.is_none()
        && let (Some(id), Some(r)) = (existing_report(&state, &message_key).await?, &reporter)
    {
        add_reporter(&state, &caller, id, r, &report).await?;
        return Ok((
            StatusCode::OK,
            Json(json!({"id": id, "status": "queued", "duplicate": true})),
        )
            .into_response());
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
            if !contents[i].as_ref().is_some_and(|c| c.references(r)) {
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
    // Text signals of the verified messages against every bank, and opened
    // photos against the rescue banks (report intake is the only path that
    // matches rescue banks; docs/SIGNALS.md).
    let texts: Vec<(usize, String)> = contents
        .iter()
        .enumerate()
        .filter(|(i, _)| verified[*i].is_none())
        .filter_map(|(i, c)| Some((i, String::from_utf8(c.as_ref()?.body.clone()).ok()?)))
        .collect();
    let photos: Vec<(usize, usize, &Value)> = outcomes
        .iter()
        .filter_map(|o| Some((o.msg, o.idx, o.hashes.as_ref()?)))
        .collect();
    let extra = super::signals::ReportSignals::compute(&state, &texts, &photos).await?;
    let s = &state.store;
    let mut tx = s.begin().await?;
    let inserted = sqlx::query(&s.sql(
        "INSERT INTO reports (received_at, submitted_by, status, reason, text, rejection, message_key) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(now_ms())
    .bind(&caller.key_id)
    .bind(status)
    .bind(&report.reason)
    .bind(&report.text)
    .bind(&rejection)
    .bind(rejection.is_none().then_some(&message_key))
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(row) => row.try_get::<i64, _>("id")?,
        // A concurrent submission of the same message won: join it.
        Err(_) if rejection.is_none() => {
            drop(tx);
            let id = existing_report(&state, &message_key)
                .await?
                .ok_or_else(|| ApiError::internal("report insert failed"))?;
            if let Some(r) = &reporter {
                add_reporter(&state, &caller, id, r, &report).await?;
            }
            return Ok((
                StatusCode::OK,
                Json(json!({"id": id, "status": "queued", "duplicate": true})),
            )
                .into_response());
        }
        Err(e) => return Err(e.into()),
    };
    for (i, m) in report.messages.iter().enumerate() {
        let c = &m.context;
        sqlx::query(&s.sql(
            "INSERT INTO report_messages (report_id, idx, sender, conversation, accepted_at, content, key_id, \
             verified, rejection, message_id, epoch, recipients, stamper) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(id)
        .bind(i as i64)
        .bind(&c.info.sender)
        .bind(&c.info.conversation)
        .bind(c.accepted_at as i64)
        .bind(m.content.clone())
        .bind(m.stamp.key_id as i64)
        .bind(verified[i].is_none() as i64)
        .bind(&verified[i])
        .bind(&c.info.message_id)
        .bind(c.epoch as i64)
        .bind(serde_json::to_string(&c.recipients).unwrap_or_default())
        .bind(&c.stamper)
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
    if let Some(r) = &reporter {
        insert_reporter(s, &mut tx, &caller, id, r, &report).await?;
    }
    extra.store(s, &mut tx, id).await?;
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
                "error": {"code": "report_rejected", "message": crate::error::client_message(&format!("the report does not verify: {reason}"))},
                "report_id": id,
            })),
        )
            .into_response()),
    }
}

async fn existing_report(state: &AppState, message_key: &str) -> Result<Option<i64>, ApiError> {
    let s = &state.store;
    Ok(
        sqlx::query(&s.sql("SELECT id FROM reports WHERE message_key = ?"))
            .bind(message_key)
            .fetch_optional(&s.pool)
            .await?
            .map(|r| r.try_get::<i64, _>("id"))
            .transpose()?,
    )
}

async fn insert_reporter(
    s: &db::Store,
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: i64,
    r: &CheckedReporter,
    report: &ReportIn,
) -> Result<(), ApiError> {
    sqlx::query(&s.sql(
        "INSERT INTO report_reporters (report_id, account, device, signature, submitted_by, reason, text, at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_id, account) DO NOTHING",
    ))
    .bind(id)
    .bind(&r.account)
    .bind(&r.device)
    .bind(&r.signature)
    .bind(&caller.key_id)
    .bind(&report.reason)
    .bind(&report.text)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn add_reporter(
    state: &AppState,
    caller: &Caller,
    id: i64,
    r: &CheckedReporter,
    report: &ReportIn,
) -> Result<(), ApiError> {
    let mut conn = state.store.pool.acquire().await?;
    insert_reporter(&state.store, &mut conn, caller, id, r, report).await
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
            "message_id": m.try_get::<Option<String>, _>("message_id")?,
            "epoch": m.try_get::<Option<i64>, _>("epoch")?,
            "recipients": m.try_get::<Option<String>, _>("recipients")?
                .and_then(|t| serde_json::from_str::<Value>(&t).ok()),
            "stamper": m.try_get::<Option<String>, _>("stamper")?,
            "accepted_at": rfc3339(m.try_get::<i64, _>("accepted_at")? * 1000),
            "verified": m.try_get::<i64, _>("verified")? != 0,
            "rejection": m.try_get::<Option<String>, _>("rejection")?,
            "key_id": m.try_get::<i64, _>("key_id")?,
            "content_base64": base64::engine::general_purpose::STANDARD.encode(&content),
            "content_text": Content::parse(&content).ok().and_then(|c| String::from_utf8(c.body).ok()),
            "attachments": attachments,
        }));
    }
    j["messages"] = Value::Array(messages);
    let reporters = sqlx::query(&s.sql(
        "SELECT account, device, at, reason FROM report_reporters WHERE report_id = ? ORDER BY at, account",
    ))
    .bind(id)
    .fetch_all(&s.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({
            "account": r.try_get::<String, _>("account")?,
            "device": r.try_get::<String, _>("device")?,
            "at": rfc3339(r.try_get::<i64, _>("at")?),
            "reason": r.try_get::<Option<String>, _>("reason")?,
        }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    j["reporters"] = Value::Array(reporters);
    super::signals::add_to_report(&state, &caller, id, &mut j).await?;
    Ok(Json(j))
}
