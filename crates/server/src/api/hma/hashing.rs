//! HMA hashing: `GET /h/hash?url=` and `POST /h/hash` (a multipart upload
//! whose field is named after the content type: `photo` or `video`), and
//! the hashing of media for the other HMA routes.
//!
//! HMA's signal types per content type: a photo gives `pdq`; a video gives
//! `video_md5` (the MD5 of the file's bytes, as HMA computes it). Content
//! banked from a photo also keeps Bulwark's MD5 and SHA-256 of the file.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use bulwark_banks::Signal;
use bytes::Bytes;
use md5::Digest;
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::api::content::from_hashed;
use crate::auth::{Caller, Role};
use crate::db::{NewContent, SignalRow};
use crate::error::{ApiError, ApiResult};
use crate::media::Hashed;

/// A multipart form: its files (field name, bytes) and text fields.
pub struct Form {
    /// Fields sent with a file name.
    pub files: Vec<(String, Bytes)>,
    /// Other fields.
    pub fields: HashMap<String, String>,
}

/// A request body as the HMA routes accept it.
pub enum Body {
    /// `application/json`.
    Json(Value),
    /// `multipart/form-data`.
    Form(Form),
    /// No body.
    Empty,
}

/// Reads a JSON or multipart body (or none).
pub async fn read_body(req: Request, state: &AppState) -> Result<Body, ApiError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let mut files = Vec::new();
        let mut fields = HashMap::new();
        while let Some(field) = mp.next_field().await? {
            let name = field.name().unwrap_or("").to_string();
            if field.file_name().is_some() {
                files.push((name, field.bytes().await?));
            } else {
                let text = field.text().await?;
                if text.len() > 1 << 20 {
                    return Err(ApiError::bad_request(format!(
                        "field `{name}` is over 1 MiB"
                    )));
                }
                fields.insert(name, text);
            }
        }
        return Ok(Body::Form(Form { files, fields }));
    }
    let bytes = axum::body::to_bytes(req.into_body(), crate::api::MAX_JSON_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the JSON body is over {} bytes", crate::api::MAX_JSON_BODY),
            )
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body::Empty);
    }
    serde_json::from_slice(&bytes)
        .map(Body::Json)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

/// A content type HMA knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// `photo`.
    Photo,
    /// `video`.
    Video,
}

impl ContentKind {
    /// Parses `photo` or `video`.
    pub fn parse(s: &str) -> Result<ContentKind, ApiError> {
        match s {
            "photo" => Ok(ContentKind::Photo),
            "video" => Ok(ContentKind::Video),
            _ => Err(ApiError::bad_request(format!(
                "no such content_type: '{}'",
                crate::error::snippet(s)
            ))),
        }
    }
}

/// Media hashed for the HMA routes.
pub struct Hashes {
    /// HMA's signals: `{"pdq": ...}` or `{"video_md5": ...}`.
    pub hma: BTreeMap<String, String>,
    /// The signals to match, as Bulwark's.
    pub signals: Vec<Signal>,
    /// The PDQ quality, for a photo.
    pub quality: Option<u32>,
    /// The content to bank.
    pub content: NewContent,
    /// A photo's extra PDQ hashes (banked with it; matched by `/m/lookup`).
    pub extras: Vec<bulwark_pdq::KindHash>,
}

fn select(h: &mut Hashes, types: Option<&str>) -> Result<(), ApiError> {
    let Some(types) = types else { return Ok(()) };
    let wanted: Vec<&str> = types
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    for t in &wanted {
        if !h.hma.contains_key(*t) {
            return Err(ApiError::bad_request(format!(
                "signal type '{}' doesn't exist or is disabled",
                crate::error::snippet(t)
            )));
        }
    }
    if wanted.is_empty() {
        return Err(ApiError::bad_request("empty signal type selection"));
    }
    h.hma.retain(|k, _| wanted.contains(&k.as_str()));
    h.signals
        .retain(|s| wanted.contains(&super::hma_type_name(s.signal_type())));
    Ok(())
}

/// Hashes bytes as a content type.
pub async fn hash_bytes(
    state: &AppState,
    kind: ContentKind,
    bytes: Bytes,
    types: Option<&str>,
) -> Result<Hashes, ApiError> {
    let mut h = match kind {
        ContentKind::Photo => {
            let _slot = state.media.upload_slot().await?;
            match state.media.hash_for_bank(bytes).await? {
                hashed @ Hashed::Photo { pdq, quality, .. } => Hashes {
                    hma: BTreeMap::from([("pdq".to_string(), pdq.to_string())]),
                    signals: vec![Signal::Pdq(pdq)],
                    quality: Some(quality),
                    content: from_hashed(&hashed),
                    extras: match hashed {
                        Hashed::Photo { extras, .. } => extras,
                        Hashed::Video { .. } => Vec::new(),
                    },
                },
                Hashed::Video { .. } => {
                    return Err(ApiError::bad_media(
                        "this is a video; send it as content type `video`",
                    ));
                }
            }
        }
        ContentKind::Video => {
            let md5: [u8; 16] = md5::Md5::digest(&bytes).into();
            let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
            Hashes {
                hma: BTreeMap::from([("video_md5".to_string(), hex::encode(md5))]),
                signals: vec![Signal::Md5(md5)],
                quality: None,
                content: NewContent {
                    kind: "video",
                    dedup_key: format!("sha256:{}", hex::encode(sha)),
                    note: None,
                    metadata: None,
                    source: None,
                    signals: vec![
                        SignalRow {
                            signal_type: "md5".into(),
                            value: hex::encode(md5),
                            quality: None,
                        },
                        SignalRow {
                            signal_type: "sha256".into(),
                            value: hex::encode(sha),
                            quality: None,
                        },
                    ],
                    frames: Vec::new(),
                    frame_extras: Vec::new(),
                },
                extras: Vec::new(),
            }
        }
    };
    select(&mut h, types)?;
    Ok(h)
}

/// Fetches a URL (under the fetch policy) and hashes it; the content type
/// comes from `content_type`, else from the response's `Content-Type`.
pub async fn hash_url(
    state: &AppState,
    url: &str,
    content_type: Option<&str>,
    types: Option<&str>,
) -> Result<Hashes, ApiError> {
    let fetched = super::fetch::fetch(&super::fetch::Policy::of(&state.config.hma), url).await?;
    let kind = match content_type.filter(|c| !c.is_empty()) {
        Some(c) => ContentKind::parse(c)?,
        None => {
            let ct = fetched.content_type.to_ascii_lowercase();
            if ct.starts_with("image") {
                ContentKind::Photo
            } else if ct.starts_with("video") {
                ContentKind::Video
            } else {
                return Err(ApiError::bad_request(format!(
                    "unsupported url ContentType: '{}', if you know the expected type, provide it with the content_type query param",
                    crate::error::snippet(&fetched.content_type)
                )));
            }
        }
    };
    hash_bytes(state, kind, fetched.bytes, types).await
}

/// Hashes a form's one file, whose field name is its content type.
pub async fn hash_form(
    state: &AppState,
    form: Form,
    types: Option<&str>,
) -> Result<Hashes, ApiError> {
    let mut files = form.files;
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "Missing multipart/form-data file upload",
        ));
    }
    if files.len() > 1 {
        return Err(ApiError::bad_request("Only one file allowed per request"));
    }
    let (name, bytes) = files.remove(0);
    hash_bytes(state, ContentKind::parse(&name)?, bytes, types).await
}

/// Query parameters.
#[derive(Deserialize)]
pub struct HashQuery {
    url: Option<String>,
    content_type: Option<String>,
    types: Option<String>,
}

/// `GET /h/hash?url=...[&content_type=photo|video][&types=pdq]`.
pub async fn hash_get(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<HashQuery>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    caller.require(Role::Matcher)?;
    let url = q
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("url is required"))?;
    let h = hash_url(&state, url, q.content_type.as_deref(), q.types.as_deref()).await?;
    Ok(Json(h.hma))
}

/// `POST /h/hash` with one file in a field named `photo` or `video`.
pub async fn hash_post(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<HashQuery>,
    req: Request,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    caller.require(Role::Matcher)?;
    let Body::Form(form) = read_body(req, &state).await? else {
        return Err(ApiError::bad_request(
            "Missing multipart/form-data file upload",
        ));
    };
    let h = hash_form(&state, form, q.types.as_deref()).await?;
    Ok(Json(h.hma))
}
