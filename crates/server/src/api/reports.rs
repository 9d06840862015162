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
use bulwark_franking::Keyring;
use bulwark_franking::content::Content;
use bulwark_franking::wire::ReportIn;
use bulwark_service::franking;
use serde::Deserialize;
use serde_json::{Value, json};

use super::JsonBody;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, reports, rfc3339};
use crate::error::{ApiError, ApiResult};

/// The franking keys with the signing key ([`bulwark_service::franking::keyring`]).
pub async fn keyring(state: &AppState) -> Result<Keyring, ApiError> {
    Ok(franking::keyring(&state.store, &state.kek).await?)
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
    let st = franking::stamp(
        &state.store,
        &state.kek,
        &caller.key_id,
        franking::StampRequest {
            tag,
            sender: r.sender,
            conversation: r.conversation,
            message_id: r.message_id,
            epoch: r.epoch,
            recipients: r.recipients,
        },
    )
    .await?;
    Ok(Json(json!({
        "key_id": st.key_id,
        "mac": hex::encode(st.mac),
        "signature": hex::encode(st.signature),
        "accepted_at": st.accepted_at,
        "stamper": st.stamper,
    })))
}

/// `GET /v1/franking/keys` (public): the stamp signing key receivers check.
pub async fn keys(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let k = franking::signing_key(&state.store, &state.kek).await?;
    Ok(Json(json!({
        "algorithm": "ed25519",
        "public_key": hex::encode(k.verifying_key().to_bytes()),
    })))
}

/// `POST /v1/franking/rotate` (admin): a new stamping key; old keys still verify.
pub async fn rotate(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let id = franking::rotate(&state.store, &state.kek, &caller.key_id).await?;
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
    let inserted = reports::insert(
        s,
        &mut tx,
        &reports::NewReport {
            submitted_by: &caller.key_id,
            status,
            reason: report.reason.as_deref(),
            text: report.text.as_deref(),
            rejection: rejection.as_deref(),
            message_key: rejection.is_none().then_some(message_key.as_str()),
        },
    )
    .await;
    let id = match inserted {
        Ok(id) => id,
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
        let row = reports::MessageRow {
            idx: i as i64,
            sender: c.info.sender.clone(),
            conversation: c.info.conversation.clone(),
            accepted_at: c.accepted_at as i64,
            content: m.content.clone(),
            key_id: i64::from(m.stamp.key_id),
            verified: verified[i].is_none(),
            rejection: verified[i].clone(),
            message_id: Some(c.info.message_id.clone()),
            epoch: Some(c.epoch as i64),
            recipients: Some(serde_json::to_string(&c.recipients).unwrap_or_default()),
            stamper: Some(c.stamper.clone()),
        };
        reports::insert_message(s, &mut tx, id, &row).await?;
    }
    for o in &outcomes {
        let row = reports::AttachmentRow {
            msg_idx: o.msg as i64,
            idx: o.idx as i64,
            blob_id: o.blob_id.clone(),
            media_type: o.media_type.clone(),
            size: o.size as i64,
            ciphertext_sha256: o.ciphertext_sha256.clone(),
            status: o.status.to_string(),
            error: o.error.clone(),
            hashes: o.hashes.as_ref().map(|h| h.to_string()),
            matches: o
                .matches
                .as_ref()
                .map(|m| Value::Array(m.clone()).to_string()),
            plaintext: o.plaintext.clone(),
        };
        reports::insert_attachment(s, &mut tx, id, &row).await?;
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
    Ok(reports::by_message_key(&state.store, message_key).await?)
}

async fn insert_reporter(
    s: &db::Store,
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: i64,
    r: &CheckedReporter,
    report: &ReportIn,
) -> Result<(), ApiError> {
    reports::insert_reporter(
        s,
        conn,
        id,
        &reports::NewReporter {
            account: &r.account,
            device: &r.device,
            signature: &r.signature,
            submitted_by: &caller.key_id,
            reason: report.reason.as_deref(),
            text: report.text.as_deref(),
        },
    )
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

fn report_json(r: &reports::ReportRow) -> Value {
    json!({
        "id": r.id,
        "received_at": rfc3339(r.received_at),
        "submitted_by": r.submitted_by,
        "status": r.status,
        "reason": r.reason,
        "text": r.text,
        "rejection": r.rejection,
    })
}

/// `GET /v1/reports`: newest last, by status.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = reports::list(
        &state.store,
        q.status.as_deref(),
        q.after.unwrap_or(0),
        limit,
    )
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let items: Vec<Value> = rows.iter().map(report_json).collect();
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
    let row = reports::get(s, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no report {id}")))?;
    let mut j = report_json(&row);
    let msgs = reports::messages(s, id).await?;
    let atts = reports::attachments(s, id).await?;
    let parse = |t: &Option<String>| -> Value {
        t.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    };
    let mut messages = Vec::new();
    for m in &msgs {
        let attachments: Vec<Value> = atts
            .iter()
            .filter(|a| a.msg_idx == m.idx)
            .map(|a| {
                json!({
                    "index": a.idx,
                    "blob_id": a.blob_id,
                    "media_type": a.media_type,
                    "size": a.size,
                    "ciphertext_sha256": a.ciphertext_sha256,
                    "status": a.status,
                    "error": a.error,
                    "hashes": parse(&a.hashes),
                    "matches": parse(&a.matches),
                })
            })
            .collect();
        messages.push(json!({
            "index": m.idx,
            "sender": m.sender,
            "conversation": m.conversation,
            "message_id": m.message_id,
            "epoch": m.epoch,
            "recipients": m.recipients.as_deref()
                .and_then(|t| serde_json::from_str::<Value>(t).ok()),
            "stamper": m.stamper,
            "accepted_at": rfc3339(m.accepted_at * 1000),
            "verified": m.verified,
            "rejection": m.rejection,
            "key_id": m.key_id,
            "content_base64": base64::engine::general_purpose::STANDARD.encode(&m.content),
            "content_text": Content::parse(&m.content).ok().and_then(|c| String::from_utf8(c.body).ok()),
            "attachments": attachments,
        }));
    }
    j["messages"] = Value::Array(messages);
    let reporters: Vec<Value> = reports::reporters(s, id)
        .await?
        .iter()
        .map(|r| {
            json!({
                "account": r.account,
                "device": r.device,
                "at": rfc3339(r.at),
                "reason": r.reason,
            })
        })
        .collect();
    j["reporters"] = Value::Array(reporters);
    super::signals::add_to_report(&state, &caller, id, &mut j).await?;
    Ok(Json(j))
}
