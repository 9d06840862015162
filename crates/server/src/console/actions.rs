//! What decisions set off, as pages: the webhook delivery log, evidence
//! packages, CyberTipline reports and their submission. The operations are
//! `bulwark_service::review` (signing, delivery and retries, evidence
//! assembly, the report XML); this module keeps the console's outgoing HTTP
//! client ([`client`], [`ConsoleHttp`]), parses requests and renders answers.
//! The webhook format is documented in `bulwark_service::review::webhooks`
//! and docs/CONSOLE.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bulwark_service::Kind;
use bulwark_service::review::{Http, audit, cybertip, evidence, webhooks};
use futures_util::future::BoxFuture;
use maud::html;
use serde_json::json;

use super::accounts::{ConsoleRole, Reviewer};
use super::pages::{self, Page};
use crate::AppState;
use crate::db::console::actions as store;
use crate::db::rfc3339;

pub use bulwark_service::review::cybertip::{file_details_xml, xml_escape};
pub use bulwark_service::review::evidence::{Evidence, EvidenceFile};
pub use bulwark_service::review::webhooks::sign;

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

/// The console's outgoing requests ([`http_request`] with its settings),
/// as the service's operations send them.
pub struct ConsoleHttp(pub super::ConsoleConfig);

impl Http for ConsoleHttp {
    fn request<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        headers: &'a [(&'a str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<(u16, Vec<u8>)>> {
        Box::pin(http_request(&self.0, method, url, headers, body, timeout))
    }
}

/// The console's outgoing requests, as the service's operations (webhooks
/// of decisions, CyberTipline submissions) take them.
pub fn http(state: &AppState) -> Arc<dyn Http> {
    Arc::new(ConsoleHttp(state.config.console.clone()))
}

/// Starts delivering every pending webhook (after a restart).
pub async fn resume_pending(state: &AppState) -> anyhow::Result<()> {
    let cfg = state.config.console.webhooks();
    webhooks::resume_pending(&state.store, &cfg, http(state)).await?;
    Ok(())
}

/// `GET /console/webhooks` (lead): the delivery log.
pub async fn webhook_log(State(state): State<AppState>, reviewer: Reviewer) -> Response {
    if let Err(r) = reviewer.require(ConsoleRole::Lead) {
        return r;
    }
    let rows = match webhooks::delivery_log(&state.store).await {
        Ok(r) => r,
        Err(e) => return pages::internal(&e),
    };
    if let Err(e) = audit(
        &state.store,
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

/// Collects an item's evidence.
pub async fn gather(state: &AppState, kind: &str, id: &str) -> anyhow::Result<Evidence> {
    Ok(evidence::gather(&state.store, kind, id).await?)
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
        let doc =
            match evidence::package(&state.store, &kind, &id, &reviewer.actor(), &reviewer.name)
                .await
            {
                Ok(d) => d,
                Err(e) if e.kind == Kind::NotFound => {
                    return Ok(pages::error(StatusCode::NOT_FOUND, "No such item."));
                }
                Err(e) => return Err(e.into()),
            };
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

/// A CyberTipline report (`<report>` of the Reporting API) for a confirmed
/// item ([`cybertip::report_xml`]), with the console's reporter contact.
pub fn cybertip_xml(cfg: &super::ConsoleConfig, e: &Evidence) -> anyhow::Result<String> {
    Ok(cybertip::report_xml(&cfg.reporter(), e)?)
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
    let reporter = state.config.console.reporter();
    match cybertip::build(
        &state.store,
        &reporter,
        &key,
        &reviewer.actor(),
        &reviewer.name,
    )
    .await
    {
        Ok(tid) => Redirect::to(&format!("/console/cybertip/{tid}")).into_response(),
        Err(e) if e.kind == Kind::BadRequest => pages::error(StatusCode::BAD_REQUEST, &e.message),
        Err(e) if e.kind == Kind::Conflict => pages::error(
            StatusCode::CONFLICT,
            &format!("{}: confirm it first.", e.message),
        ),
        Err(e) => pages::internal(&e),
    }
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
        &state.store,
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

/// Submits a stored report ([`cybertip::submit`]); returns the NCMEC report id.
pub async fn submit_cybertip(state: &AppState, tid: i64) -> anyhow::Result<String> {
    let cfg = &state.config.console;
    cybertip::submit(
        &state.store,
        &ConsoleHttp(cfg.clone()),
        cfg.cybertip_url.as_deref(),
        tid,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message))
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
                &state.store,
                &reviewer.actor(),
                "console.cybertip.submit",
                json!({"cybertip": id, "ncmec_report_id": rid}),
            )
            .await;
            Redirect::to(&format!("/console/cybertip/{id}")).into_response()
        }
        Err(e) => {
            let _ = audit(
                &state.store,
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
