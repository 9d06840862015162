//! The report wire format: what a reporting app sends (JSON), decoded with
//! limits into typed, still unverified, reports.
//!
//! ```json
//! {"messages": [{"content": "<base64>", "salt": "<32 hex>", "sender": "alice",
//!                "conversation": "group-1", "accepted_at": 1700000000,
//!                "stamp": {"key_id": 1, "mac": "<64 hex>"},
//!                "attachments": [{"blob_id": "b1", "key": "<64 hex>", "commitment": "<64 hex>",
//!                                 "ciphertext_sha256": "<64 hex>", "size": 1234,
//!                                 "media_type": "image/jpeg", "ciphertext": "<base64, optional>"}]}],
//!  "reason": "csam", "text": "free text from the reporter"}
//! ```
//!
//! [`parse_report`] never panics; malformed or oversized input gets a
//! [`WireError`] naming the field.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::attachment::{AttachmentKey, AttachmentRef, Commitment};
use crate::{Context, ReportedMessage, Salt, Stamp};

/// Caps on a report.
pub const MAX_REPORT_BYTES: usize = 64 << 20;
/// Most messages in one report.
pub const MAX_MESSAGES: usize = 100;
/// Largest message content.
pub const MAX_CONTENT_BYTES: usize = 256 << 10;
/// Most attachments per message.
pub const MAX_ATTACHMENTS: usize = 10;

/// Why a report cannot be decoded (the reporter's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not JSON of the report's shape.
    #[error("malformed report: {0}")]
    Malformed(String),
    /// A field is out of range or badly encoded.
    #[error("message {message}: {field}: {problem}")]
    Field {
        /// 0-based message index.
        message: usize,
        /// Field name.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The report is larger than the limits.
    #[error("report too large: {0}")]
    TooLarge(String),
}

/// Stamp as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StampJson {
    /// Service key id.
    pub key_id: u32,
    /// MAC, hex.
    pub mac: String,
}

/// Attachment reference as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentJson {
    /// Blob id.
    pub blob_id: String,
    /// Key, hex.
    pub key: String,
    /// Commitment, hex.
    pub commitment: String,
    /// SHA-256 of the ciphertext, hex.
    pub ciphertext_sha256: String,
    /// Plaintext size.
    pub size: u64,
    /// Media type.
    pub media_type: String,
    /// The ciphertext itself, base64, when the reporter uploads it with the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
}

/// One reported message as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageJson {
    /// Content, base64.
    pub content: String,
    /// Salt, hex.
    pub salt: String,
    /// Sender identity.
    pub sender: String,
    /// Conversation identity.
    pub conversation: String,
    /// Acceptance time, Unix seconds.
    pub accepted_at: u64,
    /// The service's stamp.
    pub stamp: StampJson,
    /// Attachments referenced by the content.
    #[serde(default)]
    pub attachments: Vec<AttachmentJson>,
}

/// A report as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportJson {
    /// The reported messages.
    pub messages: Vec<MessageJson>,
    /// Reason code chosen by the reporter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free text from the reporter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A decoded, not yet verified, message.
#[derive(Debug, Clone)]
pub struct MessageIn {
    /// Content bytes.
    pub content: Vec<u8>,
    /// Salt.
    pub salt: Salt,
    /// Sender.
    pub sender: String,
    /// Conversation.
    pub conversation: String,
    /// Acceptance time.
    pub accepted_at: u64,
    /// Stamp.
    pub stamp: Stamp,
    /// Attachments with their ciphertexts when uploaded.
    pub attachments: Vec<(AttachmentRef, Option<Vec<u8>>)>,
}

impl MessageIn {
    /// The view [`crate::Keyring::verify_report`] checks.
    pub fn as_reported(&self) -> ReportedMessage<'_> {
        ReportedMessage {
            content: &self.content,
            salt: self.salt.clone(),
            context: Context {
                sender: self.sender.as_bytes(),
                conversation: self.conversation.as_bytes(),
                accepted_at: self.accepted_at,
            },
            stamp: self.stamp,
        }
    }
}

/// A decoded, not yet verified, report.
#[derive(Debug, Clone)]
pub struct ReportIn {
    /// Messages.
    pub messages: Vec<MessageIn>,
    /// Reason code.
    pub reason: Option<String>,
    /// Free text.
    pub text: Option<String>,
}

fn hex_n<const N: usize>(
    s: &str,
    message: usize,
    field: &'static str,
) -> Result<[u8; N], WireError> {
    let err = |problem: String| WireError::Field {
        message,
        field,
        problem,
    };
    let v = hex::decode(s).map_err(|e| err(format!("not hex ({e})")))?;
    v.try_into()
        .map_err(|v: Vec<u8>| err(format!("{} bytes, expected {N}", v.len())))
}

fn b64(s: &str, message: usize, field: &'static str) -> Result<Vec<u8>, WireError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| WireError::Field {
            message,
            field,
            problem: format!("not base64 ({e})"),
        })
}

/// Decodes a report with limits.
pub fn parse_report(bytes: &[u8]) -> Result<ReportIn, WireError> {
    if bytes.len() > MAX_REPORT_BYTES {
        return Err(WireError::TooLarge(format!(
            "{} bytes, limit {MAX_REPORT_BYTES}",
            bytes.len()
        )));
    }
    let r: ReportJson =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    if r.messages.is_empty() {
        return Err(WireError::Malformed(
            "a report names at least one message".into(),
        ));
    }
    if r.messages.len() > MAX_MESSAGES {
        return Err(WireError::TooLarge(format!(
            "{} messages, limit {MAX_MESSAGES}",
            r.messages.len()
        )));
    }
    let mut messages = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.iter().enumerate() {
        let content = b64(&m.content, i, "content")?;
        if content.len() > MAX_CONTENT_BYTES {
            return Err(WireError::Field {
                message: i,
                field: "content",
                problem: format!("{} bytes, limit {MAX_CONTENT_BYTES}", content.len()),
            });
        }
        if m.attachments.len() > MAX_ATTACHMENTS {
            return Err(WireError::Field {
                message: i,
                field: "attachments",
                problem: format!("{}, limit {MAX_ATTACHMENTS}", m.attachments.len()),
            });
        }
        let mut attachments = Vec::new();
        for a in &m.attachments {
            let r = AttachmentRef {
                blob_id: a.blob_id.clone(),
                key: AttachmentKey(hex_n(&a.key, i, "attachments.key")?),
                commitment: Commitment(hex_n(&a.commitment, i, "attachments.commitment")?),
                ciphertext_sha256: hex_n(&a.ciphertext_sha256, i, "attachments.ciphertext_sha256")?,
                size: a.size,
                media_type: a.media_type.clone(),
            };
            let ct = a
                .ciphertext
                .as_deref()
                .map(|c| b64(c, i, "attachments.ciphertext"))
                .transpose()?;
            attachments.push((r, ct));
        }
        messages.push(MessageIn {
            content,
            salt: Salt(hex_n(&m.salt, i, "salt")?),
            sender: m.sender.clone(),
            conversation: m.conversation.clone(),
            accepted_at: m.accepted_at,
            stamp: Stamp {
                key_id: m.stamp.key_id,
                mac: hex_n(&m.stamp.mac, i, "stamp.mac")?,
            },
            attachments,
        });
    }
    Ok(ReportIn {
        messages,
        reason: r.reason,
        text: r.text,
    })
}

/// Encodes one received message for a report (what the receiver's app sends).
pub fn message_json(m: &MessageIn) -> MessageJson {
    let e = base64::engine::general_purpose::STANDARD;
    MessageJson {
        content: e.encode(&m.content),
        salt: hex::encode(m.salt.0),
        sender: m.sender.clone(),
        conversation: m.conversation.clone(),
        accepted_at: m.accepted_at,
        stamp: StampJson {
            key_id: m.stamp.key_id,
            mac: hex::encode(m.stamp.mac),
        },
        attachments: m
            .attachments
            .iter()
            .map(|(a, ct)| AttachmentJson {
                blob_id: a.blob_id.clone(),
                key: hex::encode(a.key.0),
                commitment: hex::encode(a.commitment.0),
                ciphertext_sha256: hex::encode(a.ciphertext_sha256),
                size: a.size,
                media_type: a.media_type.clone(),
                ciphertext: ct.as_ref().map(|c| e.encode(c)),
            })
            .collect(),
    }
}
