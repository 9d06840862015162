//! Text and entity signals over HTTP (issue 18, docs/SIGNALS.md): signal
//! types, banks' rules (`/v1/banks/{bank}/rules`), rescue photo banks and
//! their reviewers (`/v1/rescue/…`), and the glue `/v1/match` and HMA
//! use. The operations are [`bulwark_service::signals`] (report intake's
//! text signals: [`bulwark_service::reports`]).

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bulwark_banks::TextSignal;
use bulwark_pdq::PdqHash;
use bulwark_service::signals::{
    self as service, NewRescueBank, NewRules, RescueBank, RescueBankInfo, RescuePhoto,
    RescuePhotoAdded, Rules, SignalTypeInfo,
};
use bulwark_signals::ExtractOptions;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{JsonBody, Upload};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};

pub use bulwark_service::signals::{
    MAX_TEXT, TEXT_HASH_RADIUS, TextIndexCache, options, parse_text_signals, text_type,
};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/signal_types", get(signal_types))
        .route(
            "/v1/banks/{bank}/rules",
            get(rules_get).put(rules_put).delete(rules_delete),
        )
        .route("/v1/rescue/banks", get(rescue_list).post(rescue_create))
        .route("/v1/rescue/banks/{bank}/photos", post(rescue_add))
        .route("/v1/rescue/reviewers", post(reviewer_grant))
        .route("/v1/rescue/reviewers/{key_id}", delete(reviewer_revoke))
}

fn context(state: &AppState) -> service::Context<'_> {
    service::Context {
        store: &state.store,
        catalog: &state.catalog,
        metrics: &state.metrics,
        text_index: &state.text_index,
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// The body of `GET /v1/signal_types`.
#[derive(Serialize)]
pub struct SignalTypes {
    /// Every signal type banks hold, with how it matches.
    signal_types: Vec<SignalTypeInfo>,
}

/// `GET /v1/signal_types`: every signal type banks hold, with how it matches.
pub async fn signal_types(caller: Caller) -> ApiResult<Json<SignalTypes>> {
    caller.require(Role::Matcher)?;
    Ok(Json(SignalTypes {
        signal_types: service::signal_types(),
    }))
}

/// [`service::match_text`] for the handlers that build their answers as JSON
/// values (`/v1/match`, HMA's lookup): the matches, and the signals computed
/// from the text (`null` without one).
pub async fn match_text(
    state: &AppState,
    text: Option<&str>,
    opts: &ExtractOptions,
    explicit: &[TextSignal],
    banks: Option<&HashSet<String>>,
) -> Result<(Vec<Value>, Value), ApiError> {
    let (matches, computed) =
        service::match_text(context(state), text, opts, explicit, banks).await?;
    Ok((
        matches.iter().map(to_json).collect::<Result<_, _>>()?,
        to_json(&computed)?,
    ))
}

// ---- rules ----

/// `PUT /v1/banks/{bank}/rules` (curator): sets the bank's rules and their language.
pub async fn rules_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
    JsonBody(body): JsonBody<NewRules>,
) -> ApiResult<Json<Rules>> {
    caller.require(Role::Curator)?;
    Ok(Json(
        service::put_rules(&state.store, &caller.key_id, &bank, body).await?,
    ))
}

/// `GET /v1/banks/{bank}/rules` (curator).
pub async fn rules_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
) -> ApiResult<Json<Rules>> {
    caller.require(Role::Curator)?;
    Ok(Json(service::get_rules(&state.store, &bank).await?))
}

/// `DELETE /v1/banks/{bank}/rules` (curator).
pub async fn rules_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Curator)?;
    service::delete_rules(&state.store, &caller.key_id, &bank).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- rescue photo banks ----

/// `POST /v1/rescue/banks` (admin): a photo bank for a rescue organisation.
pub async fn rescue_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<NewRescueBank>,
) -> ApiResult<(StatusCode, Json<RescueBank>)> {
    caller.require(Role::Admin)?;
    let bank = service::create_rescue_bank(&state.store, &caller.key_id, b).await?;
    Ok((StatusCode::CREATED, Json(bank)))
}

/// The body of `GET /v1/rescue/banks`.
#[derive(Serialize)]
pub struct RescueBankList {
    /// Every rescue bank, by name.
    items: Vec<RescueBankInfo>,
}

/// `GET /v1/rescue/banks`: designated reviewers, or an admin.
pub async fn rescue_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<RescueBankList>> {
    Ok(Json(RescueBankList {
        items: service::rescue_banks(&state.store, &caller).await?,
    }))
}

/// The answer of `POST /v1/rescue/banks/{bank}/photos`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum PhotoAnswer {
    /// Added.
    Added(RescuePhotoAdded),
    /// The bank holds that hash already.
    Duplicate {
        /// Always true.
        duplicate: bool,
    },
}

/// `POST /v1/rescue/banks/{bank}/photos`: an admin or a designated reviewer
/// adds a photo (multipart `file`, hashed here) or its PDQ hash (JSON
/// `{"pdq": HEX, "quality": N, "note": ".."}`).
pub async fn rescue_add(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank): Path<String>,
    upload: Upload,
) -> ApiResult<(StatusCode, Json<PhotoAnswer>)> {
    let bank_id = service::rescue_bank_for_adding(&state.store, &caller, &bank).await?;
    let photo = match upload {
        Upload::File { file, fields } => {
            let file = file
                .ok_or_else(|| ApiError::bad_request("the multipart body has no `file` field"))?;
            let _slot = state.media.upload_slot().await?;
            match state.media.hash_to_show(file).await? {
                crate::media::Hashed::Photo { pdq, quality, .. } => RescuePhoto {
                    pdq,
                    quality: Some(quality),
                    note: fields.get("note").cloned(),
                },
                crate::media::Hashed::Video { .. } => {
                    return Err(ApiError::bad_request("rescue banks hold photos only"));
                }
            }
        }
        Upload::Json(v) => {
            let pdq: PdqHash = v["pdq"]
                .as_str()
                .ok_or_else(|| ApiError::bad_request("`pdq` (64 hex digits) is required"))?
                .parse()
                .map_err(|e| ApiError::bad_request(format!("pdq: {e}")))?;
            let quality = match &v["quality"] {
                Value::Null => None,
                q => Some(
                    q.as_u64()
                        .filter(|q| *q <= 100)
                        .ok_or_else(|| ApiError::bad_request("quality must be 0..=100"))?
                        as u32,
                ),
            };
            RescuePhoto {
                pdq,
                quality,
                note: v["note"].as_str().map(str::to_string),
            }
        }
    };
    Ok(
        match service::add_rescue_photo(&state.store, &caller.key_id, bank_id, &bank, photo).await?
        {
            Some(added) => (StatusCode::CREATED, Json(PhotoAnswer::Added(added))),
            None => (
                StatusCode::OK,
                Json(PhotoAnswer::Duplicate { duplicate: true }),
            ),
        },
    )
}

/// The body of `POST /v1/rescue/reviewers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewerIn {
    key_id: String,
}

/// The answer of `POST /v1/rescue/reviewers`.
#[derive(Serialize)]
pub struct Reviewer {
    /// The key designated.
    key_id: String,
    /// Always true.
    rescue_reviewer: bool,
}

/// `POST /v1/rescue/reviewers` (admin): designates a key as a rescue reviewer.
pub async fn reviewer_grant(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(r): JsonBody<ReviewerIn>,
) -> ApiResult<Json<Reviewer>> {
    caller.require(Role::Admin)?;
    service::grant_reviewer(&state.store, &caller.key_id, &r.key_id).await?;
    Ok(Json(Reviewer {
        key_id: r.key_id,
        rescue_reviewer: true,
    }))
}

/// `DELETE /v1/rescue/reviewers/{key_id}` (admin).
pub async fn reviewer_revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    service::revoke_reviewer(&state.store, &caller.key_id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
