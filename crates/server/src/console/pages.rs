//! The page layout, static CSS and JS, error pages and the dashboard.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use sqlx::Row;

use super::accounts::Reviewer;
use crate::AppState;
use crate::db::now_ms;

/// A page: title, body, and (when signed in) the navigation.
pub struct Page {
    title: String,
    body: Markup,
    reviewer: Option<Reviewer>,
    notice: Option<String>,
}

impl Page {
    /// A page with no navigation (sign-in, errors).
    pub fn new(title: &str, body: Markup) -> Page {
        Page {
            title: title.into(),
            body,
            reviewer: None,
            notice: None,
        }
    }

    /// A page for a signed-in reviewer: navigation, sign-out and the break reminder.
    pub fn for_reviewer(title: &str, reviewer: &Reviewer, state: &AppState, body: Markup) -> Page {
        let minutes = (now_ms() - reviewer.since) / 60_000;
        let after = state.config.console.break_after_minutes as i64;
        let notice = (after > 0 && minutes >= after).then(|| {
            format!(
                "You have been reviewing for {minutes} minutes. Please take a break: step away \
                 from the screen for a few minutes."
            )
        });
        Page {
            title: title.into(),
            body,
            reviewer: Some(reviewer.clone()),
            notice,
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let m = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="referrer" content="no-referrer";
                    title { (self.title) " · Bulwark console" }
                    link rel="stylesheet" href="/console/static/console.css";
                    script src="/console/static/console.js" defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    @if let Some(r) = &self.reviewer {
                        header {
                            nav aria-label="Console" {
                                a href="/console" { "Dashboard" }
                                a href="/console/queue?kind=report" { "Reports" }
                                a href="/console/queue?kind=account" { "Flagged accounts" }
                                a href="/console/queue?kind=match" { "Matches" }
                                @if r.role >= super::accounts::ConsoleRole::Lead {
                                    a href="/console/queue?kind=escalated" { "Escalated" }
                                    a href="/console/webhooks" { "Webhooks" }
                                }
                            }
                            form.inline method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(r.csrf);
                                span { (r.name) " (" (r.role.name()) ") " }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    @if let Some(n) = &self.notice {
                        p.break-reminder #break-reminder role="status" { (n) }
                    }
                    main #main { (self.body) }
                }
            }
        };
        let mut resp = (StatusCode::OK, m.into_string()).into_response();
        secure_headers(&mut resp, "text/html; charset=utf-8");
        resp
    }
}

/// No caching, no framing, no sniffing, a strict content security policy.
pub fn secure_headers(resp: &mut Response, content_type: &'static str) {
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
}

/// An error page.
pub fn error(status: StatusCode, message: &str) -> Response {
    let mut r = Page::new(
        "Error",
        html! {
            h1 { "Sorry" }
            p.error role="alert" { (message) }
            p { a href="/console" { "Back to the console" } }
        },
    )
    .into_response();
    *r.status_mut() = status;
    r
}

/// A 500 page; the detail goes to the log.
pub fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!("console: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on the server (see its log).",
    )
}

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// `GET /console/static/console.css`.
pub async fn css() -> Response {
    let mut r = CSS.into_response();
    secure_headers(&mut r, "text/css; charset=utf-8");
    r
}

/// `GET /console/static/console.js`.
pub async fn js() -> Response {
    let mut r = JS.into_response();
    secure_headers(&mut r, "text/javascript; charset=utf-8");
    r
}

/// Age in words.
pub fn age(ms: i64) -> String {
    let m = (ms.max(0) / 60_000) as u64;
    match m {
        0 => "under a minute".into(),
        1..=59 => format!("{m} min"),
        60..=2879 => format!("{} h", m / 60),
        _ => format!("{} days", m / 1440),
    }
}

/// `GET /console`: queue sizes and ages, decisions per day, false-positive
/// rate per bank, time to decision.
pub async fn dashboard(State(state): State<AppState>, reviewer: Reviewer) -> Response {
    match dashboard_inner(&state, &reviewer).await {
        Ok(p) => p.into_response(),
        Err(e) => internal(&e),
    }
}

async fn dashboard_inner(state: &AppState, reviewer: &Reviewer) -> anyhow::Result<Page> {
    let s = &state.store;
    let now = now_ms();
    let mut queues = Vec::new();
    for kind in ["report", "account", "match", "escalated"] {
        let items = super::items::open_items(state, reviewer, kind).await?;
        let oldest = items.iter().map(|i| i.queued_at).min();
        queues.push((kind, items.len(), oldest.map(|t| age(now - t))));
    }
    let since = super::day_of(now) - 13;
    let rows = sqlx::query(&s.sql(
        "SELECT decision, banks, at, queued_at FROM console_decisions WHERE at >= ? ORDER BY id",
    ))
    .bind(since * 86_400_000)
    .fetch_all(&s.pool)
    .await?;
    let mut per_day = [0usize; 14];
    let mut per_bank: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut waits = Vec::new();
    for r in &rows {
        let at: i64 = r.try_get("at")?;
        let d: String = r.try_get("decision")?;
        let banks: String = r.try_get("banks")?;
        let day = (super::day_of(at) - since) as usize;
        if let Some(c) = per_day.get_mut(day) {
            *c += 1;
        }
        if d == "confirm" || d == "dismiss" {
            waits.push(at - r.try_get::<i64, _>("queued_at")?);
            for b in banks.split(',').filter(|b| !b.is_empty()) {
                let e = per_bank.entry(b.to_string()).or_default();
                if d == "dismiss" {
                    e.1 += 1;
                } else {
                    e.0 += 1;
                }
            }
        }
    }
    waits.sort_unstable();
    let median = waits.get(waits.len() / 2).map(|w| age(*w));
    let max_day = per_day.iter().copied().max().unwrap_or(0).max(1);
    let body = html! {
        h1 { "Dashboard" }
        section aria-labelledby="q" {
            h2 #q { "Queues" }
            div.cards {
                @for (kind, n, oldest) in &queues {
                    a.card href={"/console/queue?kind=" (kind)} {
                        span.big { (n) }
                        span { (super::items::kind_title(kind)) }
                        @if let Some(o) = oldest { span.small { "oldest " (o) } }
                    }
                }
            }
        }
        section aria-labelledby="d" {
            h2 #d { "Decisions per day (last 14 days)" }
            table.days {
                thead { tr { th { "Day" } th { "Decisions" } } }
                tbody {
                    @for (i, n) in per_day.iter().enumerate() {
                        tr {
                            td { (crate::db::rfc3339((since + i as i64) * 86_400_000).get(..10).unwrap_or("")) }
                            td { progress value=(n) max=(max_day) aria-label="decisions" {} " " (n) }
                        }
                    }
                }
            }
            p { "Median time to decision: " (median.unwrap_or_else(|| "no decisions yet".into())) }
        }
        section aria-labelledby="fp" {
            h2 #fp { "False positives per bank" }
            table {
                thead { tr { th { "Bank" } th { "Confirmed" } th { "Dismissed" } th { "False-positive rate" } } }
                tbody {
                    @for (bank, (c, d)) in &per_bank {
                        tr {
                            td { (bank) } td { (c) } td { (d) }
                            td { (format!("{:.0} %", 100.0 * *d as f64 / (*c + *d).max(1) as f64)) }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::for_reviewer("Dashboard", reviewer, state, body))
}
