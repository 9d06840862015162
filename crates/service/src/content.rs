//! Content of a bank: add (hashed media or given signals), read one or a
//! page, enable or disable (also until a time), delete. Every change is
//! audited, appended to the change log and applied to this node's index
//! before it returns ([`crate::banks::commit_change`]).

use std::collections::{BTreeMap, HashMap};

use bulwark_banks::SignalType;
use bulwark_store::{self as db, BankRow, ContentRow, NewContent, SignalRow, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::banks::{Change, by_name, commit_change};
use crate::catalog::Catalog;
use crate::error::{Error, Kind, Result, snippet};
use crate::media::Hashed;

/// Longest note, in bytes.
pub const MAX_NOTE_BYTES: usize = 16 << 10;
/// Longest source, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1024;
/// Longest metadata (JSON text), in bytes.
pub const MAX_METADATA_BYTES: usize = 64 << 10;
/// Items per page unless the caller asks for another number.
pub const DEFAULT_PAGE: i64 = 100;
/// Most items per page.
pub const MAX_PAGE: i64 = 1000;

/// One signal of a content item, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// `pdq`, `md5`, `sha256`, a text or entity type.
    pub signal_type: String,
    /// Its value.
    pub signal: String,
    /// PDQ quality, where known.
    pub quality: Option<i64>,
}

/// A content item as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Content {
    /// Its id.
    pub id: i64,
    /// Its bank's name.
    pub bank: String,
    /// `photo`, `video` or `signals`.
    pub kind: String,
    /// Its signals.
    pub signals: Vec<Signal>,
    /// Free text.
    pub note: Option<String>,
    /// A JSON object.
    pub metadata: Option<Value>,
    /// Matching now (also once a disable-until time has passed).
    pub enabled: bool,
    /// Disabled until this time (RFC 3339), when disabled with one.
    pub disabled_until: Option<String>,
    /// Key id of who added it.
    pub added_by: String,
    /// Which list it came from.
    pub source: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// A video's frame count (videos only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
}

impl Content {
    /// An item of bank `bank` with its signals and (videos) frame count.
    pub fn new(c: &ContentRow, bank: &str, signals: &[SignalRow], frames: usize) -> Content {
        let now = db::now_ms();
        Content {
            id: c.id,
            bank: bank.to_string(),
            kind: c.kind.clone(),
            signals: signals
                .iter()
                .map(|s| Signal {
                    signal_type: s.signal_type.clone(),
                    signal: s.value.clone(),
                    quality: s.quality,
                })
                .collect(),
            note: c.note.clone(),
            metadata: c
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str::<Value>(m).ok()),
            enabled: c.enabled || c.disabled_until.is_some_and(|t| t <= now),
            disabled_until: if c.enabled {
                None
            } else {
                c.disabled_until.map(db::rfc3339)
            },
            added_by: c.added_by.clone(),
            source: c.source.clone(),
            created_at: db::rfc3339(c.created_at),
            updated_at: db::rfc3339(c.updated_at),
            frames: (c.kind == "video").then_some(frames),
        }
    }
}

/// An extra PDQ hash stored with a photo.
#[derive(Debug, Clone, Serialize)]
pub struct ExtraHash {
    /// Its kind, e.g. `region`.
    pub hash_kind: String,
    /// The hash, hex.
    pub pdq: String,
}

/// The answer to an add.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// The item (the first one, for a duplicate).
    #[serde(flatten)]
    pub content: Content,
    /// The bank already held it: nothing was added.
    pub duplicate: bool,
    /// The extra hashes stored with it, when the upload had any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_hashes: Option<Vec<ExtraHash>>,
}

/// A page of a bank's content.
#[derive(Debug, Clone, Serialize)]
pub struct ContentPage {
    /// Items, by id.
    pub items: Vec<Content>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next_after: Option<i64>,
}

/// Changes to a content item.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentPatch {
    /// Enable or disable (for good).
    pub enabled: Option<bool>,
    /// Disable until this time (RFC 3339).
    pub disabled_until: Option<String>,
    /// New note (empty removes it).
    pub note: Option<String>,
    /// New metadata (a JSON object).
    pub metadata: Option<Value>,
}

/// Checks optional metadata: a JSON object of at most 64 KiB.
pub fn metadata_text(v: Option<&Value>) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(m @ Value::Object(_)) => {
            let t = m.to_string();
            if t.len() > MAX_METADATA_BYTES {
                return Err(Error::bad_request("metadata is over 64 KiB"));
            }
            Ok(Some(t))
        }
        Some(_) => Err(Error::bad_request("metadata must be a JSON object")),
    }
}

/// Content to bank from an uploaded file's hashes.
pub fn from_hashed(h: &Hashed) -> NewContent {
    let sig = |t: &str, v: String, q: Option<i64>| SignalRow {
        signal_type: t.to_string(),
        value: v,
        quality: q,
    };
    match h {
        Hashed::Photo {
            pdq,
            quality,
            md5,
            sha256,
            ..
        } => NewContent {
            kind: "photo",
            dedup_key: format!("sha256:{}", hex::encode(sha256)),
            note: None,
            metadata: None,
            source: None,
            signals: vec![
                sig("pdq", pdq.to_string(), Some(*quality as i64)),
                sig("md5", hex::encode(md5), None),
                sig("sha256", hex::encode(sha256), None),
            ],
            frames: Vec::new(),
            frame_extras: Vec::new(),
        },
        Hashed::Video {
            frames,
            frame_extras,
            md5,
            sha256,
        } => NewContent {
            kind: "video",
            dedup_key: format!("sha256:{}", hex::encode(sha256)),
            note: None,
            metadata: None,
            source: None,
            signals: vec![
                sig("md5", hex::encode(md5), None),
                sig("sha256", hex::encode(sha256), None),
            ],
            frames: frames.clone(),
            frame_extras: frame_extras.clone(),
        },
    }
}

/// Content to bank from signals given as `{"pdq": HEX, "md5": HEX, ...}`;
/// text and entity signals too (`{"phone": "+1 415 555 0142"}`, canonicalised).
pub fn from_signals(
    map: &serde_json::Map<String, Value>,
    quality: Option<u32>,
) -> Result<NewContent> {
    if map.is_empty() {
        return Err(Error::bad_request(
            "no signals given (e.g. {\"pdq\": \"<64 hex digits>\"})",
        ));
    }
    let mut by_type: HashMap<SignalType, String> = HashMap::new();
    // Text and entity signals (issue 18), after the media ones in the dedup key.
    let mut text: BTreeMap<&'static str, String> = BTreeMap::new();
    for (k, v) in map {
        let v = v
            .as_str()
            .ok_or_else(|| Error::bad_request(format!("signal {k} must be a string")))?;
        if let Some(tt) = crate::signals::text_type(k) {
            let s = tt.parse(v).map_err(|e| Error::bad_request(e.to_string()))?;
            if text.insert(tt.name(), s.value()).is_some() {
                return Err(Error::bad_request(format!("signal type {tt} given twice")));
            }
            continue;
        }
        let t: SignalType = k.parse().map_err(|_| {
            Error::bad_request(bulwark_banks::SignalError::UnknownAnyType(snippet(k)).to_string())
        })?;
        let s = t.parse(v).map_err(|e| Error::bad_request(e.to_string()))?;
        if by_type.insert(t, s.value()).is_some() {
            return Err(Error::bad_request(format!("signal type {t} given twice")));
        }
    }
    if let Some(q) = quality
        && q > 100
    {
        return Err(Error::bad_request("quality must be 0..=100"));
    }
    let mut types: Vec<SignalType> = by_type.keys().copied().collect();
    types.sort();
    let dedup_key = types
        .iter()
        .map(|t| format!("{t}:{}", by_type[t]))
        .chain(text.iter().map(|(t, v)| format!("{t}:{v}")))
        .collect::<Vec<_>>()
        .join("|");
    Ok(NewContent {
        kind: "signals",
        dedup_key,
        note: None,
        metadata: None,
        source: None,
        signals: types
            .iter()
            .map(|t| SignalRow {
                signal_type: t.name().to_string(),
                value: by_type[t].clone(),
                quality: (*t == SignalType::Pdq)
                    .then_some(quality.map(i64::from))
                    .flatten(),
            })
            .chain(text.iter().map(|(t, v)| SignalRow {
                signal_type: t.to_string(),
                value: v.clone(),
                quality: None,
            }))
            .collect(),
        frames: Vec::new(),
        frame_extras: Vec::new(),
    })
}

/// Content to bank from an uploaded file's hashes and the upload's other
/// form fields (`note`, `source`, `metadata` as JSON text).
pub fn from_upload(h: &Hashed, fields: &HashMap<String, String>) -> Result<NewContent> {
    let mut c = from_hashed(h);
    c.note = fields.get("note").cloned();
    c.source = fields.get("source").cloned();
    if let Some(m) = fields.get("metadata") {
        let v: Value = serde_json::from_str(m)
            .map_err(|e| Error::bad_request(format!("metadata is not JSON: {e}")))?;
        c.metadata = metadata_text(Some(&v))?;
    }
    Ok(c)
}

/// Content to bank from a JSON request: `{"signals": {...}, "quality",
/// "note", "metadata", "source"}`.
pub fn from_json(v: &Value) -> Result<NewContent> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::bad_request("expected a JSON object"))?;
    for k in obj.keys() {
        if !["signals", "quality", "note", "metadata", "source"].contains(&k.as_str()) {
            return Err(Error::bad_request(format!("unknown field {k:?}")));
        }
    }
    let signals = obj
        .get("signals")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_request("`signals` must be an object like {\"pdq\": HEX}"))?;
    let quality = match obj.get("quality") {
        None | Some(Value::Null) => None,
        Some(q) => Some(
            q.as_u64()
                .and_then(|q| u32::try_from(q).ok())
                .ok_or_else(|| Error::bad_request("quality must be an integer 0..=100"))?,
        ),
    };
    let mut c = from_signals(signals, quality)?;
    c.note = obj.get("note").and_then(Value::as_str).map(str::to_string);
    c.source = obj
        .get("source")
        .and_then(Value::as_str)
        .map(str::to_string);
    c.metadata = metadata_text(obj.get("metadata"))?;
    Ok(c)
}

/// Adds content in one transaction (with its audit entry and change row) and
/// applies it to the index; returns (id, newly added). With `extras` (a
/// photo hashed from media), stores with it the extra PDQ hashes of the
/// kinds in `bank_kinds` ([`crate::media::Pool::bank_kinds`]) at or above
/// the bank's quality floor.
pub async fn insert(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    c: &NewContent,
    extras: &[bulwark_pdq::KindHash],
    bank_kinds: bulwark_pdq::KindSet,
) -> Result<(i64, bool)> {
    for sig in c.signals.iter().filter(|s| s.signal_type == "pdq") {
        let usable = sig.value.parse::<bulwark_pdq::PdqHash>().is_ok_and(|h| {
            crate::catalog::pdq_usable(
                &h,
                sig.quality.map(|q| q.clamp(0, 100) as u32),
                bank.min_quality.clamp(0, 100) as u32,
            )
        });
        if !usable {
            return Err(Error::new(
                Kind::Unprocessable,
                "low_quality",
                format!(
                    "this PDQ hash's quality is below bank {:?}'s floor of {} (or the hash is degenerate, e.g. a blank image); it would match unrelated images",
                    snippet(&bank.name),
                    bank.min_quality
                ),
            ));
        }
    }
    let mut tx = store.begin().await?;
    match db::insert_content(store, &mut tx, bank.id, actor, c).await? {
        Some(id) => {
            let banked = crate::extras::to_bank(extras, bank_kinds, bank.min_quality);
            crate::extras::insert(store, &mut tx, bank.id, id, &banked).await?;
            // A video's frame extras: the kinds banks store, at or above the
            // bank's quality floor (as a photo's).
            for (frame, e) in c.frame_extras.iter().filter(|(_, e)| {
                bank_kinds.contains(e.kind) && i64::from(e.quality) >= bank.min_quality
            }) {
                db::catalog::insert_frame_extra(store, &mut tx, bank.id, id, *frame, e).await?;
            }
            let detail = json!({
                "kind": c.kind,
                "signals": c.signals.iter().map(|s| format!("{} {}", s.signal_type, s.value)).collect::<Vec<_>>(),
                "frames": c.frames.len(),
                "source": c.source,
            });
            commit_change(
                store,
                catalog,
                tx,
                actor,
                Change {
                    action: "content.add",
                    bank: (bank.id, &bank.name),
                    content: Some(id),
                    detail,
                },
            )
            .await?;
            Ok((id, true))
        }
        None => {
            tx.rollback().await?;
            let id = db::content_by_dedup(store, bank.id, &c.dedup_key)
                .await?
                .ok_or_else(|| Error::internal("dedup conflict without a row"))?;
            Ok((id, false))
        }
    }
}

/// Adds content to `bank` (looked up by the caller, before the upload is
/// hashed), or finds the same content already there; `extras` are the
/// photo's extra hashes as hashed ([`insert`]).
pub async fn add(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    mut c: NewContent,
    extras: &[bulwark_pdq::KindHash],
    bank_kinds: bulwark_pdq::KindSet,
) -> Result<Added> {
    if c.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE_BYTES) {
        return Err(Error::bad_request("note is over 16 KiB"));
    }
    if c.source
        .as_ref()
        .is_some_and(|n| n.len() > MAX_SOURCE_BYTES)
    {
        return Err(Error::bad_request("source is over 1 KiB"));
    }
    c.note = c.note.filter(|n| !n.is_empty());
    let (id, added) = insert(store, catalog, actor, bank, &c, extras, bank_kinds).await?;
    let content = load(store, bank, id).await?;
    let extra_hashes = if extras.is_empty() {
        None
    } else {
        let stored = crate::extras::of_content(store, id).await?;
        Some(
            stored
                .into_iter()
                .map(|(hash_kind, pdq)| ExtraHash { hash_kind, pdq })
                .collect(),
        )
    };
    Ok(Added {
        content,
        duplicate: !added,
        extra_hashes,
    })
}

/// Content `id` of `bank`, or `not_found`.
pub async fn load(store: &Store, bank: &BankRow, id: i64) -> Result<Content> {
    let c = db::content::by_id(store, &store.pool, bank.id, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no content {id} in bank {:?}", bank.name)))?;
    let signals = db::signals_of(store, id).await?;
    let frames = if c.kind == "video" {
        db::content::frame_count(store, id).await? as usize
    } else {
        0
    };
    Ok(Content::new(&c, &bank.name, &signals, frames))
}

/// Content `id` of the bank named `bank`.
pub async fn get(store: &Store, bank: &str, id: i64) -> Result<Content> {
    let bank = by_name(store, bank).await?;
    load(store, &bank, id).await
}

/// A page of the bank's content: `limit` items (default 100, at most
/// 1000) with ids above `after`.
pub async fn list(
    store: &Store,
    bank: &str,
    limit: Option<i64>,
    after: Option<i64>,
) -> Result<ContentPage> {
    let bank = by_name(store, bank).await?;
    let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let contents = db::content::page(store, bank.id, after.unwrap_or(0), limit).await?;
    let mut signals = HashMap::new();
    let mut frames = HashMap::new();
    if !contents.is_empty() {
        let ids: Vec<i64> = contents.iter().map(|c| c.id).collect();
        signals = db::content::signals_of_many(store, &ids).await?;
        frames = db::content::frame_counts(store, &ids).await?;
    }
    let items = contents
        .iter()
        .map(|c| {
            Content::new(
                c,
                &bank.name,
                signals.get(&c.id).map_or(&[][..], Vec::as_slice),
                frames.get(&c.id).copied().unwrap_or(0) as usize,
            )
        })
        .collect();
    let next_after = (contents.len() as i64 == limit)
        .then(|| contents.last().map(|c| c.id))
        .flatten();
    Ok(ContentPage { items, next_after })
}

/// Enables or disables an item (for good, or until a time), or changes its
/// note or metadata.
pub async fn update(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank_name: &str,
    id: i64,
    p: ContentPatch,
) -> Result<Content> {
    let bank = by_name(store, bank_name).await?;
    let mut tx = store.begin().await?;
    let mut c = db::content::by_id(store, &mut *tx, bank.id, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no content {id} in bank {bank_name:?}")))?;
    match (p.enabled, &p.disabled_until) {
        (Some(true), Some(_)) => {
            return Err(Error::bad_request(
                "disabled_until makes no sense with enabled: true",
            ));
        }
        (_, Some(t)) => {
            let until = db::parse_rfc3339(t).map_err(Error::bad_request)?;
            c.enabled = false;
            c.disabled_until = Some(until);
        }
        (Some(e), None) => {
            c.enabled = e;
            c.disabled_until = None;
        }
        (None, None) => {}
    }
    if let Some(n) = p.note {
        if n.len() > MAX_NOTE_BYTES {
            return Err(Error::bad_request("note is over 16 KiB"));
        }
        c.note = Some(n).filter(|n| !n.is_empty());
    }
    if p.metadata.is_some() {
        c.metadata = metadata_text(p.metadata.as_ref())?;
    }
    c.updated_at = db::now_ms();
    db::content::update(store, &mut tx, &c).await?;
    let detail = json!({
        "enabled": c.enabled,
        "disabled_until": c.disabled_until.map(db::rfc3339),
        "note_changed": true,
    });
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "content.update",
            bank: (bank.id, &bank.name),
            content: Some(id),
            detail,
        },
    )
    .await?;
    load(store, &bank, id).await
}

/// Deletes an item with its signals.
pub async fn delete(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank_name: &str,
    id: i64,
) -> Result<()> {
    let bank = by_name(store, bank_name).await?;
    if delete_in(store, catalog, actor, &bank, id, None).await? {
        Ok(())
    } else {
        Err(Error::not_found(format!(
            "no content {id} in bank {bank_name:?}"
        )))
    }
}

/// Deletes item `id` of `bank` if it is there (false if not), audited with
/// its signals and `via` (the surface that asked, when it is not the API).
pub(crate) async fn delete_in(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &BankRow,
    id: i64,
    via: Option<&str>,
) -> Result<bool> {
    let mut tx = store.begin().await?;
    let signals = db::signals_of(store, id).await?;
    if !db::content::delete(store, &mut tx, bank.id, id).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let mut detail = json!({"signals": signals.iter().map(|s| format!("{} {}", s.signal_type, s.value)).collect::<Vec<_>>()});
    if let Some(via) = via {
        detail["via"] = via.into();
    }
    commit_change(
        store,
        catalog,
        tx,
        actor,
        Change {
            action: "content.delete",
            bank: (bank.id, &bank.name),
            content: Some(id),
            detail,
        },
    )
    .await?;
    Ok(true)
}
