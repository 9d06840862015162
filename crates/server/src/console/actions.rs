//! What decisions set off: signed webhooks with retries and a delivery log,
//! CyberTipline report XML and its submission, evidence packages.
//!
//! A webhook is `POST`ed as JSON with these headers:
//! - `Bulwark-Timestamp`: Unix seconds when it was signed;
//! - `Bulwark-Signature`: `v1=` and the hex HMAC-SHA256, keyed by
//!   `webhook_secret`, of `TIMESTAMP.BODY` (the timestamp, a dot, the exact body);
//! - `Bulwark-Delivery`: the delivery id (the same on retries, for de-duplication).
//!
//! A 2xx answer is delivered; anything else is retried after
//! `webhook_backoff_ms`, doubling, up to `webhook_max_attempts` attempts.

use std::collections::HashMap;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use maud::html;
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::accounts::{ConsoleRole, Reviewer, audit};
use super::pages::{self, Page};
use crate::AppState;
use crate::db::console::actions as store;
use crate::db::{now_ms, rfc3339};

/// The signature of a webhook body at time `ts` (Unix seconds): `v1=HEX`.
pub fn sign(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The client of outgoing console requests: `https://` (rustls, the
/// built-in web roots plus `tls_extra_roots`) or `http://`; no proxy from
/// the environment, no redirects.
pub fn client(cfg: &super::ConsoleConfig, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent("bulwark-console");
    if let Some(path) = &cfg.tls_extra_roots {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("console.tls_extra_roots {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            anyhow::anyhow!(
                "console.tls_extra_roots {}: not PEM certificates: {e}",
                path.display()
            )
        })?;
        anyhow::ensure!(
            !certs.is_empty(),
            "console.tls_extra_roots {}: no certificate in it",
            path.display()
        );
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    Ok(b.build()?)
}

/// The most of an answer's body that is read.
const MAX_ANSWER: usize = 1 << 20;

/// One request to an `https://` or `http://` URL; returns the status and (at
/// most [`MAX_ANSWER`] bytes of) the body.
pub async fn http_request(
    cfg: &super::ConsoleConfig,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let u = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("{url:?}: {e}"))?;
    anyhow::ensure!(
        matches!(u.scheme(), "https" | "http"),
        "only https:// and http:// URLs are supported: {url:?}"
    );
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut req = client(cfg, timeout)?.request(method, u).body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.map_err(|e| {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        anyhow::anyhow!("{s}")
    })?;
    let status = resp.status().as_u16();
    // Answers are short XML or nothing: keep at most 1 MiB of one.
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_ANSWER.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    Ok((status, body))
}

/// Queues a webhook for a decision (when a URL is configured) and starts delivering it.
pub async fn enqueue_webhook(
    state: &AppState,
    decision_id: i64,
    event: &Value,
) -> anyhow::Result<()> {
    let Some(url) = state.config.console.webhook_url.clone() else {
        return Ok(());
    };
    let s = &state.store;
    let id = store::insert_webhook(s, decision_id, &url, &event.to_string()).await?;
    let st = state.clone();
    tokio::spawn(async move { deliver(st, id).await });
    Ok(())
}

/// Delivers one webhook, retrying with exponential backoff; every attempt
/// is written to the delivery log.
pub async fn deliver(state: AppState, id: i64) {
    let cfg = &state.config.console;
    let s = &state.store;
    let secret = cfg.webhook_secret.clone().unwrap_or_default();
    loop {
        let Ok(Some(store::WebhookRow {
            url,
            body,
            attempts,
            status,
        })) = store::webhook(s, id).await
        else {
            return;
        };
        if status != "pending" {
            return;
        }
        let ts = now_ms() / 1000;
        let headers = [
            ("content-type", "application/json".to_string()),
            ("bulwark-timestamp", ts.to_string()),
            (
                "bulwark-signature",
                sign(secret.as_bytes(), ts, body.as_bytes()),
            ),
            ("bulwark-delivery", id.to_string()),
        ];
        let r = http_request(
            cfg,
            "POST",
            &url,
            &headers,
            body.into_bytes(),
            Duration::from_secs(10),
        )
        .await;
        let attempts = attempts + 1;
        let (code, err) = match &r {
            Ok((c, _)) => (Some(i64::from(*c)), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let ok = code.is_some_and(|c| (200..300).contains(&c));
        let new_status = if ok {
            "delivered"
        } else if attempts >= i64::from(cfg.webhook_max_attempts.max(1)) {
            "failed"
        } else {
            "pending"
        };
        let _ = store::record_attempt(
            s,
            id,
            &store::Attempt {
                attempts,
                status: new_status,
                last_status: code,
                last_error: err,
                delivered_at: ok.then(now_ms),
            },
        )
        .await;
        if new_status != "pending" {
            return;
        }
        let wait = cfg
            .webhook_backoff_ms
            .saturating_mul(1 << (attempts - 1).min(16));
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Starts delivering every pending webhook (after a restart).
pub async fn resume_pending(state: &AppState) -> anyhow::Result<()> {
    for id in store::pending_webhooks(&state.store).await? {
        tokio::spawn(deliver(state.clone(), id));
    }
    Ok(())
}

/// `GET /console/webhooks` (lead): the delivery log.
pub async fn webhook_log(State(state): State<AppState>, reviewer: Reviewer) -> Response {
    if let Err(r) = reviewer.require(ConsoleRole::Lead) {
        return r;
    }
    let rows = match store::delivery_log(&state.store).await {
        Ok(r) => r,
        Err(e) => return pages::internal(&e),
    };
    if let Err(e) = audit(
        &state,
        &reviewer.actor(),
        "console.webhooks.view",
        json!({"rows": rows.len()}),
    )
    .await
    {
        return pages::internal(&e);
    }
    let body = html! {
        h1 { "Webhook deliveries" }
        table #deliveries {
            thead { tr { th { "#" } th { "Decision" } th { "URL" } th { "Status" } th { "Attempts" } th { "Last answer" } th { "Created" } } }
            tbody { @for r in &rows {
                tr {
                    td { (r.id) }
                    td { (r.decision_id) }
                    td { (r.url) }
                    td { (r.status) }
                    td { (r.attempts) }
                    td { (r.last_status.map(|c| c.to_string())
                          .or(r.last_error.clone()).unwrap_or_default()) }
                    td { (rfc3339(r.created_at)) }
                }
            } }
        }
    };
    Page::for_reviewer("Webhooks", &reviewer, &state, body).into_response()
}

/// One file of an item, with its bytes where the service has them.
pub struct EvidenceFile {
    /// A name for it.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Bytes (a report attachment's plaintext), if kept.
    pub bytes: Option<Vec<u8>>,
    /// MD5 hex.
    pub md5: Option<String>,
    /// SHA-1 hex (of the bytes, when kept).
    pub sha1: Option<String>,
    /// PDQ hex.
    pub pdq: Option<String>,
    /// SHA-256 hex.
    pub sha256: Option<String>,
}

/// Everything about an item an export needs.
pub struct Evidence {
    /// `kind:id`.
    pub item: String,
    /// The reported account(s).
    pub accounts: Vec<String>,
    /// When it happened (ms).
    pub at: i64,
    /// Files.
    pub files: Vec<EvidenceFile>,
    /// The confirming decision: category, reviewer, time.
    pub confirmed: Option<(String, String, i64)>,
    /// Text/entity/rule matches ([`super::text::export_matches`]).
    pub text_matches: Vec<Value>,
}

fn sha1_hex(b: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(b))
}

/// Collects an item's evidence.
pub async fn gather(state: &AppState, kind: &str, id: &str) -> anyhow::Result<Evidence> {
    let s = &state.store;
    let mut files = Vec::new();
    let mut accounts = Vec::new();
    let at: i64;
    match kind {
        "report" => {
            let rid: i64 = id.parse()?;
            at = store::report_received_at(s, rid).await?;
            // Senders in the order they first appear in the reported messages.
            accounts.extend(store::report_senders(s, rid).await?);
            for a in store::report_attachments(s, rid).await? {
                let h: Value = a
                    .hashes
                    .and_then(|h| serde_json::from_str(&h).ok())
                    .unwrap_or(Value::Null);
                let bytes = a.plaintext;
                let (mi, ai) = (a.msg_idx, a.idx);
                files.push(EvidenceFile {
                    name: format!("report-{rid}-message-{mi}-attachment-{ai}"),
                    media_type: a.media_type,
                    md5: bytes
                        .as_ref()
                        .map(|b| hex::encode(Md5::digest(b)))
                        .or(h["md5"].as_str().map(Into::into)),
                    sha1: bytes.as_deref().map(sha1_hex),
                    sha256: bytes
                        .as_ref()
                        .map(|b| hex::encode(Sha256::digest(b)))
                        .or(h["sha256"].as_str().map(Into::into)),
                    pdq: h["pdq"].as_str().map(Into::into),
                    bytes,
                });
            }
        }
        "account" => {
            accounts.push(id.to_string());
            at = store::account_flagged_at(s, id).await?;
            for (n, hash) in store::opened_hashes(s, id).await?.into_iter().enumerate() {
                files.push(EvidenceFile {
                    name: format!("account-{id}-voucher-{n}"),
                    media_type: "image/*".into(),
                    bytes: None,
                    md5: None,
                    sha1: None,
                    sha256: None,
                    pdq: Some(hash),
                });
            }
        }
        _ => {
            let r = store::match_evidence(s, id.parse::<i64>()?).await?;
            at = r.at;
            files.push(EvidenceFile {
                name: format!("match-{id}-upload"),
                media_type: "image/*".into(),
                bytes: None,
                md5: r.md5,
                sha1: None,
                sha256: r.sha256,
                pdq: r.pdq,
            });
        }
    }
    let key = format!("{kind}:{id}");
    let confirmed = store::confirmation(s, &key).await?;
    let text_matches = super::text::export_matches(state, kind, id).await?;
    Ok(Evidence {
        item: key,
        accounts,
        at,
        files,
        confirmed,
        text_matches,
    })
}

/// `GET /console/export/{kind}/{id}` (lead): the evidence package, one JSON
/// document: facts, files (base64) with MD5/SHA-1/SHA-256/PDQ, decisions and
/// the item's audit trail. Audited.
pub async fn evidence(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = reviewer.require(ConsoleRole::Lead) {
        return r;
    }
    let run = async {
        if !["report", "account", "match"].contains(&kind.as_str()) {
            return Ok(pages::error(StatusCode::NOT_FOUND, "No such item."));
        }
        let e = gather(&state, &kind, &id).await?;
        audit(
            &state,
            &reviewer.actor(),
            "console.export.evidence",
            json!({"item": e.item}),
        )
        .await?;
        let s = &state.store;
        let needle = format!("%\"item\":{}%", serde_json::to_string(&e.item)?);
        let trail: Vec<Value> = store::audit_trail(s, &needle)
            .await?
            .into_iter()
            .map(|r| {
                let d = r.detail;
                json!({"id": r.id, "at": rfc3339(r.at),
                "actor": r.actor, "action": r.action,
                "detail": serde_json::from_str::<Value>(&d).unwrap_or(Value::String(d))})
            })
            .collect();
        let decisions: Vec<Value> = store::decisions_of(s, &e.item)
            .await?
            .into_iter()
            .map(|r| {
                json!({"decision": r.decision,
                "category": r.category,
                "note": r.note,
                "reviewer": r.reviewer, "at": rfc3339(r.at)})
            })
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD;
        let doc = json!({
            "format": "bulwark-evidence/1",
            "item": e.item,
            "exported_at": rfc3339(now_ms()),
            "exported_by": reviewer.name,
            "incident_at": rfc3339(e.at),
            "accounts": e.accounts,
            "files": e.files.iter().map(|f| json!({
                "name": f.name, "media_type": f.media_type,
                "size": f.bytes.as_ref().map(Vec::len),
                "md5": f.md5, "sha1": f.sha1, "sha256": f.sha256, "pdq": f.pdq,
                "content_base64": f.bytes.as_ref().map(|b| b64.encode(b)),
            })).collect::<Vec<_>>(),
            "text_matches": e.text_matches,
            "decisions": decisions,
            "audit_trail": trail,
        });
        let mut r = serde_json::to_vec_pretty(&doc)?.into_response();
        pages::secure_headers(&mut r, "application/json");
        r.headers_mut().insert(
            "content-disposition",
            axum::http::HeaderValue::from_str(&format!(
                "attachment; filename=\"evidence-{kind}-{}.json\"",
                id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
            ))?,
        );
        Ok::<_, anyhow::Error>(r)
    };
    run.await.unwrap_or_else(|e| pages::internal(&e))
}

/// XML text escaping.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 cannot carry.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// A CyberTipline report (`<report>` of the Reporting API) for a confirmed
/// item: incident summary, reporter and the reported account. The Reporting
/// API takes at most one `personOrUserReported` (the suspect; several only in
/// a batched viral/meme report), so that is the item's first account; any
/// further accounts (other senders in a reported conversation) are named in
/// the report's `additionalInfo`. Kept files and their hashes follow
/// separately (`/upload` and `fileDetails`); the hashes of files the service
/// did not keep are listed in `additionalInfo`. Element order is the XSD's.
pub fn cybertip_xml(cfg: &super::ConsoleConfig, e: &Evidence) -> anyhow::Result<String> {
    let (category, _, confirmed_at) = e
        .confirmed
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("only confirmed items can be reported"))?;
    let x = xml_escape;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str("<report xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:noNamespaceSchemaLocation=\"https://report.cybertip.org/ispws/xsd\">\n");
    o.push_str("  <incidentSummary>\n");
    o.push_str("    <incidentType>Child Pornography (possession, manufacture, and distribution)</incidentType>\n");
    o.push_str(&format!(
        "    <incidentDateTime>{}</incidentDateTime>\n",
        x(&rfc3339(e.at))
    ));
    o.push_str(&format!(
        "    <incidentDateTimeDescription>{}</incidentDateTimeDescription>\n",
        x(&format!(
            "Detected by hash matching ({}); confirmed by a reviewer as {category} at {}",
            e.item,
            rfc3339(*confirmed_at)
        ))
    ));
    o.push_str("  </incidentSummary>\n");
    o.push_str("  <reporter>\n    <reportingPerson>\n");
    o.push_str(&format!(
        "      <firstName>{}</firstName>\n",
        x(&cfg.reporter_first_name)
    ));
    o.push_str(&format!(
        "      <lastName>{}</lastName>\n",
        x(&cfg.reporter_last_name)
    ));
    o.push_str(&format!(
        "      <email>{}</email>\n",
        x(&cfg.reporter_email)
    ));
    o.push_str("    </reportingPerson>\n  </reporter>\n");
    if let Some(a) = e.accounts.first() {
        o.push_str("  <personOrUserReported>\n");
        o.push_str(&format!("    <espIdentifier>{}</espIdentifier>\n", x(a)));
        o.push_str(&format!("    <screenName>{}</screenName>\n", x(a)));
        o.push_str("  </personOrUserReported>\n");
    }
    let mut info = Vec::new();
    if e.accounts.len() > 1 {
        info.push(format!(
            "Other accounts that sent the reported messages: {}",
            e.accounts[1..].join(", ")
        ));
    }
    // Files the service did not keep (a match keeps a thumbnail, an opened
    // voucher a derivative) cannot be uploaded with fileDetails: their
    // hashes go here, so the report still carries them.
    let unsent: Vec<String> = e
        .files
        .iter()
        .filter(|f| f.bytes.is_none())
        .map(|f| {
            let hashes: Vec<String> = [
                ("MD5", &f.md5),
                ("SHA1", &f.sha1),
                ("SHA256", &f.sha256),
                ("PDQ", &f.pdq),
            ]
            .into_iter()
            .filter_map(|(t, v)| v.as_ref().map(|v| format!("{t} {v}")))
            .collect();
            format!("{} ({})", f.name, hashes.join(", "))
        })
        .collect();
    if !unsent.is_empty() {
        info.push(format!(
            "Matched files not kept by the service, so not uploaded, with their hashes: {}",
            unsent.join("; ")
        ));
    }
    info.extend(super::text::cybertip_line(&e.text_matches));
    if !info.is_empty() {
        o.push_str(&format!(
            "  <additionalInfo>{}</additionalInfo>\n",
            x(&info.join("\n"))
        ));
    }
    o.push_str("</report>\n");
    Ok(o)
}

/// The `fileDetails` document for one uploaded file (its hashes as
/// `originalFileHash` elements). `fileViewedByEsp` is `false`: the API means
/// "viewed the entire contents of the file", and the console never shows a
/// file, only a grey thumbnail of at most 320 px (or video frames).
pub fn file_details_xml(report_id: &str, file_id: &str, f: &EvidenceFile) -> String {
    let x = xml_escape;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<fileDetails>\n");
    o.push_str(&format!(
        "  <reportId>{}</reportId>\n  <fileId>{}</fileId>\n",
        x(report_id),
        x(file_id)
    ));
    o.push_str(&format!(
        "  <originalFileName>{}</originalFileName>\n",
        x(&f.name)
    ));
    o.push_str("  <fileViewedByEsp>false</fileViewedByEsp>\n");
    for (t, v) in [("MD5", &f.md5), ("SHA1", &f.sha1), ("PDQ", &f.pdq)] {
        if let Some(v) = v {
            o.push_str(&format!(
                "  <originalFileHash hashType=\"{t}\">{}</originalFileHash>\n",
                x(v)
            ));
        }
    }
    o.push_str("</fileDetails>\n");
    o
}

/// `POST /console/cybertip` (lead; `item`): builds and stores the report XML
/// for a confirmed item.
pub async fn cybertip_build(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer
        .check_csrf(&form)
        .and_then(|_| reviewer.require(ConsoleRole::Lead))
    {
        return r;
    }
    let key = form.get("item").cloned().unwrap_or_default();
    let run = async {
        let Some((kind, id)) = key.split_once(':') else {
            return Ok(pages::error(StatusCode::BAD_REQUEST, "No such item."));
        };
        if !["report", "account", "match"].contains(&kind) {
            return Ok(pages::error(StatusCode::BAD_REQUEST, "No such item."));
        }
        let e = gather(&state, kind, id).await?;
        let xml = match cybertip_xml(&state.config.console, &e) {
            Ok(x) => x,
            Err(err) => {
                return Ok(pages::error(
                    StatusCode::CONFLICT,
                    &format!("{err}: confirm it first."),
                ));
            }
        };
        let s = &state.store;
        let tid = store::insert_cybertip(s, &key, &xml, &reviewer.name).await?;
        audit(
            &state,
            &reviewer.actor(),
            "console.cybertip.build",
            json!({"item": key, "cybertip": tid}),
        )
        .await?;
        Ok::<_, anyhow::Error>(Redirect::to(&format!("/console/cybertip/{tid}")).into_response())
    };
    run.await.unwrap_or_else(|e| pages::internal(&e))
}

/// `GET /console/cybertip/{id}` (lead): the report XML and its submission record.
pub async fn cybertip_show(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = reviewer.require(ConsoleRole::Lead) {
        return r;
    }
    let s = &state.store;
    let row = match store::cybertip(s, id).await {
        Ok(Some(r)) => r,
        Ok(None) => return pages::error(StatusCode::NOT_FOUND, "No such report."),
        Err(e) => return pages::internal(&e),
    };
    // A view of an item's report: audited, and not shown if it cannot be.
    if let Err(e) = audit(
        &state,
        &reviewer.actor(),
        "console.cybertip.view",
        json!({"cybertip": id, "item": &row.item}),
    )
    .await
    {
        return pages::internal(&e);
    }
    let xml = &row.xml;
    let submitted = row.submitted_at;
    let ncmec = row.ncmec_report_id.clone();
    let body = html! {
        h1 { "CyberTipline report " (id) }
        p { "Item: " (row.item) }
        @if let Some(t) = submitted {
            p #submitted role="status" { "Submitted " (rfc3339(t)) "; NCMEC report id " (ncmec.unwrap_or_default()) }
        } @else if state.config.console.cybertip_url.is_some() {
            form method="post" action={"/console/cybertip/" (id) "/submit"} {
                input type="hidden" name="csrf" value=(reviewer.csrf);
                button #submit-cybertip type="submit" { "Submit to the CyberTipline" }
            }
        } @else {
            p { "No submission endpoint is configured (console.cybertip_url)." }
        }
        pre #cybertip-xml { (xml) }
    };
    Page::for_reviewer("CyberTipline report", &reviewer, &state, body).into_response()
}

fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

/// Submits a stored report: `POST {url}/submit` (the report XML), then for
/// each kept file `POST {url}/upload` and `POST {url}/fileinfo`, then
/// `POST {url}/finish`; a `responseCode` other than 0 stops it. Returns the
/// NCMEC report id.
pub async fn submit_cybertip(state: &AppState, tid: i64) -> anyhow::Result<String> {
    let base = state
        .config
        .console
        .cybertip_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no console.cybertip_url configured"))?;
    let base = base.trim_end_matches('/').to_string();
    let s = &state.store;
    let (item, xml) = store::cybertip_xml(s, tid).await?;
    let t = Duration::from_secs(60);
    let ct = |v: &str| vec![("content-type", v.to_string())];
    let check = |what: &str, status: u16, body: &[u8]| -> anyhow::Result<String> {
        let text = String::from_utf8_lossy(body).to_string();
        let code = xml_field(&text, "responseCode");
        anyhow::ensure!(
            (200..300).contains(&status) && code.as_deref() == Some("0"),
            "{what}: HTTP {status}, responseCode {code:?}: {}",
            xml_field(&text, "responseDescription").unwrap_or_default()
        );
        Ok(text)
    };
    let (st, body) = http_request(
        &state.config.console,
        "POST",
        &format!("{base}/submit"),
        &ct("text/xml; charset=utf-8"),
        xml.into_bytes(),
        t,
    )
    .await?;
    let text = check("submit", st, &body)?;
    let report_id =
        xml_field(&text, "reportId").ok_or_else(|| anyhow::anyhow!("submit: no reportId"))?;
    let (kind, id) = item.split_once(':').unwrap_or(("", ""));
    let e = gather(state, kind, id).await?;
    for f in e.files.iter().filter(|f| f.bytes.is_some()) {
        let boundary = format!("bulwark{}", crate::db::random_hex());
        let mut mp = Vec::new();
        mp.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n{report_id}\r\n"
            )
            .as_bytes(),
        );
        mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n", f.name, f.media_type).as_bytes());
        mp.extend_from_slice(f.bytes.as_deref().unwrap_or_default());
        mp.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let (st, body) = http_request(
            &state.config.console,
            "POST",
            &format!("{base}/upload"),
            &ct(&format!("multipart/form-data; boundary={boundary}")),
            mp,
            t,
        )
        .await?;
        let text = check("upload", st, &body)?;
        let file_id =
            xml_field(&text, "fileId").ok_or_else(|| anyhow::anyhow!("upload: no fileId"))?;
        let fd = file_details_xml(&report_id, &file_id, f);
        let (st, body) = http_request(
            &state.config.console,
            "POST",
            &format!("{base}/fileinfo"),
            &ct("text/xml; charset=utf-8"),
            fd.into_bytes(),
            t,
        )
        .await?;
        check("fileinfo", st, &body)?;
    }
    let (st, body) = http_request(
        &state.config.console,
        "POST",
        &format!("{base}/finish"),
        &ct("application/x-www-form-urlencoded"),
        format!("id={report_id}").into_bytes(),
        t,
    )
    .await?;
    let text = check("finish", st, &body)?;
    store::cybertip_submitted(s, tid, &report_id, &text).await?;
    Ok(report_id)
}

/// `POST /console/cybertip/{id}/submit` (lead).
pub async fn cybertip_submit(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer
        .check_csrf(&form)
        .and_then(|_| reviewer.require(ConsoleRole::Lead))
    {
        return r;
    }
    match submit_cybertip(&state, id).await {
        Ok(rid) => {
            let _ = audit(
                &state,
                &reviewer.actor(),
                "console.cybertip.submit",
                json!({"cybertip": id, "ncmec_report_id": rid}),
            )
            .await;
            Redirect::to(&format!("/console/cybertip/{id}")).into_response()
        }
        Err(e) => {
            let _ = audit(
                &state,
                &reviewer.actor(),
                "console.cybertip.submit_failed",
                json!({"cybertip": id, "error": format!("{e:#}")}),
            )
            .await;
            pages::error(
                StatusCode::BAD_GATEWAY,
                &format!("The submission failed: {e:#}"),
            )
        }
    }
}
