//! `POST /v1/hash` and `POST /v1/match`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use bulwark_banks::{Signal, SignalType};
use bulwark_service::matching::{Match, Matcher};
use serde::Serialize;
use serde_json::Value;

use super::{Upload, bank_filter};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::media::Hashed;

pub async fn hash(
    State(state): State<AppState>,
    caller: Caller,
    upload: Upload,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Matcher)?;
    let Upload::File {
        file: Some(file), ..
    } = upload
    else {
        return Err(ApiError::bad_request(
            "send the media as multipart/form-data in a `file` field",
        ));
    };
    let _slot = state.media.upload_slot().await?;
    Ok(Json(state.media.hash_to_show(file).await?.to_json()))
}

/// The service's matcher over this node's state.
fn matcher(state: &AppState) -> Matcher<'_> {
    Matcher {
        store: &state.store,
        catalog: &state.catalog,
        metrics: &state.metrics,
    }
}

fn to_json(matches: Vec<Match>) -> Vec<Value> {
    matches
        .into_iter()
        .map(|m| serde_json::to_value(m).unwrap_or_default())
        .collect()
}

/// Every match of the given signals ([`Matcher::signals`]), as JSON.
pub async fn match_signals(
    state: &AppState,
    signals: &[Signal],
    pdq_quality: Option<u32>,
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Value>, ApiError> {
    Ok(to_json(
        matcher(state).signals(signals, pdq_quality, banks).await?,
    ))
}

/// Every match of an uploaded file's hashes ([`Matcher::hashed`]), as JSON.
pub async fn match_hashed(
    state: &AppState,
    hashed: &Hashed,
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Value>, ApiError> {
    Ok(to_json(matcher(state).hashed(hashed, banks).await?))
}

/// Matches through extra hashes that `found` does not hold
/// ([`Matcher::extras`]), as JSON.
pub fn match_extras(
    state: &AppState,
    full: (bulwark_pdq::PdqHash, u32),
    extras: &[bulwark_pdq::KindHash],
    found: &[Value],
    banks: Option<&HashSet<String>>,
) -> Vec<Value> {
    let seen: HashSet<(&str, i64)> = found
        .iter()
        .filter_map(|j| Some((j["bank"].as_str()?, j["content_id"].as_i64()?)))
        .collect();
    to_json(matcher(state).extras(full, extras, &seen, banks))
}

fn unknown_banks(state: &AppState, banks: Option<&HashSet<String>>) -> Result<(), ApiError> {
    let Some(banks) = banks else { return Ok(()) };
    let known = state.catalog.bank_names();
    let mut unknown: Vec<&str> = banks
        .iter()
        .filter(|b| !known.contains(*b))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(ApiError::bad_request(format!(
        "no such bank: {}",
        unknown.join(", ")
    )))
}

/// The answer of `POST /v1/match`.
#[derive(Serialize)]
pub struct MatchAnswer {
    /// An upload's hashes (a video without its frame lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
    /// Every match.
    matches: Vec<Value>,
    /// With `text`: the signals computed from it (`null` when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    text_signals: Option<Value>,
}

/// `POST /v1/match`: an upload (multipart `file`), or signals and text (JSON).
pub async fn match_(
    State(state): State<AppState>,
    caller: Caller,
    upload: Upload,
) -> ApiResult<Json<MatchAnswer>> {
    caller.require(Role::Matcher)?;
    match upload {
        Upload::File { file, fields } => {
            let file = file
                .ok_or_else(|| ApiError::bad_request("the multipart body has no `file` field"))?;
            let banks = bank_filter(
                fields
                    .get("banks")
                    .map(|b| Value::String(b.clone()))
                    .as_ref(),
            )?;
            unknown_banks(&state, banks.as_ref())?;
            let _slot = state.media.upload_slot().await?;
            let hashed = state.media.hash(file.clone()).await?;
            let matches = match_hashed(&state, &hashed, banks.as_ref()).await?;
            crate::console::items::record_matches(
                &state,
                &caller.key_id,
                Some((&hashed, &file)),
                &matches,
            )
            .await;
            Ok(Json(MatchAnswer {
                query: Some(hashed.summary_json()),
                matches,
                text_signals: None,
            }))
        }
        Upload::Json(v) => {
            let obj = v
                .as_object()
                .ok_or_else(|| ApiError::bad_request("expected a JSON object"))?;
            for k in obj.keys() {
                if !["signals", "banks", "text", "region", "language"].contains(&k.as_str()) {
                    return Err(ApiError::bad_request(format!("unknown field {k:?}")));
                }
            }
            let banks = bank_filter(obj.get("banks"))?;
            unknown_banks(&state, banks.as_ref())?;
            // Text signals (issue 18): `text` is analysed (text hash,
            // entities, rules); entity types in `signals` match exactly.
            let text = match obj.get("text") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if t.len() <= super::signals::MAX_TEXT => Some(t.as_str()),
                Some(_) => {
                    return Err(ApiError::bad_request(format!(
                        "`text` must be a string of at most {} bytes",
                        super::signals::MAX_TEXT
                    )));
                }
            };
            let opts = super::signals::options(obj.get("region"), obj.get("language"))?;
            let empty = serde_json::Map::new();
            let map = match obj.get("signals") {
                None if text.is_some() => &empty,
                v => v.and_then(Value::as_object).ok_or_else(|| {
                    ApiError::bad_request("`signals` must be an object like {\"pdq\": HEX}")
                })?,
            };
            if map.is_empty() && text.is_none() {
                return Err(ApiError::bad_request("no signals given"));
            }
            let mut signals = Vec::new();
            let mut text_signals = Vec::new();
            for (k, v) in map {
                // A media type, else a text/entity type (`text_hash`, `phone`, …).
                let t: Result<SignalType, _> = match super::signals::text_type(k) {
                    Some(tt) => Err(tt),
                    None => Ok(k.parse().map_err(|_| {
                        ApiError::bad_request(
                            bulwark_banks::SignalError::UnknownAnyType(crate::error::snippet(k))
                                .to_string(),
                        )
                    })?),
                };
                let values: Vec<&str> = match v {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) if a.len() <= 1000 => a
                        .iter()
                        .map(|x| {
                            x.as_str().ok_or_else(|| {
                                ApiError::bad_request(format!("{k} values must be strings"))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "{k} must be a string or a list of at most 1000"
                        )));
                    }
                };
                match t {
                    Ok(t) => {
                        for v in values {
                            signals.push(
                                t.parse(v)
                                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
                            );
                        }
                    }
                    Err(tt) => super::signals::parse_text_signals(tt, &values, &mut text_signals)?,
                }
            }
            let mut matches = match_signals(&state, &signals, None, banks.as_ref()).await?;
            crate::console::items::record_matches(&state, &caller.key_id, None, &matches).await;
            if text.is_none() && text_signals.is_empty() {
                return Ok(Json(MatchAnswer {
                    query: None,
                    matches,
                    text_signals: None,
                }));
            }
            let (more, computed) =
                super::signals::match_text(&state, text, &opts, &text_signals, banks.as_ref())
                    .await?;
            // Text, entity and rule matches go to the console's match queue
            // by the same bank review policy, with their explanations.
            crate::console::items::record_matches(&state, &caller.key_id, None, &more).await;
            matches.extend(more);
            Ok(Json(MatchAnswer {
                query: None,
                matches,
                text_signals: text.is_some().then_some(computed),
            }))
        }
    }
}
