//! Queues, item pages, safe viewing (thumbnails, reveal, hide) and
//! decisions, as pages. The operations — which items a queue holds, the
//! next one, the reveal budget, which decisions are allowed and their
//! effects — are `bulwark_service::review` ([`queue`], [`decisions`]).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bulwark_service::review::queue::{self, kind_static, split_key};
use bulwark_service::review::{audit, decisions, policy};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::accounts::{ConsoleRole, Reviewer};
use super::pages::{self, Page, age};
use crate::AppState;
use crate::db::console::items as store;
use crate::db::{now_ms, rfc3339};

/// Largest side, in pixels, of a thumbnail before it is revealed.
pub const HIDDEN_SIDE: u32 = 16;
/// Largest side of a revealed thumbnail.
pub const REVEALED_SIDE: u32 = 320;
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

/// Rows of each source an item page compares hashes with (the most recent).
pub const SIMILAR_SCAN: i64 = 2000;

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

/// A viewable medium of an item.
struct Media {
    id: String,
    label: String,
}

/// What the item page shows.
struct Detail {
    item: Item,
    facts: Markup,
    media: Vec<Media>,
    notes: Vec<String>,
    pdq: Vec<String>,
    accounts: Vec<String>,
}
fn json_str(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

async fn detail(state: &AppState, item: Item) -> anyhow::Result<Detail> {
    let s = &state.store;
    let mut media = Vec::new();
    let mut pdq = Vec::new();
    let mut accounts = Vec::new();
    let mut notes = Vec::new();
    let facts = match item.kind {
        "report" => {
            let id: i64 = item.id.parse()?;
            let r = store::report(s, id).await?;
            let msgs = store::report_messages(s, id).await?;
            let reporters = store::report_reporters(s, id).await?;
            let atts = store::report_attachments(s, id).await?;
            let mut msg_rows = Vec::new();
            for m in msgs {
                let text = bulwark_franking::content::Content::parse(&m.content)
                    .ok()
                    .and_then(|c| String::from_utf8(c.body).ok())
                    .unwrap_or_default();
                accounts.push(m.sender.clone());
                msg_rows.push((
                    m.idx,
                    m.sender,
                    m.conversation,
                    m.accepted_at,
                    m.verified,
                    m.rejection,
                    m.stamper,
                    text,
                ));
            }
            let mut att_rows = Vec::new();
            for a in atts {
                let (mi, ai) = (a.msg_idx, a.idx);
                let hashes: Value = a
                    .hashes
                    .and_then(|h| serde_json::from_str(&h).ok())
                    .unwrap_or(Value::Null);
                if let Some(p) = hashes["pdq"].as_str() {
                    pdq.push(p.to_string());
                }
                let has_plain = a.has_plain;
                let mt = a.media_type;
                if has_plain && hashes["kind"] == "photo" {
                    media.push(Media {
                        id: format!("{mi}-{ai}"),
                        label: format!("attachment {ai} of message {mi} ({mt})"),
                    });
                }
                if has_plain && hashes["kind"] == "video" {
                    let what = format!("video attachment {ai} of message {mi}");
                    let strip = super::video::strip(state, &item.key(), &format!("{mi}-{ai}"), move || async move {
                        Ok(store::attachment_plaintext(s, id, mi, ai).await?)
                    })
                    .await?;
                    push_strip(&mut media, &mut notes, &what, strip);
                }
                att_rows.push((mi, ai, mt, a.status, hashes, a.matches));
            }
            for rr in &reporters {
                accounts.push(rr.account.clone());
            }
            let text_facts = super::text::report_facts(state, id).await?;
            html! {
                dl.facts {
                    dt { "Received" } dd { (rfc3339(r.received_at)) }
                    dt { "Submitted by key" } dd { (r.submitted_by) }
                    dt { "Reason" } dd { (r.reason.unwrap_or_default()) }
                    dt { "Reporter's text" } dd { (r.text.unwrap_or_default()) }
                }
                h3 { "Reporters" }
                ul { @for rr in &reporters {
                    li { (rr.account) " on device " (rr.device)
                         " at " (rfc3339(rr.at)) " (signature verified on receipt)" }
                } }
                h3 { "Report chain (franking verification)" }
                table {
                    thead { tr { th { "#" } th { "Sender" } th { "Conversation" } th { "Accepted" }
                                 th { "Franking" } th { "Stamper" } th { "Text" } } }
                    tbody { @for (idx, sender, conv, at, ok, rej, st, text) in &msg_rows {
                        tr { td { (idx) } td { (sender) } td { (conv) } td { (rfc3339(*at)) }
                             td { @if *ok { "verified: stamp MAC and commitment check" } @else { "NOT verified: " (rej.clone().unwrap_or_default()) } }
                             td { (st.clone().unwrap_or_default()) } td { (super::text::shown(text)) } }
                    } }
                }
                h3 { "Attachments" }
                table {
                    thead { tr { th { "Message" } th { "#" } th { "Type" } th { "Status" } th { "PDQ" } th { "MD5" } th { "Matches" } } }
                    tbody { @for (mi, ai, mt, st, h, m) in &att_rows {
                        tr { td { (mi) } td { (ai) } td { (mt) } td { (st) }
                             td.hash { (json_str(h, "pdq")) } td.hash { (json_str(h, "md5")) }
                             td { (m.clone().unwrap_or_default()) } }
                    } }
                }
                (text_facts)
            }
        }
        "account" => {
            let a = &item.id;
            accounts.push(a.clone());
            let r = store::account(s, a).await?;
            let opened = store::opened(s, a).await?;
            let mut rows = Vec::new();
            for (n, o) in opened.into_iter().enumerate() {
                pdq.push(o.hash.clone());
                media.push(Media {
                    id: n.to_string(),
                    label: format!("visual derivative {n} (low-resolution grey, from the voucher)"),
                });
                rows.push((
                    o.bank.unwrap_or_default(),
                    o.provider.unwrap_or_default(),
                    o.content_id,
                    o.distance,
                    o.hash,
                    o.release_id,
                    o.opened_at,
                ));
            }
            html! {
                dl.facts {
                    dt { "Flagged" } dd { (r.flagged_at.map(rfc3339).unwrap_or_default()) }
                    dt { "Why" } dd { "Enough of this account's safety vouchers matched banked hashes to cross the threshold and open them." }
                }
                h3 { "Opened vouchers" }
                table {
                    thead { tr { th { "Bank" } th { "Provider" } th { "Content" } th { "Distance" } th { "Hash" } th { "Release" } th { "Opened" } } }
                    tbody { @for (b, p, c, d, h, rel, at) in &rows {
                        tr { td { (b) } td { (p) } td { (c) } td { (d) } td.hash { (h) }
                             td { (rel.map(|r| r.to_string()).unwrap_or_default()) } td { (rfc3339(*at)) } }
                    } }
                }
            }
        }
        _ => {
            let id: i64 = item.id.parse()?;
            let r = store::match_detail(s, id).await?;
            let p = r.pdq.clone();
            pdq.extend(p.clone());
            let actor = &r.actor;
            if r.thumb.is_some() {
                media.push(Media {
                    id: "0".into(),
                    label: "the uploaded file (kept only as a thumbnail)".into(),
                });
            }
            // A video upload: its frame strip, kept when the match was recorded.
            if r.thumb.is_none() && p.is_none() && r.md5.is_some() {
                let strip =
                    super::video::strip(state, &item.key(), "0", || async { Ok(None) }).await?;
                push_strip(&mut media, &mut notes, "the uploaded video", strip);
            }
            let text_facts = super::text::match_facts(state, id).await?;
            html! {
                dl.facts {
                    dt { "Matched" } dd { (rfc3339(r.at)) }
                    dt { "By API key" } dd { (actor) }
                    dt { "Bank" } dd { (r.bank) " (provider: "
                        (r.provider.clone().unwrap_or_else(|| "none".into()))
                        ", threshold " (r.threshold.unwrap_or_default()) ")" }
                    dt { "Banked content" } dd { (r.content_id) }
                    dt { "Signal" } dd { (r.signal_type) ", distance " (r.distance) }
                    dt { "PDQ" } dd.hash { (p.unwrap_or_default()) }
                    dt { "MD5" } dd.hash { (r.md5.clone().unwrap_or_default()) }
                    dt { "SHA-256" } dd.hash { (r.sha256.clone().unwrap_or_default()) }
                    dt { "Why" } dd { "The bank's review policy queues matches at this distance or closer." }
                }
                (text_facts)
            }
        }
    };
    Ok(Detail {
        item,
        facts,
        media,
        notes,
        pdq,
        accounts,
    })
}

/// A video's frames as media ("frame 2 of 4, at 3.5 s, of ..."), or the
/// note why there are none.
fn push_strip(
    media: &mut Vec<Media>,
    notes: &mut Vec<String>,
    what: &str,
    strip: Result<super::video::Strip, String>,
) {
    match strip {
        Ok(frames) => {
            let n = frames.len();
            for (k, (id, at)) in frames.into_iter().enumerate() {
                media.push(Media {
                    id,
                    label: format!(
                        "frame {} of {n}, at {:.1} s, of {what}",
                        k + 1,
                        at as f64 / 1000.0
                    ),
                });
            }
        }
        Err(why) => notes.push(format!("{what}: {why}")),
    }
}

/// Items sharing a hash (PDQ within 31 bits) or an account with this one.
async fn similar(state: &AppState, d: &Detail) -> anyhow::Result<Vec<(String, String, String)>> {
    let mine: Vec<bulwark_pdq::PdqHash> = d.pdq.iter().filter_map(|h| h.parse().ok()).collect();
    let near = |h: &str| -> Option<u32> {
        let h: bulwark_pdq::PdqHash = h.parse().ok()?;
        mine.iter()
            .map(|m| m.distance(&h))
            .min()
            .filter(|d| *d <= 31)
    };
    let s = &state.store;
    let me = d.item.key();
    let mut out = Vec::new();
    // Near hashes among the most recent rows of each source (bounded: an item
    // page never reads a whole table); exact PDQ matches of recorded matches
    // at any age by their index.
    let mut recent = store::recent_match_pdqs(s, SIMILAR_SCAN).await?;
    for h in d.pdq.iter().take(16) {
        recent.extend(store::matches_with_pdq(s, h).await?);
    }
    for (id, p) in recent {
        if let Some(dist) = near(&p) {
            out.push((
                format!("match:{id}"),
                format!("/console/item/match/{id}"),
                format!("PDQ distance {dist}"),
            ));
        }
    }
    for (id, h) in store::recent_attachment_hashes(s, SIMILAR_SCAN).await? {
        let v: Value = serde_json::from_str(&h).unwrap_or(Value::Null);
        if let Some(dist) = v["pdq"].as_str().and_then(near) {
            out.push((
                format!("report:{id}"),
                format!("/console/item/report/{id}"),
                format!("PDQ distance {dist}"),
            ));
        }
    }
    for (a, hash) in store::recent_flagged_hashes(s, SIMILAR_SCAN).await? {
        if let Some(dist) = near(&hash) {
            out.push((
                format!("account:{a}"),
                format!("/console/item/account/{a}"),
                format!("PDQ distance {dist}"),
            ));
        }
    }
    for a in &d.accounts {
        for id in store::reports_of_account(s, a, SIMILAR_SCAN).await? {
            out.push((
                format!("report:{id}"),
                format!("/console/item/report/{id}"),
                format!("same account {a}"),
            ));
        }
        if store::account_known(s, a).await? {
            out.push((
                format!("account:{a}"),
                format!("/console/item/account/{a}"),
                format!("same account {a}"),
            ));
        }
    }
    out.retain(|(k, _, _)| *k != me);
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

async fn history(
    state: &AppState,
    key: &str,
) -> anyhow::Result<Vec<(i64, String, String, String)>> {
    let needle = format!("%\"item\":{}%", serde_json::to_string(key)?);
    Ok(store::history(&state.store, &needle)
        .await?
        .into_iter()
        .map(|r| (r.at, r.actor, r.action, r.detail))
        .collect())
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
    let d = detail(state, it).await?;
    let sim = similar(state, &d).await?;
    let who = reviewer.who();
    let now = now_ms();
    let shown = queue::revealed(&state.store, &who, &key, now).await?;
    let used = queue::reveals_today(&state.store, &who, now).await?;
    let budget = i64::from(state.config.console.daily_reveal_budget);
    let hist = history(state, &key).await?;
    let latest = latest_decision(state, &key).await?;
    let escalated = latest.as_deref() == Some("escalate");
    let lead = reviewer.role >= ConsoleRole::Lead;
    let banks = crate::db::banks(&state.store).await?;
    let csrf = &reviewer.csrf;
    let queue_kind = if escalated { "escalated" } else { kind };
    let body = html! {
        h1 { (d.item.summary) }
        p { "In the queue for " (age(now_ms() - d.item.queued_at))
            @if !d.item.banks.is_empty() { " · matched banks: " strong { (d.item.banks.join(", ")) } }
            @if let Some(l) = &latest { " · latest decision: " strong #status { (l) } } }
        section aria-labelledby="why" { h2 #why { "Why it is here" } (d.facts) }
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
                            src={"/console/media/" (kind) "/" (d.item.id) "/" (m.id)}
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
                p { a #evidence href={"/console/export/" (kind) "/" (d.item.id)} { "Download the evidence package (JSON)" } }
            }
        }
        section aria-labelledby="sim-h" {
            h2 #sim-h { "Similar items" }
            @if sim.is_empty() { p { "None." } }
            ul { @for (k, href, why) in &sim { li { a href=(href) { (k) } " — " (why) } } }
        }
        section aria-labelledby="hist-h" {
            h2 #hist-h { "History" }
            ol.history { @for (at, actor, action, detail) in &hist {
                li { (rfc3339(*at)) " " (actor) " " (action) " " code { (detail) } }
            } }
        }
    };
    Ok(Page::for_reviewer(&d.item.summary, reviewer, state, body).into_response())
}

/// Loads an item's medium as an image (RGB or grey pixels).
async fn load_media(
    state: &AppState,
    kind: &str,
    id: &str,
    media: &str,
) -> anyhow::Result<Option<bulwark_pdq::Image>> {
    let s = &state.store;
    let bytes: Option<Vec<u8>> = match kind {
        _ if super::video::is_frame(media) => {
            super::video::frame_png(state, &format!("{kind}:{id}"), media).await?
        }
        "report" => {
            let (mi, ai) = media
                .split_once('-')
                .ok_or_else(|| anyhow::anyhow!("bad media id"))?;
            store::attachment_plaintext(
                s,
                id.parse::<i64>()?,
                mi.parse::<i64>()?,
                ai.parse::<i64>()?,
            )
            .await?
        }
        "account" => {
            let n: usize = media.parse()?;
            let rows = store::derivatives(s, id).await?;
            let Some(d) = rows.get(n) else {
                return Ok(None);
            };
            // A 32×32 8-bit grey derivative (padded).
            if d.len() < 1024 {
                return Ok(None);
            }
            return Ok(Some(bulwark_pdq::Image {
                width: 32,
                height: 32,
                channels: 1,
                pixels: d[..1024].to_vec(),
            }));
        }
        "match" => store::match_thumb(s, id.parse::<i64>()?).await?,
        _ => None,
    };
    let Some(bytes) = bytes else { return Ok(None) };
    let img = tokio::task::spawn_blocking(move || {
        bulwark_pdq::decode(&bytes, &bulwark_pdq::Limits::default())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
    Ok(Some(img))
}

/// Greyscale, box-downscaled so the larger side is at most `side`, as PNG.
pub fn thumbnail(img: &bulwark_pdq::Image, side: u32) -> anyhow::Result<Vec<u8>> {
    let (w, h, c) = (
        img.width.max(1),
        img.height.max(1),
        img.channels.max(1) as usize,
    );
    let scale = (w.max(h) as f64 / f64::from(side)).max(1.0);
    let (tw, th) = (
        ((w as f64 / scale).round() as u32).max(1),
        ((h as f64 / scale).round() as u32).max(1),
    );
    let mut out = vec![0u8; (tw * th) as usize];
    for ty in 0..th {
        let (y0, y1) = (ty * h / th, ((ty + 1) * h / th).max(ty * h / th + 1));
        for tx in 0..tw {
            let (x0, x1) = (tx * w / tw, ((tx + 1) * w / tw).max(tx * w / tw + 1));
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1.min(h) {
                for x in x0..x1.min(w) {
                    let p = ((y * w + x) as usize) * c;
                    let px = &img.pixels[p..p + c];
                    let grey = if c >= 3 {
                        (299 * u64::from(px[0]) + 587 * u64::from(px[1]) + 114 * u64::from(px[2]))
                            / 1000
                    } else {
                        u64::from(px[0])
                    };
                    sum += grey;
                    n += 1;
                }
            }
            out[(ty * tw + tx) as usize] = (sum / n.max(1)) as u8;
        }
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &out,
        tw,
        th,
        image::ExtendedColorType::L8,
    )?;
    Ok(png)
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
        let Some(img) = load_media(&state, kind, &id, &media).await? else {
            return Ok(None);
        };
        let side = if open { REVEALED_SIDE } else { HIDDEN_SIDE };
        tokio::task::spawn_blocking(move || thumbnail(&img, side))
            .await?
            .map(Some)
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
        if load_media(&state, kind, id, media).await?.is_none() {
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
    if matches.is_empty() {
        return;
    }
    if let Err(e) = record_inner(state, actor, query, matches).await {
        tracing::warn!("console: recording matches failed: {e:#}");
    }
}

async fn record_inner(
    state: &AppState,
    actor: &str,
    query: Option<(&crate::media::Hashed, &bytes::Bytes)>,
    matches: &[Value],
) -> anyhow::Result<()> {
    let s = &state.store;
    let policies = policy::all(s).await?;
    let chosen: Vec<&Value> = matches
        .iter()
        .filter(|m| {
            let Some(max) = m["bank"].as_str().and_then(|b| policies.get(b)) else {
                return false;
            };
            m["distance"].as_i64().is_none_or(|d| d <= *max)
        })
        .collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let summary = query.map(|(h, _)| h.summary_json()).unwrap_or(Value::Null);
    let thumb = match query {
        Some((crate::media::Hashed::Photo { .. }, file)) => {
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                bulwark_pdq::decode(&file, &bulwark_pdq::Limits::default())
                    .ok()
                    .and_then(|img| thumbnail(&img, REVEALED_SIDE).ok())
            })
            .await?
        }
        _ => None,
    };
    let now = now_ms();
    let mut ids = Vec::new();
    for m in chosen {
        let id = store::insert_match(
            s,
            &store::NewMatch {
                at: now,
                actor,
                bank: m["bank"].as_str().unwrap_or(""),
                content_id: m["content_id"].as_i64().unwrap_or(0),
                signal_type: m["signal_type"].as_str().unwrap_or(""),
                distance: m["distance"].as_i64().unwrap_or(0),
                pdq: summary["pdq"].as_str(),
                md5: summary["md5"].as_str(),
                sha256: summary["sha256"].as_str(),
                thumb: thumb.clone(),
            },
        )
        .await?;
        super::text::record(s, id, m).await?;
        ids.push(id);
    }
    // A video: keep its frame strip (never the file).
    if let Some((crate::media::Hashed::Video { .. }, file)) = query {
        super::video::keep_for_matches(state, file.to_vec(), &ids).await?;
    }
    Ok(())
}
