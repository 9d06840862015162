//! Text and entity matches in the console (issue 18): what matched and why.
//!
//! A queue item that came from a text or entity match — an upload/API match
//! recorded from `POST /v1/match` with `text` or entity signals, or a
//! verified report whose messages' text matched a bank at intake — shows
//! each match's bank, signal (entity kind, text hash or rule), normalised
//! value, the part of the text it was found in, and the explanation (exact
//! canonical value; distance within the radius; rule id, description and
//! language, review only).
//!
//! Text from messages and ads is shown safely: escaped by the template
//! (never markup), never turned into links (URLs stay text, nothing has an
//! `href` but the console's own), isolated from the page's direction
//! (`<bdi>`, so right-to-left text cannot reorder the table around it), and
//! invisible or direction-changing characters (bidi overrides and isolates,
//! zero-width spaces, control characters) are shown as visible `[U+202E]`
//! markers instead of acting on the display.
//!
//! The evidence package and CyberTipline report take an item's matches from
//! `bulwark_service::review::evidence::export_matches` and
//! `bulwark_service::review::cybertip::text_matches_line`.
//! What is kept when a match is recorded (the excerpt, cut to
//! [`EXCERPT_CHARS`]) is `bulwark_service::review::matches`.
//! Kept apart from `items.rs`: that file only calls [`match_facts`],
//! [`report_facts`] and [`shown`].
//! Rescue photo matches are not shown here: console reviewers are not the
//! designated rescue reviewers (docs/SIGNALS.md, rescue policy).

use bulwark_service::review::evidence;
use maud::{Markup, html};
use serde_json::Value;

use crate::AppState;
use crate::db::console::text as store;

pub use bulwark_service::review::matches::EXCERPT_CHARS;

/// Whether a character is invisible or changes the display direction (and
/// so is shown as a `[U+XXXX]` marker). Zero-width joiner and non-joiner
/// are kept: they are ordinary in Persian/Kurdish script and emoji.
fn hidden_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c,
            '\u{00AD}'                      // soft hyphen
            | '\u{034F}'                    // combining grapheme joiner
            | '\u{061C}'                    // Arabic letter mark
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{180E}'                    // Mongolian vowel separator
            | '\u{200B}'                    // zero-width space
            | '\u{200E}' | '\u{200F}'       // LRM, RLM
            | '\u{2028}' | '\u{2029}'       // line/paragraph separator
            | '\u{202A}'..='\u{202E}'       // embeddings and overrides
            | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
            | '\u{2066}'..='\u{206F}'       // isolates, deprecated formats
            | '\u{FEFF}'                    // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotation
            | '\u{E0000}'..='\u{E007F}') // tags
}

/// Text from a message or an ad, shown safely: escaped, not linked,
/// direction-isolated, with invisible characters made visible.
pub fn shown(s: &str) -> Markup {
    let mut parts: Vec<(bool, String)> = Vec::new();
    for c in s.chars() {
        let hidden = hidden_char(c);
        let piece = if hidden {
            format!("[U+{:04X}]", c as u32)
        } else {
            c.to_string()
        };
        match parts.last_mut() {
            Some((h, t)) if *h == hidden && !hidden => t.push_str(&piece),
            _ => parts.push((hidden, piece)),
        }
    }
    html! {
        bdi.untrusted-text dir="auto" translate="no" {
            @for (hidden, t) in &parts {
                @if *hidden { span.hidden-char title="invisible or direction-changing character" { (t) } }
                @else { (t) }
            }
        }
    }
}

/// What a signal type is, in words.
fn signal_words(t: &str) -> String {
    match t {
        "text_hash" => "text hash (near-duplicate ad)".into(),
        "rule" => "keyword/regex rule".into(),
        "" => "unknown".into(),
        k if k.parse::<bulwark_signals::EntityKind>().is_ok() => format!("entity: {k}"),
        k => k.into(),
    }
}

/// One match (the `/v1/match` or report `matches` shape) as a table row:
/// bank, signal, normalised value, where in the text, why.
fn match_row(m: &Value) -> Markup {
    let e = &m["explanation"];
    let t = m["signal_type"].as_str().unwrap_or("");
    let span = e["span"]
        .as_array()
        .filter(|s| s.len() == 2)
        .map(|s| format!("bytes {}–{}", s[0], s[1]));
    let content = m["content_id"].as_i64().filter(|c| *c > 0);
    let value = match t {
        "rule" => e["rule"].as_str().unwrap_or(""),
        _ => e["value"]
            .as_str()
            .or(m["query_signal"].as_str())
            .unwrap_or(""),
    };
    html! {
        tr.text-match data-signal=(t) {
            td { (m["bank"].as_str().unwrap_or("")) }
            td { (signal_words(t)) }
            td.hash { (shown(value)) }
            td {
                @if let Some(x) = e["text"].as_str() { (shown(x)) }
                @else if t == "text_hash" { "the whole text" }
                @if let Some(s) = &span { br; span.small { (s) } }
            }
            td {
                @match t {
                    "text_hash" => {
                        "Near-duplicate of banked ad " (content.unwrap_or(0)) ": Hamming distance "
                        (m["distance"].as_i64().unwrap_or(0)) " ≤ radius " (e["radius"].as_i64().unwrap_or(0))
                        " bits (estimated shingle Jaccard similarity "
                        (format!("{:.2}", e["jaccard_estimate"].as_f64().unwrap_or(0.0))) ")."
                    }
                    "rule" => {
                        "Rule " code { (e["rule"].as_str().unwrap_or("")) }
                        @if let Some(d) = e["description"].as_str().filter(|d| !d.is_empty()) { " (" (d) ")" }
                        " of the bank's " (e["language"].as_str().unwrap_or("?")) " rules matched this span. "
                        strong { "Review only" } ": Bulwark takes no action on rule matches."
                    }
                    _ => {
                        "The " (e["entity"].as_str().unwrap_or(t)) " in the text, normalised, equals banked content "
                        (content.unwrap_or(0)) " exactly."
                    }
                }
            }
        }
    }
}

fn matches_table(matches: &[&Value]) -> Markup {
    html! {
        table.text-matches {
            thead { tr { th { "Bank" } th { "Signal" } th { "Normalised value" } th { "In the text" } th { "Why" } } }
            tbody { @for m in matches { (match_row(m)) } }
        }
    }
}

/// A recorded text match in the `/v1/match` shape.
fn match_json(r: store::TextMatchRow) -> anyhow::Result<Value> {
    Ok(evidence::match_json(r)?)
}

/// The text/entity part of a recorded match's page (empty for a media match).
pub async fn match_facts(state: &AppState, match_id: i64) -> anyhow::Result<Markup> {
    let s = &state.store;
    let Some(r) = store::text_match(s, match_id).await? else {
        return Ok(html! {});
    };
    let m = match_json(r)?;
    Ok(html! {
        h3 #text-match-h { "What matched in the text" }
        p.hint { "Only the matched part of the query text is kept (at most " (EXCERPT_CHARS)
            " characters), never the whole text. Text is shown as text: nothing in it is a link." }
        (matches_table(&[&m]))
    })
}

/// A report's stored text signals: per message, its matches and entities.
async fn report_rows(state: &AppState, report_id: i64) -> anyhow::Result<Vec<(i64, Value, Value)>> {
    Ok(evidence::report_rows(&state.store, report_id).await?)
}

/// The text-signal part of a report's page: per message, what matched and
/// why, and the entities found in it.
pub async fn report_facts(state: &AppState, report_id: i64) -> anyhow::Result<Markup> {
    let rows = report_rows(state, report_id).await?;
    if rows.is_empty() {
        return Ok(html! {});
    }
    Ok(html! {
        h3 #text-signals-h { "Text and entity matches (message text)" }
        p.hint { "Computed when the report arrived: each verified message's text was hashed, its phone numbers, \
            handles, invite links, wallets and URLs extracted and normalised, and all matched against every bank. \
            Rule matches are for review only. Text is shown as text: nothing in it is a link." }
        @for (idx, signals, matches) in &rows {
            @let list: Vec<&Value> = matches.as_array().into_iter().flatten().collect();
            @let entities: Vec<&Value> = signals["entities"].as_array().into_iter().flatten().collect();
            section.text-signals data-message=(idx) {
                h4 { "Message " (idx) }
                @if list.is_empty() { p { "No bank matched this message's text." } }
                @else { (matches_table(&list)) }
                @if !entities.is_empty() {
                    p.small { "Entities found: "
                        @for (n, e) in entities.iter().enumerate() {
                            @if n > 0 { ", " }
                            (e["kind"].as_str().unwrap_or("")) " " span.hash { (shown(e["value"].as_str().unwrap_or(""))) }
                        }
                    }
                }
            }
        }
    })
}
