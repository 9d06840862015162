//! The page layout, static CSS and JS, error pages and the dashboard.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

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
                                @if r.role >= super::accounts::ConsoleRole::Admin {
                                    a href="/console/admin" { "Admin" }
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

/// The page of a console operation's refusal: its message with the status
/// of its kind (400, 403, 404, 409, 429); any other failure is [`internal`].
pub fn refused(e: &bulwark_service::Error) -> Response {
    use bulwark_service::Kind;
    let status = match e.kind {
        Kind::BadRequest => StatusCode::BAD_REQUEST,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => return internal(e),
    };
    error(status, &e.message)
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

/// Distance bands of the false-positive rate per threshold: `(label, low, high)`.
pub const BANDS: &[(&str, i64, i64)] = &[
    ("0", 0, 0),
    ("1–10", 1, 10),
    ("11–20", 11, 20),
    ("21–31", 21, 31),
    ("32+", 32, i64::MAX),
];

/// Days of decisions behind the false-positive rates.
pub const FP_DAYS: i64 = 90;

fn rate(dismissed: u64, confirmed: u64) -> String {
    if dismissed + confirmed == 0 {
        return "–".into();
    }
    format!(
        "{:.0} %",
        100.0 * dismissed as f64 / (dismissed + confirmed) as f64
    )
}

/// The figures of the dashboard.
#[derive(Debug, Default)]
pub struct Figures {
    /// Per queue: (queue, open items, oldest queue time).
    pub queues: Vec<(&'static str, i64, Option<i64>)>,
    /// First day (UTC day number) of `per_day`.
    pub since_day: i64,
    /// Decisions per day, the last 14 days.
    pub per_day: [u64; 14],
    /// Median wait from queued to a final decision (ms), last 14 days.
    pub median_wait: Option<i64>,
    /// Final decisions behind the median.
    pub waits: usize,
    /// Per bank: (confirmed, dismissed), last [`FP_DAYS`] days.
    pub per_bank: std::collections::BTreeMap<String, (u64, u64)>,
    /// Per distance band of [`BANDS`]: (confirmed, dismissed); the last
    /// element counts decisions whose distances were not recorded.
    pub per_band: Vec<(u64, u64)>,
}

/// Computes the dashboard's figures: bounded reads (aggregates of the
/// queues; decisions of the last [`FP_DAYS`] days by the `at` index).
pub async fn figures(state: &AppState, reviewer: &Reviewer) -> anyhow::Result<Figures> {
    let s = &state.store;
    let now = now_ms();
    let mut f = Figures {
        per_band: vec![(0, 0); BANDS.len() + 1],
        ..Figures::default()
    };
    for kind in ["report", "account", "match", "escalated"] {
        let (n, oldest) =
            bulwark_service::review::queue::open_stats(&state.store, &reviewer.who(), kind).await?;
        f.queues.push((kind, n, oldest));
    }
    f.since_day = super::day_of(now) - 13;
    let fp_since = (super::day_of(now) - (FP_DAYS - 1)) * 86_400_000;
    let rows =
        crate::db::console::pages::decisions_since(s, fp_since.min(f.since_day * 86_400_000))
            .await?;
    let mut waits = Vec::new();
    for r in &rows {
        let at = r.at;
        let d = &r.decision;
        let recent = at >= f.since_day * 86_400_000;
        if recent
            && let Some(c) = f
                .per_day
                .get_mut((super::day_of(at) - f.since_day) as usize)
        {
            *c += 1;
        }
        if recent && ["confirm", "dismiss", "clear", "add_to_bank"].contains(&d.as_str()) {
            waits.push(at - r.queued_at);
        }
        if at < fp_since || (d != "confirm" && d != "dismiss") {
            continue;
        }
        let dismissed = d == "dismiss";
        let bump = |e: &mut (u64, u64)| {
            if dismissed {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        };
        for b in r.banks.split(',').filter(|b| !b.is_empty()) {
            bump(f.per_bank.entry(b.to_string()).or_default());
        }
        let dist: Option<i64> = r
            .distances
            .as_deref()
            .and_then(|j| serde_json::from_str::<std::collections::BTreeMap<String, i64>>(j).ok())
            .and_then(|m| m.values().copied().min());
        let band = dist
            .and_then(|d| {
                BANDS
                    .iter()
                    .position(|(_, lo, hi)| (*lo..=*hi).contains(&d))
            })
            .unwrap_or(BANDS.len());
        bump(&mut f.per_band[band]);
    }
    waits.sort_unstable();
    f.waits = waits.len();
    f.median_wait = waits.get(waits.len() / 2).copied();
    Ok(f)
}

/// `GET /console`: queue sizes and ages, decisions per day, time to
/// decision, false-positive rate per bank and per distance band.
pub async fn dashboard(State(state): State<AppState>, reviewer: Reviewer) -> Response {
    match dashboard_inner(&state, &reviewer).await {
        Ok(p) => p.into_response(),
        Err(e) => internal(&e),
    }
}

async fn dashboard_inner(state: &AppState, reviewer: &Reviewer) -> anyhow::Result<Page> {
    let now = now_ms();
    let f = figures(state, reviewer).await?;
    bulwark_service::review::audit(
        &state.store,
        &reviewer.actor(),
        "console.dashboard.view",
        serde_json::json!({}),
    )
    .await?;
    let max_day = f.per_day.iter().copied().max().unwrap_or(0).max(1);
    // Cumulative: the rate a policy of "at most this distance" would have had.
    let cums: Vec<String> = f.per_band[..BANDS.len()]
        .iter()
        .scan((0u64, 0u64), |acc, (c, d)| {
            acc.0 += c;
            acc.1 += d;
            Some(rate(acc.1, acc.0))
        })
        .collect();
    let body = html! {
        h1 { "Dashboard" }
        section aria-labelledby="q" {
            h2 #q { "Queues" }
            div.cards {
                @for (kind, n, oldest) in &f.queues {
                    a.card id={"card-" (kind)} href={"/console/queue?kind=" (kind)} {
                        span.big { (n) }
                        span { (super::items::kind_title(kind)) }
                        @if let Some(o) = oldest { span.small { "oldest " (age(now - o)) } }
                    }
                }
            }
        }
        section aria-labelledby="d" {
            h2 #d { "Decisions per day (last 14 days)" }
            table.days {
                thead { tr { th scope="col" { "Day" } th scope="col" { "Decisions" } } }
                tbody {
                    @for (i, n) in f.per_day.iter().enumerate() {
                        @let day = crate::db::rfc3339((f.since_day + i as i64) * 86_400_000).get(..10).unwrap_or("").to_string();
                        tr {
                            th scope="row" { (day) }
                            td { progress value=(n) max=(max_day) aria-label={(n) " decisions on " (day)} {} " " (n) }
                        }
                    }
                }
            }
            p #time-to-decision { "Median time to decision (last 14 days): "
                (f.median_wait.map(age).unwrap_or_else(|| "no decisions yet".into()))
                @if f.waits > 0 { " over " (f.waits) " decisions" } }
        }
        section aria-labelledby="fp" {
            h2 #fp { "False positives per bank (last " (FP_DAYS) " days)" }
            table #fp-bank {
                thead { tr { th scope="col" { "Bank" } th scope="col" { "Confirmed" } th scope="col" { "Dismissed" } th scope="col" { "False-positive rate" } } }
                tbody {
                    @for (bank, (c, d)) in &f.per_bank {
                        tr { td { (bank) } td { (c) } td { (d) } td { (rate(*d, *c)) } }
                    }
                }
            }
        }
        section aria-labelledby="fpt" {
            h2 #fpt { "False positives per threshold (last " (FP_DAYS) " days)" }
            p.hint { "By the item's smallest match distance (PDQ bits; exact MD5/SHA-256 matches are 0). "
                "The last column is the rate a review policy of “at most this distance” would have had." }
            table #fp-band {
                thead { tr { th scope="col" { "Distance" } th scope="col" { "Confirmed" } th scope="col" { "Dismissed" }
                    th scope="col" { "False-positive rate" } th scope="col" { "Up to this distance" } } }
                tbody {
                    @for (i, (label, _, _)) in BANDS.iter().enumerate() {
                        @let (c, d) = f.per_band[i];
                        tr { td { (label) } td { (c) } td { (d) } td { (rate(d, c)) } td { (cums[i]) } }
                    }
                    @let (c, d) = f.per_band[BANDS.len()];
                    @if c + d > 0 {
                        tr { td { "not recorded" } td { (c) } td { (d) } td { (rate(d, c)) } td { "" } }
                    }
                }
            }
        }
    };
    Ok(Page::for_reviewer("Dashboard", reviewer, state, body))
}
