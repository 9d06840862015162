//! Queues, item pages, safe viewing (thumbnails, reveal, hide) and decisions.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bulwark_service::review::decisions;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::accounts::{ConsoleRole, Reviewer, audit};
use super::pages::{self, Page, age};
use crate::AppState;
use crate::db::console::items as store;
use crate::db::{self, now_ms, rfc3339};

/// Largest side, in pixels, of a thumbnail before it is revealed.
pub const HIDDEN_SIDE: u32 = 16;
/// Largest side of a revealed thumbnail.
pub const REVEALED_SIDE: u32 = 320;
/// Confirmation categories.
pub use bulwark_service::review::decisions::CATEGORIES;

/// An item in a queue.
#[derive(Debug, Clone)]
pub struct Item {
    /// `report`, `account` or `match`.
    pub kind: &'static str,
    /// The id within its kind.
    pub id: String,
    /// Banks it matched.
    pub banks: Vec<String>,
    /// Each matched bank's smallest match distance (0 for exact matches).
    pub distances: BTreeMap<String, i64>,
    /// When it entered the queue (ms).
    pub queued_at: i64,
    /// One line about it.
    pub summary: String,
}

impl Item {
    /// `kind:id`, the key of decisions, reveals and audit entries.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
    /// Its page.
    pub fn href(&self) -> String {
        format!("/console/item/{}/{}", self.kind, self.id)
    }
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

fn kind_static(kind: &str) -> Option<&'static str> {
    ["report", "account", "match"]
        .into_iter()
        .find(|k| *k == kind)
}

/// Each bank's smallest match distance in a `matches` JSON array (exact
/// MD5/SHA-256 matches have distance 0).
fn distances_of_matches(matches: Option<&str>, into: &mut BTreeMap<String, i64>) {
    let v: Value = matches
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    for m in v.as_array().into_iter().flatten() {
        if let Some(b) = m["bank"].as_str() {
            let d = m["distance"].as_i64().unwrap_or(0);
            let e = into.entry(b.to_string()).or_insert(d);
            *e = (*e).min(d);
        }
    }
}

/// Rows of each source an item page compares hashes with (the most recent).
pub const SIMILAR_SCAN: i64 = 2000;

/// Items shown on one queue page.
pub const PAGE_SIZE: i64 = 50;

pub use crate::db::console::items::{Cursor, open_page_sql};

/// An item's sort key in a queue (`kind`, or `escalated`).
pub fn cursor_of(queue: &str, it: &Item) -> Cursor {
    match queue {
        "escalated" => Cursor {
            n: it.queued_at,
            s: it.key(),
        },
        "account" => Cursor {
            n: it.queued_at,
            s: it.id.clone(),
        },
        _ => Cursor {
            n: it.id.parse().unwrap_or(0),
            s: String::new(),
        },
    }
}

/// One item by kind and id, if it is (still) in a queue's source: a queued
/// report, a flagged account, a recorded match. Reads that item's rows only.
pub async fn find_item(state: &AppState, kind: &str, id: &str) -> anyhow::Result<Option<Item>> {
    let s = &state.store;
    let mut distances = BTreeMap::new();
    let (summary, queued_at) = match kind {
        "report" => {
            let Ok(rid) = id.parse::<i64>() else {
                return Ok(None);
            };
            let Some((received_at, reason)) = store::queued_report(s, rid).await? else {
                return Ok(None);
            };
            for matches in store::attachment_matches(s, rid).await? {
                distances_of_matches(matches.as_deref(), &mut distances);
            }
            super::text::report_banks(state, rid, &mut distances).await?;
            (
                format!(
                    "Report {rid}: {}",
                    reason.unwrap_or_else(|| "no reason".into())
                ),
                received_at,
            )
        }
        "account" => {
            let Some(r) = store::flagged_account(s, id).await? else {
                return Ok(None);
            };
            for (name, d) in store::opened_distances(s, id).await? {
                let e = distances.entry(name).or_insert(d);
                *e = (*e).min(d);
            }
            (
                format!("Account {id} crossed the voucher threshold"),
                r.flagged_at.unwrap_or(r.updated_at),
            )
        }
        "match" => {
            let Ok(mid) = id.parse::<i64>() else {
                return Ok(None);
            };
            let Some(store::MatchSummary {
                at,
                bank,
                distance: d,
                signal_type: t,
            }) = store::match_summary(s, mid).await?
            else {
                return Ok(None);
            };
            distances.insert(bank.clone(), d);
            // A rule match has no distance: say what matched instead.
            let title = if t == "rule" {
                format!("Match {mid}: bank {bank}, rule")
            } else {
                format!("Match {mid}: bank {bank}, {t} distance {d}")
            };
            (title, at)
        }
        _ => return Ok(None),
    };
    let Some(kind) = kind_static(kind) else {
        return Ok(None);
    };
    Ok(Some(Item {
        kind,
        id: id.to_string(),
        banks: distances.keys().cloned().collect(),
        distances,
        queued_at,
        summary,
    }))
}

/// An item's latest decision (its rows only, by the `(item, id)` index).
pub async fn latest_decision(state: &AppState, key: &str) -> anyhow::Result<Option<String>> {
    Ok(store::latest_decision(&state.store, key).await?)
}

/// The queue an item is open in (`report`, `account`, `match` or
/// `escalated`), if it is open: one primary-key lookup in `console_open`.
pub async fn open_queue(state: &AppState, key: &str) -> anyhow::Result<Option<String>> {
    Ok(store::open_queue(&state.store, key).await?)
}

/// An open item's sort key in its queue (`console_open`), if it is open.
async fn open_cursor(state: &AppState, key: &str) -> anyhow::Result<Option<Cursor>> {
    Ok(store::open_cursor(&state.store, key).await?)
}

fn is_queue(queue: &str) -> bool {
    matches!(queue, "report" | "account" | "match" | "escalated")
}

/// One page of a queue for this reviewer, oldest first, after `after`:
/// at most `limit` items with their sort keys, read with `LIMIT` from the
/// open items' index (never a whole table, never a decided item).
pub async fn open_page(
    state: &AppState,
    reviewer: &Reviewer,
    queue: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Vec<(Item, Cursor)>> {
    if (queue == "escalated" && reviewer.role < ConsoleRole::Lead) || !is_queue(queue) {
        return Ok(Vec::new());
    }
    let rows =
        store::open_page(&state.store, queue, reviewer.id, after, limit.clamp(1, 500)).await?;
    let mut out = Vec::new();
    for r in rows {
        let (key, cursor) = (r.item, r.cursor);
        let Some((kind, id)) = split_key(&key) else {
            continue;
        };
        if let Some(mut it) = find_item(state, kind, id).await? {
            if queue == "escalated" {
                it.queued_at = r.t;
            }
            out.push((it, cursor));
        }
    }
    Ok(out)
}

/// How many items wait in a queue for this reviewer, and since when the
/// oldest has (one aggregate query over the queue's open items).
pub async fn open_stats(
    state: &AppState,
    reviewer: &Reviewer,
    queue: &str,
) -> anyhow::Result<(i64, Option<i64>)> {
    if (queue == "escalated" && reviewer.role < ConsoleRole::Lead) || !is_queue(queue) {
        return Ok((0, None));
    }
    Ok(store::open_stats(&state.store, queue, reviewer.id).await?)
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
    let run = async {
        let mut page = open_page(&state, &reviewer, kind, from.as_ref(), PAGE_SIZE + 1).await?;
        let more = page.len() as i64 > PAGE_SIZE;
        page.truncate(PAGE_SIZE as usize);
        let last = page.last().map(|(_, c)| c.clone());
        let items: Vec<Item> = page.into_iter().map(|(it, _)| it).collect();
        let (total, _) = open_stats(&state, &reviewer, kind).await?;
        Ok::<_, anyhow::Error>((items, more, total, last))
    };
    let (items, more, total, last) = match run.await {
        Ok(x) => x,
        Err(e) => return pages::internal(&e),
    };
    let _ = audit(
        &state,
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
                        a.item-link href=(it.href()) data-index=(n) {
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
    let run = async {
        // Where the current item sits in this queue: its open row's sort key
        // when it is still open there, else (just decided, or escalated
        // away) the key it had, from the item itself.
        let after = match q.after.as_deref().and_then(split_key) {
            Some((k, id)) => {
                let key = format!("{k}:{id}");
                match (
                    open_queue(&state, &key).await?,
                    open_cursor(&state, &key).await?,
                ) {
                    (Some(qn), Some(c)) if qn == kind => Some(c),
                    _ => find_item(&state, k, id)
                        .await?
                        .map(|it| cursor_of(kind, &it)),
                }
            }
            None => None,
        };
        let mut next = open_page(&state, &reviewer, kind, after.as_ref(), 1).await?;
        if next.is_empty() && after.is_some() {
            next = open_page(&state, &reviewer, kind, None, 1).await?;
        }
        Ok::<_, anyhow::Error>(next.into_iter().next().map(|(it, _)| it))
    };
    match run.await {
        Ok(Some(i)) => Redirect::to(&i.href()).into_response(),
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

async fn revealed(
    state: &AppState,
    reviewer: &Reviewer,
    item: &str,
) -> anyhow::Result<HashSet<String>> {
    Ok(
        store::revealed(&state.store, reviewer.id, item, super::day_of(now_ms()))
            .await?
            .into_iter()
            .collect(),
    )
}

/// Reveals this reviewer has used today.
pub async fn reveals_today(state: &AppState, reviewer: &Reviewer) -> anyhow::Result<i64> {
    Ok(store::reveals_on(&state.store, reviewer.id, super::day_of(now_ms())).await?)
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
    let Some(it) = find_item(state, kind, id).await? else {
        return Ok(pages::error(
            StatusCode::NOT_FOUND,
            "No such item (it may have been cleared).",
        ));
    };
    let key = it.key();
    audit(
        state,
        &reviewer.actor(),
        "console.item.view",
        json!({"item": key}),
    )
    .await?;
    let d = detail(state, it).await?;
    let sim = similar(state, &d).await?;
    let shown = revealed(state, reviewer, &key).await?;
    let used = reveals_today(state, reviewer).await?;
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
        let open = revealed(&state, &reviewer, &key).await?.contains(&media);
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

fn split_key(key: &str) -> Option<(&'static str, &str)> {
    let (k, id) = key.split_once(':')?;
    Some((kind_static(k)?, id))
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
        let used = reveals_today(&state, &reviewer).await?;
        if used >= budget {
            audit(
                &state,
                &reviewer.actor(),
                "console.reveal.refused",
                json!({"item": key, "media": media, "used": used, "budget": budget}),
            )
            .await?;
            return Ok(pages::error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "You have revealed {used} images today, your daily budget. The rest stay blurred until tomorrow; please take a break, or ask a lead to take this item."
                ),
            ));
        }
        let s = &state.store;
        let now = now_ms();
        let mut tx = s.begin().await?;
        store::insert_reveal(s, &mut tx, reviewer.id, key, media, super::day_of(now), now).await?;
        db::audit(
            s,
            &mut tx,
            &reviewer.actor(),
            "console.reveal",
            None,
            None,
            json!({"item": key, "media": media, "used": used + 1, "budget": budget}),
        )
        .await?;
        tx.commit().await?;
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
    let key = field(&form, "item");
    let Some((kind, _)) = split_key(key) else {
        return pages::error(StatusCode::BAD_REQUEST, "No such item.");
    };
    let s = &state.store;
    let run = async {
        store::hide(s, reviewer.id, key).await?;
        audit(
            &state,
            &reviewer.actor(),
            "console.hide",
            json!({"item": key}),
        )
        .await?;
        Ok::<_, anyhow::Error>(Redirect::to(&format!("/console/queue?kind={kind}")).into_response())
    };
    run.await.unwrap_or_else(|e| pages::internal(&e))
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
    match decide_inner(&state, &reviewer, &form).await {
        Ok(r) => r,
        Err(e) => pages::internal(&e),
    }
}

async fn decide_inner(
    state: &AppState,
    reviewer: &Reviewer,
    form: &HashMap<String, String>,
) -> anyhow::Result<Response> {
    let key = field(form, "item");
    let decision = field(form, "decision");
    let note = Some(field(form, "note")).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.len() > 2000) {
        return Ok(pages::error(
            StatusCode::BAD_REQUEST,
            "The note is at most 2000 bytes.",
        ));
    }
    let Some((kind, id)) = split_key(key) else {
        return Ok(pages::error(StatusCode::BAD_REQUEST, "No such item."));
    };
    let Some(it) = find_item(state, kind, id).await? else {
        return Ok(pages::error(StatusCode::NOT_FOUND, "No such item."));
    };
    let category = match decision {
        "confirm" => {
            let c = field(form, "category");
            if !CATEGORIES.contains(&c) {
                return Ok(pages::error(
                    StatusCode::BAD_REQUEST,
                    "Choose a category to confirm.",
                ));
            }
            Some(c)
        }
        "dismiss" | "escalate" => None,
        "clear" | "add_to_bank" => {
            if let Err(r) = reviewer.require(ConsoleRole::Lead) {
                return Ok(r);
            }
            None
        }
        _ => return Ok(pages::error(StatusCode::BAD_REQUEST, "Unknown decision.")),
    };
    // Only an open item can be decided (a re-flagged account is open again
    // whatever was decided on its earlier flag); an escalated one by a lead.
    // One exception: a flagged account (`find_item` found it flagged) can
    // always be cleared by a lead, also after a confirm or dismiss, since
    // clearing is the one way to unflag it.
    let open = open_queue(state, &it.key()).await?;
    if open.is_none() && !(decision == "clear" && kind == "account") {
        return Ok(pages::error(
            StatusCode::CONFLICT,
            "This item was already decided.",
        ));
    }
    let escalated = open.as_deref() == Some("escalated");
    if escalated && let Err(r) = reviewer.require(ConsoleRole::Lead) {
        return Ok(r);
    }
    let mut effect = json!(null);
    match decision {
        "clear" => {
            if kind != "account" {
                return Ok(pages::error(
                    StatusCode::BAD_REQUEST,
                    "Only a flagged account can be cleared.",
                ));
            }
            bulwark_service::vouchers::clear_account(
                &state.store,
                &reviewer.actor(),
                id,
                note.map(str::to_string),
            )
            .await
            .map_err(|e| anyhow::anyhow!("clearing: {}", e.message))?;
            effect = json!({"cleared": id});
        }
        "add_to_bank" => {
            let bank = field(form, "bank");
            let d = detail(state, it.clone()).await?;
            let b = crate::api::bank_or_404(state, bank)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let mut added = Vec::new();
            for h in &d.pdq {
                let caller = crate::auth::Caller {
                    key_id: reviewer.actor(),
                    role: crate::auth::Role::Curator,
                    device: None,
                };
                let s = &state.store;
                let mut tx = s.begin().await?;
                let c = db::NewContent {
                    kind: "signals",
                    dedup_key: format!("pdq:{h}"),
                    note: Some(format!("added from the console ({key})")),
                    metadata: None,
                    source: Some("console".into()),
                    signals: vec![db::SignalRow {
                        signal_type: "pdq".into(),
                        value: h.clone(),
                        quality: None,
                    }],
                    frames: Vec::new(),
                    frame_extras: Vec::new(),
                };
                if let Some(cid) = db::insert_content(s, &mut tx, b.id, &caller.key_id, &c).await? {
                    crate::api::commit_bank_change(
                        state,
                        tx,
                        &caller,
                        "content.add",
                        (b.id, &b.name),
                        Some(cid),
                        json!({"source": "console", "item": key}),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                    added.push(cid);
                }
            }
            effect = json!({"bank": b.name, "content_ids": added});
        }
        _ => {}
    }
    super::actions::record_decision(
        state,
        &decisions::Decision {
            kind,
            id,
            decision,
            category,
            note,
            banks: &it.banks,
            distances: &it.distances,
            queued_at: it.queued_at,
            reviewer: &reviewer.name,
            actor: &reviewer.actor(),
            effect,
        },
    )
    .await?;
    let queue_kind = if escalated { "escalated" } else { kind };
    Ok(Redirect::to(&format!("/console/next?kind={queue_kind}&after={key}")).into_response())
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
    let bank = field(&form, "bank").to_string();
    let dist = field(&form, "max_distance");
    let run = async {
        anyhow::ensure!(
            db::bank_by_name(&state.store, &bank).await?.is_some(),
            "no bank named {bank:?}"
        );
        let d: Option<i64> = if dist.is_empty() {
            None
        } else {
            Some(dist.parse()?)
        };
        set_review_policy(&state.store, &bank, d).await?;
        audit(
            &state,
            &reviewer.actor(),
            "console.policy",
            json!({"bank": bank, "max_distance": d}),
        )
        .await?;
        Ok::<_, anyhow::Error>(Redirect::to("/console/admin").into_response())
    };
    run.await
        .unwrap_or_else(|e| pages::error(StatusCode::BAD_REQUEST, &format!("{e}")))
}

/// Sets (or with `None` removes) a bank's review policy: matches at this
/// PDQ distance or closer (and every exact MD5/SHA-256 match) are queued.
pub async fn set_review_policy(
    store: &db::Store,
    bank: &str,
    max_distance: Option<i64>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        max_distance.is_none_or(|d| (0..=256).contains(&d)),
        "max_distance is 0–256"
    );
    store::set_policy(store, bank, max_distance).await?;
    Ok(())
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
    let policies: HashMap<String, i64> = store::policies(s).await?.into_iter().collect();
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
