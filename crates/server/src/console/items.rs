//! Queues, item pages, safe viewing (thumbnails, reveal, hide) and
//! decisions, as pages. The operations — which items a queue holds, the
//! next one, the reveal budget, which decisions are allowed and their
//! effects — are `bulwark_service::review` ([`queue`], [`decisions`]).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bulwark_service::review::item::{self as page_reads, Facts};
use bulwark_service::review::queue::{self, kind_static, split_key};
use bulwark_service::review::{audit, decisions, media, policy};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::accounts::{ConsoleRole, Reviewer};
use super::pages::{self, Page, age};
use crate::AppState;
use crate::db::console::items as store;
use crate::db::{now_ms, rfc3339};

/// Confirmation categories.
pub use bulwark_service::review::decisions::CATEGORIES;

pub use bulwark_service::review::queue::Item;

/// An item's page.
pub fn href(it: &Item) -> String {
    format!("/console/item/{}/{}", it.kind, it.id)
}

/// A queue's title.
pub fn kind_title(kind: &str) -> &'static str {
    match kind {
        "report" => "Verified reports",
        "account" => "Flagged accounts",
        "match" => "Upload and API matches",
        "escalated" => "Escalated to a lead",
        _ => "Items",
    }
}

/// Items shown on one queue page.
pub const PAGE_SIZE: i64 = 50;

pub use crate::db::console::items::{Cursor, open_page_sql};

/// An item's latest decision (its rows only, by the `(item, id)` index).
pub async fn latest_decision(state: &AppState, key: &str) -> anyhow::Result<Option<String>> {
    Ok(store::latest_decision(&state.store, key).await?)
}

/// `?kind=` (and for pages, `from_n`/`from_s`; for next, `after=kind:id`).
#[derive(serde::Deserialize)]
pub struct KindQuery {
    kind: Option<String>,
    after: Option<String>,
    from_n: Option<i64>,
    from_s: Option<String>,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET /console/queue?kind=report|account|match|escalated[&from_n=&from_s=]`:
/// one page of [`PAGE_SIZE`] items.
pub async fn queue(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Query(q): Query<KindQuery>,
) -> Response {
    let kind = q.kind.as_deref().unwrap_or("report");
    if kind_static(kind).is_none() && kind != "escalated" {
        return pages::error(StatusCode::NOT_FOUND, "No such queue.");
    }
    let from = q.from_n.map(|n| Cursor {
        n,
        s: q.from_s.clone().unwrap_or_default(),
    });
    let who = reviewer.who();
    let run = async {
        let mut page =
            queue::open_page(&state.store, &who, kind, from.as_ref(), PAGE_SIZE + 1).await?;
        let more = page.len() as i64 > PAGE_SIZE;
        page.truncate(PAGE_SIZE as usize);
        let last = page.last().map(|(_, c)| c.clone());
        let items: Vec<Item> = page.into_iter().map(|(it, _)| it).collect();
        let (total, _) = queue::open_stats(&state.store, &who, kind).await?;
        Ok::<_, anyhow::Error>((items, more, total, last))
    };
    let (items, more, total, last) = match run.await {
        Ok(x) => x,
        Err(e) => return pages::internal(&e),
    };
    let _ = audit(
        &state.store,
        &reviewer.actor(),
        "console.queue.view",
        json!({"queue": kind, "items": items.len(), "total": total}),
    )
    .await;
    let now = now_ms();
    let next_page = more.then_some(last).flatten().map(|c| {
        format!(
            "/console/queue?kind={kind}&from_n={}&from_s={}",
            c.n,
            enc(&c.s)
        )
    });
    let body = html! {
        h1 { (kind_title(kind)) " (" (total) ")" }
        @if items.is_empty() {
            p { "Nothing is waiting here." }
            @if from.is_some() { p { a href={"/console/queue?kind=" (kind)} { "Back to the first page" } } }
        } @else {
            p.hint { "Keyboard: " kbd { "j" } "/" kbd { "k" } " move, " kbd { "Enter" } " opens. Oldest first, "
                (PAGE_SIZE) " a page." }
            ol.queue #queue aria-label=(kind_title(kind)) {
                @for (n, it) in items.iter().enumerate() {
                    li {
                        a.item-link href=(href(it)) data-index=(n) {
                            (it.summary)
                        }
                        " · waiting " (age(now - it.queued_at))
                        @if !it.banks.is_empty() { " · banks: " (it.banks.join(", ")) }
                    }
                }
            }
            nav aria-label="Pages" {
                @if from.is_some() { a #first-page href={"/console/queue?kind=" (kind)} { "First page" } " " }
                @if let Some(href) = &next_page { a #next-page href=(href) { "Next page" } }
            }
        }
    };
    Page::for_reviewer(kind_title(kind), &reviewer, &state, body).into_response()
}

/// `GET /console/next?kind=...&after=kind:id`: the next open item after
/// that one (or the first), or the queue when none is left.
pub async fn next(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Query(q): Query<KindQuery>,
) -> Response {
    let kind = q.kind.as_deref().unwrap_or("report");
    let who = reviewer.who();
    match queue::next(&state.store, &who, kind, q.after.as_deref()).await {
        Ok(Some(i)) => Redirect::to(&href(&i)).into_response(),
        Ok(None) => Redirect::to(&format!("/console/queue?kind={kind}")).into_response(),
        Err(e) => pages::internal(&e),
    }
}

fn json_str(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

/// Why an item is here: its facts as a definition list and tables, with
/// the text matches of a report or a recorded match.
async fn facts(state: &AppState, item: &Item, facts: &Facts) -> anyhow::Result<Markup> {
    Ok(match facts {
        Facts::Report {
            head: r,
            reporters,
            messages,
            attachments,
        } => {
            let text_facts = super::text::report_facts(state, item.id.parse()?).await?;
            html! {
                dl.facts {
                    dt { "Received" } dd { (rfc3339(r.received_at)) }
                    dt { "Submitted by key" } dd { (r.submitted_by) }
                    dt { "Reason" } dd { (r.reason.clone().unwrap_or_default()) }
                    dt { "Reporter's text" } dd { (r.text.clone().unwrap_or_default()) }
                }
                h3 { "Reporters" }
                ul { @for rr in reporters {
                    li { (rr.account) " on device " (rr.device)
                         " at " (rfc3339(rr.at)) " (signature verified on receipt)" }
                } }
                h3 { "Report chain (franking verification)" }
                table {
                    thead { tr { th { "#" } th { "Sender" } th { "Conversation" } th { "Accepted" }
                                 th { "Franking" } th { "Stamper" } th { "Text" } } }
                    tbody { @for m in messages {
                        @let v = &m.view;
                        tr { td { (v.idx) } td { (v.sender) } td { (v.conversation) } td { (rfc3339(v.accepted_at)) }
                             td { @if v.verified { "verified: stamp MAC and commitment check" } @else { "NOT verified: " (v.rejection.clone().unwrap_or_default()) } }
                             td { (v.stamper.clone().unwrap_or_default()) } td { (super::text::shown(&m.text)) } }
                    } }
                }
                h3 { "Attachments" }
                table {
                    thead { tr { th { "Message" } th { "#" } th { "Type" } th { "Status" } th { "PDQ" } th { "MD5" } th { "Matches" } } }
                    tbody { @for a in attachments {
                        @let (v, h) = (&a.view, &a.hashes);
                        tr { td { (v.msg_idx) } td { (v.idx) } td { (v.media_type) } td { (v.status) }
                             td.hash { (json_str(h, "pdq")) } td.hash { (json_str(h, "md5")) }
                             td { (v.matches.clone().unwrap_or_default()) } }
                    } }
                }
                (text_facts)
            }
        }
        Facts::Account { times, opened } => html! {
            dl.facts {
                dt { "Flagged" } dd { (times.flagged_at.map(rfc3339).unwrap_or_default()) }
                dt { "Why" } dd { "Enough of this account's safety vouchers matched banked hashes to cross the threshold and open them." }
            }
            h3 { "Opened vouchers" }
            table {
                thead { tr { th { "Bank" } th { "Provider" } th { "Content" } th { "Distance" } th { "Hash" } th { "Release" } th { "Opened" } } }
                tbody { @for o in opened {
                    tr { td { (o.bank.clone().unwrap_or_default()) } td { (o.provider.clone().unwrap_or_default()) }
                         td { (o.content_id) } td { (o.distance) } td.hash { (o.hash) }
                         td { (o.release_id.map(|r| r.to_string()).unwrap_or_default()) } td { (rfc3339(o.opened_at)) } }
                } }
            }
        },
        Facts::Match(r) => {
            let text_facts = super::text::match_facts(state, item.id.parse()?).await?;
            html! {
                dl.facts {
                    dt { "Matched" } dd { (rfc3339(r.at)) }
                    dt { "By API key" } dd { (r.actor) }
                    dt { "Bank" } dd { (r.bank) " (provider: "
                        (r.provider.clone().unwrap_or_else(|| "none".into()))
                        ", threshold " (r.threshold.unwrap_or_default()) ")" }
                    dt { "Banked content" } dd { (r.content_id) }
                    dt { "Signal" } dd { (r.signal_type) ", distance " (r.distance) }
                    dt { "PDQ" } dd.hash { (r.pdq.clone().unwrap_or_default()) }
                    dt { "MD5" } dd.hash { (r.md5.clone().unwrap_or_default()) }
                    dt { "SHA-256" } dd.hash { (r.sha256.clone().unwrap_or_default()) }
                    dt { "Why" } dd { "The bank's review policy queues matches at this distance or closer." }
                }
                (text_facts)
            }
        }
    })
}

/// `GET /console/item/{kind}/{id}`: why it is here, its media (blurred),
/// history, similar items and the decision form. The view is audited.
pub async fn item(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    match item_inner(&state, &reviewer, &kind, &id).await {
        Ok(r) => r,
        Err(e) => pages::internal(&e),
    }
}

async fn item_inner(
    state: &AppState,
    reviewer: &Reviewer,
    kind: &str,
    id: &str,
) -> anyhow::Result<Response> {
    let Some(kind) = kind_static(kind) else {
        return Ok(pages::error(StatusCode::NOT_FOUND, "No such item."));
    };
    let Some(it) = queue::find_item(&state.store, kind, id).await? else {
        return Ok(pages::error(
            StatusCode::NOT_FOUND,
            "No such item (it may have been cleared).",
        ));
    };
    let key = it.key();
    audit(
        &state.store,
        &reviewer.actor(),
        "console.item.view",
        json!({"item": key}),
    )
    .await?;
    let d = page_reads::detail(&state.store, &super::video::options(state), &it).await?;
    let facts = facts(state, &it, &d.facts).await?;
    let sim = page_reads::similar(&state.store, &key, &d.pdq, &d.accounts).await?;
    let who = reviewer.who();
    let now = now_ms();
    let shown = queue::revealed(&state.store, &who, &key, now).await?;
    let used = queue::reveals_today(&state.store, &who, now).await?;
    let budget = i64::from(state.config.console.daily_reveal_budget);
    let hist = page_reads::history(&state.store, &key).await?;
    let latest = latest_decision(state, &key).await?;
    let escalated = latest.as_deref() == Some("escalate");
    let lead = reviewer.role >= ConsoleRole::Lead;
    let banks = crate::db::banks(&state.store).await?;
    let csrf = &reviewer.csrf;
    let queue_kind = if escalated { "escalated" } else { kind };
    let body = html! {
        h1 { (it.summary) }
        p { "In the queue for " (age(now_ms() - it.queued_at))
            @if !it.banks.is_empty() { " · matched banks: " strong { (it.banks.join(", ")) } }
            @if let Some(l) = &latest { " · latest decision: " strong #status { (l) } } }
        section aria-labelledby="why" { h2 #why { "Why it is here" } (facts) }
        section aria-labelledby="media-h" {
            h2 #media-h { "Media" }
            p.hint { "Images and video frames are blurred, grey and small until you reveal one. Reveals used today: "
                span #reveals-used { (used) } " of " (budget) ". Videos are shown as a strip of still frames; nothing plays." }
            @for n in &d.notes { p.note { (n) } }
            @if d.media.is_empty() { p { "No viewable media." } }
            div.media {
                @for m in &d.media {
                    @let open = shown.contains(&m.id);
                    figure {
                        img class=(if open { "thumb revealed" } else { "thumb" })
                            src={"/console/media/" (kind) "/" (it.id) "/" (m.id)}
                            alt={(if open { "Revealed: " } else { "Blurred: " }) (m.label)};
                        figcaption { (m.label) }
                        @if !open {
                            form method="post" action="/console/reveal" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="item" value=(key);
                                input type="hidden" name="media" value=(m.id);
                                button.reveal type="submit" aria-label={"Reveal " (m.label)} { "Reveal (counts against your budget)" }
                            }
                        }
                    }
                }
            }
            form method="post" action="/console/hide" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="item" value=(key);
                button #hide type="submit" { "Do not show me this item again" }
            }
        }
        section aria-labelledby="decide-h" {
            h2 #decide-h { "Decide" }
            p.hint { "Keyboard: " kbd { "c" } " confirm, " kbd { "d" } " dismiss, " kbd { "e" } " escalate, " kbd { "n" } " next item." }
            form #decide method="post" action="/console/decide" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="item" value=(key);
                label for="category" { "Category (for confirm)" }
                select #category name="category" {
                    @for c in CATEGORIES { option value=(c) { (c) } }
                }
                label for="note" { "Note" }
                input #note type="text" name="note" maxlength="2000";
                div.buttons {
                    button #confirm type="submit" name="decision" value="confirm" accesskey="c" { "Confirm" }
                    button #dismiss type="submit" name="decision" value="dismiss" accesskey="d" { "Dismiss (false positive)" }
                    @if !escalated || !lead {
                        button #escalate type="submit" name="decision" value="escalate" accesskey="e" { "Escalate to a lead" }
                    }
                    @if lead && kind == "account" {
                        button #clear type="submit" name="decision" value="clear" { "Clear the account (unflag)" }
                    }
                }
                @if lead && !d.pdq.is_empty() {
                    label for="bank" { "Bank" }
                    select #bank name="bank" { @for b in &banks { option value=(b.name) { (b.name) } } }
                    button #add-to-bank type="submit" name="decision" value="add_to_bank" { "Add its hashes to the bank" }
                }
            }
            p { a #next href={"/console/next?kind=" (queue_kind) "&after=" (key)} accesskey="n" { "Next item" } }
        }
        @if lead {
            section aria-labelledby="report-h" {
                h2 #report-h { "Report" }
                form method="post" action="/console/cybertip" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="item" value=(key);
                    button #cybertip type="submit" { "Build a CyberTipline report (confirmed items)" }
                }
                p { a #evidence href={"/console/export/" (kind) "/" (it.id)} { "Download the evidence package (JSON)" } }
            }
        }
        section aria-labelledby="sim-h" {
            h2 #sim-h { "Similar items" }
            @if sim.is_empty() { p { "None." } }
            ul { @for x in &sim { li { a href=(x.href()) { (x.key) } " — " (x.why) } } }
        }
        section aria-labelledby="hist-h" {
            h2 #hist-h { "History" }
            ol.history { @for e in &hist {
                li { (rfc3339(e.at)) " " (e.actor) " " (e.action) " " code { (e.detail) } }
            } }
        }
    };
    Ok(Page::for_reviewer(&it.summary, reviewer, state, body).into_response())
}

/// `GET /console/media/{kind}/{id}/{media}`: a grey PNG thumbnail, never the
/// original: 16 px until this reviewer revealed it today, then 320 px.
pub async fn media(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Path((kind, id, media)): Path<(String, String, String)>,
) -> Response {
    let run = async {
        let Some(kind) = kind_static(&kind) else {
            return Ok(None);
        };
        let key = format!("{kind}:{id}");
        let open = queue::revealed(&state.store, &reviewer.who(), &key, now_ms())
            .await?
            .contains(&media);
        Ok::<_, anyhow::Error>(media::shown(&state.store, kind, &id, &media, open).await?)
    };
    match run.await {
        Ok(Some(png)) => {
            let mut r = png.into_response();
            pages::secure_headers(&mut r, "image/png");
            r
        }
        Ok(None) => pages::error(StatusCode::NOT_FOUND, "No such media."),
        Err(e) => pages::internal(&e),
    }
}

fn field<'a>(form: &'a HashMap<String, String>, k: &str) -> &'a str {
    form.get(k).map_or("", String::as_str)
}

/// `POST /console/reveal` (`item`, `media`): un-blurs one image for this
/// reviewer today, within the daily exposure budget; audited.
pub async fn reveal(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer.check_csrf(&form) {
        return r;
    }
    let run = async {
        let key = field(&form, "item");
        let media = field(&form, "media");
        let Some((kind, id)) = split_key(key) else {
            return Ok(pages::error(StatusCode::BAD_REQUEST, "No such item."));
        };
        if media::load(&state.store, kind, id, media).await?.is_none() {
            return Ok(pages::error(StatusCode::NOT_FOUND, "No such media."));
        }
        let budget = i64::from(state.config.console.daily_reveal_budget);
        if let Err(e) =
            queue::reveal(&state.store, &reviewer.who(), key, media, budget, now_ms()).await
        {
            return Ok(pages::refused(&e));
        }
        Ok::<_, anyhow::Error>(Redirect::to(&format!("/console/item/{kind}/{id}")).into_response())
    };
    run.await.unwrap_or_else(|e| pages::internal(&e))
}

/// `POST /console/hide` (`item`): "do not show me again", for this reviewer.
pub async fn hide(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer.check_csrf(&form) {
        return r;
    }
    match queue::hide(&state.store, &reviewer.who(), field(&form, "item")).await {
        Ok(kind) => Redirect::to(&format!("/console/queue?kind={kind}")).into_response(),
        Err(e) => pages::refused(&e),
    }
}

/// `POST /console/decide` (`item`, `decision`, `category`, `bank`, `note`).
pub async fn decide(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer.check_csrf(&form) {
        return r;
    }
    let key = field(&form, "item");
    let request = decisions::Request {
        item: key,
        decision: field(&form, "decision"),
        category: field(&form, "category"),
        bank: field(&form, "bank"),
        note: Some(field(&form, "note")).filter(|n| !n.is_empty()),
    };
    match decisions::decide(
        &state.store,
        &state.catalog,
        &state.config.console.webhooks(),
        super::actions::http(&state),
        &reviewer.who(),
        &request,
    )
    .await
    {
        Ok(d) => {
            Redirect::to(&format!("/console/next?kind={}&after={key}", d.queue)).into_response()
        }
        Err(e) => pages::refused(&e),
    }
}

/// `POST /console/policy` (admin; `bank`, `max_distance`, empty to remove):
/// which matches of a bank are recorded for review.
pub async fn set_policy(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer
        .check_csrf(&form)
        .and_then(|_| reviewer.require(ConsoleRole::Admin))
    {
        return r;
    }
    let dist = field(&form, "max_distance").trim();
    let max_distance = match dist {
        "" => None,
        d => match d.parse() {
            Ok(d) => Some(d),
            Err(_) => {
                return pages::error(
                    StatusCode::BAD_REQUEST,
                    "The largest distance is a whole number, or empty for no review.",
                );
            }
        },
    };
    let bank = field(&form, "bank");
    match policy::set(&state.store, &reviewer.who(), bank, max_distance).await {
        Ok(()) => Redirect::to("/console/admin").into_response(),
        Err(e) => pages::refused(&e),
    }
}

/// The match path's hook: records the matches that a bank's review policy
/// selects, with a thumbnail of the upload (never the file itself). Errors
/// are logged; matching answers regardless.
pub async fn record_matches(
    state: &AppState,
    actor: &str,
    query: Option<(&crate::media::Hashed, &bytes::Bytes)>,
    matches: &[Value],
) {
    let strips = super::video::options(state);
    if let Err(e) =
        bulwark_service::review::matches::record(&state.store, &strips, actor, query, matches).await
    {
        tracing::warn!("console: recording matches failed: {}", e.message);
    }
}
