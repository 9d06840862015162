//! Evidence packages: everything about a queue item an export needs — the
//! reported accounts, when it happened, its files with their hashes (and
//! bytes where the service kept them), the confirming decision and its text
//! and entity matches ([`gather`]) — and the package document a lead
//! downloads ([`package`]).

use base64::Engine as _;
use bulwark_store::console::{actions as store, text as text_store};
use bulwark_store::{Store, now_ms, rfc3339};
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The kinds of queue items (`kind:id`).
pub const KINDS: [&str; 3] = ["report", "account", "match"];

/// One file of an item, with its bytes where the service has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFile {
    /// A name for it.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Bytes (a report attachment's plaintext), if kept.
    pub bytes: Option<Vec<u8>>,
    /// MD5 hex.
    pub md5: Option<String>,
    /// SHA-1 hex (of the bytes, when kept).
    pub sha1: Option<String>,
    /// PDQ hex.
    pub pdq: Option<String>,
    /// SHA-256 hex.
    pub sha256: Option<String>,
}

/// Everything about an item an export needs.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// `kind:id`.
    pub item: String,
    /// The reported account(s).
    pub accounts: Vec<String>,
    /// When it happened (ms).
    pub at: i64,
    /// Files.
    pub files: Vec<EvidenceFile>,
    /// The confirming decision: category, reviewer, time.
    pub confirmed: Option<(String, String, i64)>,
    /// Text/entity/rule matches ([`export_matches`]).
    pub text_matches: Vec<Value>,
}

fn sha1_hex(b: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(b))
}

fn number(id: &str) -> Result<i64> {
    id.parse()
        .map_err(|_| Error::bad_request(format!("not an item id: {:?}", crate::error::snippet(id))))
}

/// Collects an item's evidence (`kind` one of [`KINDS`]; anything else is
/// taken as a match).
pub async fn gather(s: &Store, kind: &str, id: &str) -> Result<Evidence> {
    let mut files = Vec::new();
    let mut accounts = Vec::new();
    let at: i64;
    match kind {
        "report" => {
            let rid = number(id)?;
            at = store::report_received_at(s, rid).await?;
            // Senders in the order they first appear in the reported messages.
            accounts.extend(store::report_senders(s, rid).await?);
            for a in store::report_attachments(s, rid).await? {
                let h: Value = a
                    .hashes
                    .and_then(|h| serde_json::from_str(&h).ok())
                    .unwrap_or(Value::Null);
                let bytes = a.plaintext;
                let (mi, ai) = (a.msg_idx, a.idx);
                files.push(EvidenceFile {
                    name: format!("report-{rid}-message-{mi}-attachment-{ai}"),
                    media_type: a.media_type,
                    md5: bytes
                        .as_ref()
                        .map(|b| hex::encode(Md5::digest(b)))
                        .or(h["md5"].as_str().map(Into::into)),
                    sha1: bytes.as_deref().map(sha1_hex),
                    sha256: bytes
                        .as_ref()
                        .map(|b| hex::encode(Sha256::digest(b)))
                        .or(h["sha256"].as_str().map(Into::into)),
                    pdq: h["pdq"].as_str().map(Into::into),
                    bytes,
                });
            }
        }
        "account" => {
            accounts.push(id.to_string());
            at = store::account_flagged_at(s, id).await?;
            for (n, hash) in store::opened_hashes(s, id).await?.into_iter().enumerate() {
                files.push(EvidenceFile {
                    name: format!("account-{id}-voucher-{n}"),
                    media_type: "image/*".into(),
                    bytes: None,
                    md5: None,
                    sha1: None,
                    sha256: None,
                    pdq: Some(hash),
                });
            }
        }
        _ => {
            let r = store::match_evidence(s, number(id)?).await?;
            at = r.at;
            files.push(EvidenceFile {
                name: format!("match-{id}-upload"),
                media_type: "image/*".into(),
                bytes: None,
                md5: r.md5,
                sha1: None,
                sha256: r.sha256,
                pdq: r.pdq,
            });
        }
    }
    let key = format!("{kind}:{id}");
    let confirmed = store::confirmation(s, &key).await?;
    let text_matches = export_matches(s, kind, id).await?;
    Ok(Evidence {
        item: key,
        accounts,
        at,
        files,
        confirmed,
        text_matches,
    })
}

/// The evidence package of an item, one JSON document (`bulwark-evidence/1`):
/// facts, files (base64) with MD5/SHA-1/SHA-256/PDQ, text matches,
/// decisions and the item's audit trail. The export is audited first
/// (`console.export.evidence` by `actor`), so the trail includes it.
/// `NotFound` for a kind not in [`KINDS`].
pub async fn package(
    s: &Store,
    kind: &str,
    id: &str,
    actor: &str,
    exported_by: &str,
) -> Result<Value> {
    if !KINDS.contains(&kind) {
        return Err(Error::not_found("No such item."));
    }
    let e = gather(s, kind, id).await?;
    super::audit(s, actor, "console.export.evidence", json!({"item": e.item})).await?;
    let item_json = serde_json::to_string(&e.item).map_err(Error::internal)?;
    let needle = format!("%\"item\":{item_json}%");
    let trail: Vec<Value> = store::audit_trail(s, &needle)
        .await?
        .into_iter()
        .map(|r| {
            let d = r.detail;
            json!({"id": r.id, "at": rfc3339(r.at),
            "actor": r.actor, "action": r.action,
            "detail": serde_json::from_str::<Value>(&d).unwrap_or(Value::String(d))})
        })
        .collect();
    let decisions: Vec<Value> = store::decisions_of(s, &e.item)
        .await?
        .into_iter()
        .map(|r| {
            json!({"decision": r.decision,
            "category": r.category,
            "note": r.note,
            "reviewer": r.reviewer, "at": rfc3339(r.at)})
        })
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(json!({
        "format": "bulwark-evidence/1",
        "item": e.item,
        "exported_at": rfc3339(now_ms()),
        "exported_by": exported_by,
        "incident_at": rfc3339(e.at),
        "accounts": e.accounts,
        "files": e.files.iter().map(|f| json!({
            "name": f.name, "media_type": f.media_type,
            "size": f.bytes.as_ref().map(Vec::len),
            "md5": f.md5, "sha1": f.sha1, "sha256": f.sha256, "pdq": f.pdq,
            "content_base64": f.bytes.as_ref().map(|b| b64.encode(b)),
        })).collect::<Vec<_>>(),
        "text_matches": e.text_matches,
        "decisions": decisions,
        "audit_trail": trail,
    }))
}

/// A recorded text match in the `/v1/match` shape.
pub fn match_json(r: text_store::TextMatchRow) -> Result<Value> {
    Ok(json!({
        "bank": r.bank,
        "content_id": r.content_id,
        "signal_type": r.signal_type,
        "distance": r.distance,
        "query_signal": r.query_signal,
        "review_only": r.review_only,
        "explanation": serde_json::from_str::<Value>(&r.explanation).map_err(Error::internal)?,
    }))
}

/// A report's stored text signals: per message, its index, signals and
/// matches (JSON; `null` where unreadable).
pub async fn report_rows(s: &Store, report_id: i64) -> Result<Vec<(i64, Value, Value)>> {
    let parse = |c: &str| serde_json::from_str(c).unwrap_or(Value::Null);
    Ok(text_store::report_text_signals(s, report_id)
        .await?
        .into_iter()
        .map(|r| (r.msg_idx, parse(&r.signals), parse(&r.matches)))
        .collect())
}

/// One text/entity/rule match of an item, as exports carry it: the bank,
/// the signal, its normalised value, where (message, byte span) and why,
/// without the excerpt of the text (the package's files and the report
/// carry the content itself).
fn export_match(message: Option<i64>, m: &Value) -> Value {
    let e = &m["explanation"];
    let t = m["signal_type"].as_str().unwrap_or("");
    let value = match t {
        "rule" => e["rule"].clone(),
        _ => e
            .get("value")
            .filter(|v| v.is_string())
            .unwrap_or(&m["query_signal"])
            .clone(),
    };
    let mut out = json!({
        "bank": m["bank"],
        "signal_type": t,
        "value": value,
        "content_id": m["content_id"],
        "review_only": m["review_only"].as_bool().unwrap_or(t == "rule"),
    });
    if let Some(i) = message {
        out["message"] = i.into();
    }
    for k in [
        "span",
        "radius",
        "jaccard_estimate",
        "description",
        "language",
    ] {
        if let Some(v) = e.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    if t == "text_hash" {
        out["distance"] = m["distance"].clone();
    }
    out
}

/// The text/entity/rule matches of an item for its evidence package and
/// CyberTipline report: a report's, per message (computed at intake), or a
/// recorded text match's. Empty for media-only items.
pub async fn export_matches(s: &Store, kind: &str, id: &str) -> Result<Vec<Value>> {
    match kind {
        "report" => {
            let mut out = Vec::new();
            for (idx, _, matches) in report_rows(s, number(id)?).await? {
                for m in matches.as_array().into_iter().flatten() {
                    out.push(export_match(Some(idx), m));
                }
            }
            Ok(out)
        }
        "match" => {
            let Some(r) = text_store::text_match(s, number(id)?).await? else {
                return Ok(Vec::new());
            };
            let m = match_json(r)?;
            Ok(vec![export_match(None, &m)])
        }
        _ => Ok(Vec::new()),
    }
}
