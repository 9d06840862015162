//! The match path's hook into the console: which matches of `POST
//! /v1/match` are kept for review, and what is kept with them. A bank's
//! review policy ([`super::policy`]) selects its matches at or under a
//! distance; each selected match is recorded with the query's hashes, a
//! grey thumbnail of an uploaded photo (never the file), the explanation of
//! a text, entity or rule match (its excerpt cut to [`EXCERPT_CHARS`]), and
//! for an uploaded video its frame strip ([`super::media`]).

use bulwark_store::Store;
use bulwark_store::console::{items as store, text as text_store};
use bulwark_store::now_ms;
use serde_json::Value;

use super::media::{self, REVEALED_SIDE, StripOptions};
use crate::error::{Error, Result};
use crate::media::Hashed;

/// Longest excerpt of text kept with a recorded match (characters).
pub const EXCERPT_CHARS: usize = 200;

/// Longest query signal kept with a recorded match (characters).
pub const QUERY_SIGNAL_CHARS: usize = 2048;

/// Records the `matches` (as `POST /v1/match` answers them: `bank`,
/// `content_id`, `signal_type`, `distance`, and for text matches
/// `explanation`, `query_signal`, `review_only`) that their bank's review
/// policy selects, by `actor`, for the query `query` (an upload's hashes and
/// its bytes; `None` for hashes or text sent as JSON). Answers the ids of
/// the recorded matches, in the order of `matches`.
pub async fn record(
    s: &Store,
    strips: &StripOptions,
    actor: &str,
    query: Option<(&Hashed, &bytes::Bytes)>,
    matches: &[Value],
) -> Result<Vec<i64>> {
    if matches.is_empty() {
        return Ok(Vec::new());
    }
    let policies = super::policy::all(s).await?;
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
        return Ok(Vec::new());
    }
    let summary = query.map(|(h, _)| h.summary_json()).unwrap_or(Value::Null);
    let thumb = match query {
        Some((Hashed::Photo { .. }, file)) => {
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                bulwark_pdq::decode(&file, &bulwark_pdq::Limits::default())
                    .ok()
                    .and_then(|img| media::thumbnail(&img, REVEALED_SIDE).ok())
            })
            .await
            .map_err(Error::internal)?
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
        explanation(s, id, m).await?;
        ids.push(id);
    }
    // A video: keep its frame strip (never the file).
    if let Some((Hashed::Video { .. }, file)) = query {
        media::keep_for_matches(s, strips, file.to_vec(), &ids).await?;
    }
    Ok(ids)
}

/// Keeps the explanation of a recorded text/entity/rule match (its excerpt
/// cut to [`EXCERPT_CHARS`]); nothing for a media match.
async fn explanation(s: &Store, match_id: i64, m: &Value) -> Result<()> {
    let Some(e) = m.get("explanation").filter(|e| e.is_object()) else {
        return Ok(());
    };
    let mut e = e.clone();
    if let Some(t) = e["text"].as_str() {
        e["text"] = Value::String(t.chars().take(EXCERPT_CHARS).collect());
    }
    let q = m["query_signal"]
        .as_str()
        .map(|q| q.chars().take(QUERY_SIGNAL_CHARS).collect::<String>());
    text_store::insert_text_match(
        s,
        &text_store::NewTextMatch {
            match_id,
            query_signal: q,
            explanation: e.to_string(),
            review_only: m["review_only"].as_bool().unwrap_or(false),
        },
    )
    .await?;
    Ok(())
}
