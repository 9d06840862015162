//! `POST /v1/hash` and `POST /v1/match`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use bulwark_banks::{Signal, SignalType};
use serde_json::{Value, json};
use sqlx::Row;

use super::{Upload, bank_filter};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::catalog::Hit;
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
    Ok(Json(state.media.hash(file).await?.to_json()))
}

fn hit_json(h: &Hit, signal_type: &str) -> Value {
    let mut j = json!({
        "bank": &*h.bank,
        "content_id": h.content_id,
        "signal_type": signal_type,
        "distance": h.distance,
    });
    if h.video_frame {
        j["video_frame"] = json!(true);
    }
    j
}

/// Exact matches of an MD5 or SHA-256 value.
pub async fn exact(
    state: &AppState,
    s: &Signal,
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Hit>, ApiError> {
    let st = &state.store;
    let rows = sqlx::query(
        &st.sql("SELECT bank_id, content_id FROM signals WHERE signal_type = ? AND value = ?"),
    )
    .bind(s.signal_type().name())
    .bind(s.value())
    .fetch_all(&st.pool)
    .await?;
    let hits = rows
        .iter()
        .map(|r| Ok((r.try_get("bank_id")?, r.try_get("content_id")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(state.catalog.filter_exact(hits, banks))
}

/// Every match of the given signals; `pdq_quality` is the quality of the PDQ
/// signals when known (an upload's), checked against each bank's floor.
pub async fn match_signals(
    state: &AppState,
    signals: &[Signal],
    pdq_quality: Option<u32>,
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for s in signals {
        let hits = match s {
            Signal::Pdq(h) => state.catalog.search_usable(h, pdq_quality, banks),
            other => exact(state, other, banks).await?,
        };
        for h in &hits {
            state.metrics.matched(&h.bank, 1);
        }
        out.extend(hits.iter().map(|h| {
            let mut j = hit_json(h, s.signal_type().name());
            j["query_signal"] = json!(s.value());
            j
        }));
    }
    Ok(out)
}

/// Every match of an uploaded file's hashes: PDQ, MD5 and SHA-256 for an
/// image; MD5, SHA-256 and the vPDQ rule over its frames for a video.
pub async fn match_hashed(
    state: &AppState,
    hashed: &Hashed,
    banks: Option<&HashSet<String>>,
) -> Result<Vec<Value>, ApiError> {
    match hashed {
        Hashed::Photo {
            pdq,
            quality,
            md5,
            sha256,
            extras,
        } => {
            let mut m = match_signals(
                state,
                &[
                    Signal::Pdq(*pdq),
                    Signal::Md5(*md5),
                    Signal::Sha256(*sha256),
                ],
                Some(*quality),
                banks,
            )
            .await?;
            m.extend(match_extras(state, (*pdq, *quality), extras, &m, banks));
            Ok(m)
        }
        Hashed::Video {
            frames,
            md5,
            sha256,
        } => {
            let mut m = match_signals(
                state,
                &[Signal::Md5(*md5), Signal::Sha256(*sha256)],
                None,
                banks,
            )
            .await?;
            // The vPDQ rule compares every frame pair (rayon inside): a
            // blocking thread, not the async runtime.
            let (catalog, frames, only) = (
                std::sync::Arc::clone(&state.catalog),
                frames.clone(),
                banks.cloned(),
            );
            let hits = tokio::task::spawn_blocking(move || {
                let rule = bulwark_vpdq::MatchRule::default();
                catalog.match_video(&frames, &rule, only.as_ref())
            })
            .await
            .map_err(ApiError::internal)?;
            for v in hits {
                state.metrics.matched(&v.bank, 1);
                m.push(json!({
                    "bank": &*v.bank,
                    "content_id": v.content_id,
                    "signal_type": "vpdq",
                    "query_percent": v.query_percent,
                    "compared_percent": v.compared_percent,
                }));
            }
            Ok(m)
        }
    }
}

/// Matches of an upload's hashes through extra hashes, on either side, that
/// its plain PDQ, MD5 and SHA-256 did not already find: the query's full
/// hash and extras against banked full hashes and banked extras, under the
/// "both sides" pairing rules (docs/DETECTION.md); each banked item once,
/// through its closest pair, reported with `hash_kind` (the query's kind) and
/// `bank_hash_kind` (the banked hash's). Each query hash passes the bank's
/// quality floor with its own quality.
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
    let mut query = Vec::with_capacity(1 + extras.len());
    query.push(bulwark_pdq::KindHash {
        kind: bulwark_pdq::HashKind::Full,
        hash: full.0,
        quality: full.1,
        rect: bulwark_pdq::Rect {
            x: 0,
            y: 0,
            width: 0,
            height: 0,
        },
    });
    query.extend(
        extras
            .iter()
            .filter(|e| e.kind != bulwark_pdq::HashKind::Full),
    );
    state
        .catalog
        .search_multi(&query, bulwark_pdq::Pairing::Both, banks)
        .into_iter()
        .filter(|m| !seen.contains(&(&*m.hit.bank, m.hit.content_id)))
        .filter(|m| {
            (m.query, m.bank_kind) != (bulwark_pdq::HashKind::Full, bulwark_pdq::HashKind::Full)
        })
        .map(|m| {
            state.metrics.matched(&m.hit.bank, 1);
            let label = if m.query == bulwark_pdq::HashKind::Full {
                m.bank_kind
            } else {
                m.query
            };
            state.metrics.matched_extra(&m.hit.bank, label);
            let mut j = hit_json(&m.hit, "pdq");
            j["query_signal"] = json!(m.query_hash.to_string());
            j["hash_kind"] = json!(m.query.as_str());
            j["bank_hash_kind"] = json!(m.bank_kind.as_str());
            j
        })
        .collect()
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

pub async fn match_(
    State(state): State<AppState>,
    caller: Caller,
    upload: Upload,
) -> ApiResult<Json<Value>> {
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
            Ok(Json(
                json!({ "query": hashed.summary_json(), "matches": matches }),
            ))
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
                return Ok(Json(json!({ "matches": matches })));
            }
            let (more, computed) =
                super::signals::match_text(&state, text, &opts, &text_signals, banks.as_ref())
                    .await?;
            // Text, entity and rule matches go to the console's match queue
            // by the same bank review policy, with their explanations.
            crate::console::items::record_matches(&state, &caller.key_id, None, &more).await;
            matches.extend(more);
            let mut out = json!({ "matches": matches });
            if text.is_some() {
                out["text_signals"] = computed;
            }
            Ok(Json(out))
        }
    }
}
