//! The report wire format: what a reporting app sends (JSON), decoded with
//! limits into typed, still unverified, reports.
//!
//! ```json
//! {"messages": [{"content": "<base64 of a content::Content>", "salt": "<32 hex>", "sender": "alice",
//!                "conversation": "group-1", "message_id": "m-81f3", "epoch": 7,
//!                "recipients": ["alice", "bob", "carol"], "accepted_at": 1700000000,
//!                "stamper": "<stamping key id>",
//!                "stamp": {"key_id": 1, "mac": "<64 hex>", "signature": "<128 hex, optional>"},
//!                "attachments": [{"blob_id": "b1", "key": "<64 hex>", "commitment": "<64 hex>",
//!                                 "ciphertext_sha256": "<64 hex>", "size": 1234,
//!                                 "media_type": "image/jpeg", "ciphertext": "<base64, optional>"}]}],
//!  "reason": "csam", "text": "free text from the reporter",
//!  "reporter": {"account": "bob", "device": "bob-phone", "signature": "<128 hex>"}}
//! ```
//!
//! The reporter's device signs [`report_signing_input`]: its account and
//! device ids, each reported message's stamp, the reason and the text.
//!
//! [`parse_report`] never panics; malformed or oversized input gets a
//! [`WireError`] naming the field.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::attachment::{AttachmentKey, AttachmentRef, Commitment};
use crate::{Context, MAX_ID_BYTES, MAX_RECIPIENTS, MessageInfo, ReportedMessage, Salt, Stamp};

/// Caps on a report.
pub const MAX_REPORT_BYTES: usize = 64 << 20;
/// Most messages in one report.
pub const MAX_MESSAGES: usize = 100;
/// Largest message content.
pub const MAX_CONTENT_BYTES: usize = crate::content::MAX_BODY_BYTES + (8 << 10);
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
    /// The service's Ed25519 signature over the same bytes, hex (what the
    /// receiver checked on receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
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
    /// The message's id.
    pub message_id: String,
    /// The MLS epoch it was sent in.
    pub epoch: u64,
    /// Who it was delivered to.
    pub recipients: Vec<String>,
    /// Acceptance time, Unix seconds.
    pub accepted_at: u64,
    /// The delivery-service credential that stamped it.
    pub stamper: String,
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
    /// Who reports, signed by their enrolled device key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<ReporterJson>,
}

/// The reporting user, as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReporterJson {
    /// The reporter's account id.
    pub account: String,
    /// The enrolled device that signs.
    pub device: String,
    /// Ed25519 signature over [`report_signing_input`], hex.
    pub signature: String,
}

/// A decoded reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// Account id.
    pub account: String,
    /// Device id.
    pub device: String,
    /// The device's signature.
    pub signature: [u8; 64],
}

/// Domain separation for the reporter's signature.
const REPORT_SIG_LABEL: &[u8] = b"bulwark-report-v1";

/// The bytes a reporter's device signs: label, account, device, the number of
/// messages and each message's stamp key id and MAC, the reason and the text,
/// each length-prefixed (4-byte big-endian lengths; an absent reason or text
/// is the empty string).
pub fn report_signing_input(
    account: &str,
    device: &str,
    stamps: &[Stamp],
    reason: Option<&str>,
    text: Option<&str>,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(128 + 36 * stamps.len());
    let mut put = |p: &[u8]| {
        v.extend_from_slice(&(p.len() as u32).to_be_bytes());
        v.extend_from_slice(p);
    };
    put(REPORT_SIG_LABEL);
    put(account.as_bytes());
    put(device.as_bytes());
    put(&(stamps.len() as u32).to_be_bytes());
    for s in stamps {
        let mut m = [0u8; 36];
        m[..4].copy_from_slice(&s.key_id.to_be_bytes());
        m[4..].copy_from_slice(&s.mac);
        put(&m);
    }
    put(reason.unwrap_or("").as_bytes());
    put(text.unwrap_or("").as_bytes());
    v
}

/// A decoded, not yet verified, message.
#[derive(Debug, Clone)]
pub struct MessageIn {
    /// Content bytes.
    pub content: Vec<u8>,
    /// Salt.
    pub salt: Salt,
    /// Sender, conversation, message id, epoch, recipients, time and stamper.
    pub context: Context,
    /// Stamp.
    pub stamp: Stamp,
    /// The service's signature on the stamp, if the reporter kept it.
    pub stamp_signature: Option<[u8; 64]>,
    /// Attachments with their ciphertexts when uploaded.
    pub attachments: Vec<(AttachmentRef, Option<Vec<u8>>)>,
}

impl MessageIn {
    /// The view [`crate::Keyring::verify_report`] checks.
    pub fn as_reported(&self) -> ReportedMessage<'_> {
        ReportedMessage {
            content: &self.content,
            salt: self.salt.clone(),
            context: &self.context,
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
    /// The signing reporter, if any.
    pub reporter: Option<Reporter>,
}

impl ReportIn {
    /// What the reporter's device signed.
    pub fn signing_input(&self, account: &str, device: &str) -> Vec<u8> {
        let stamps: Vec<Stamp> = self.messages.iter().map(|m| m.stamp).collect();
        report_signing_input(
            account,
            device,
            &stamps,
            self.reason.as_deref(),
            self.text.as_deref(),
        )
    }
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
        let context = Context {
            info: MessageInfo {
                sender: m.sender.clone(),
                conversation: m.conversation.clone(),
                message_id: m.message_id.clone(),
            },
            epoch: m.epoch,
            recipients: m.recipients.clone(),
            accepted_at: m.accepted_at,
            stamper: m.stamper.clone(),
        };
        if context.recipients.len() > MAX_RECIPIENTS {
            return Err(WireError::TooLarge(format!(
                "message {i}: {} recipients, limit {MAX_RECIPIENTS}",
                context.recipients.len()
            )));
        }
        if context.validate().is_err() {
            return Err(WireError::Field {
                message: i,
                field: "sender, conversation, message_id, recipients or stamper",
                problem: format!("empty or longer than {MAX_ID_BYTES} bytes"),
            });
        }
        messages.push(MessageIn {
            content,
            salt: Salt(hex_n(&m.salt, i, "salt")?),
            context,
            stamp: Stamp {
                key_id: m.stamp.key_id,
                mac: hex_n(&m.stamp.mac, i, "stamp.mac")?,
            },
            stamp_signature: m
                .stamp
                .signature
                .as_deref()
                .map(|s| hex_n(s, i, "stamp.signature"))
                .transpose()?,
            attachments,
        });
    }
    let reporter = match r.reporter {
        None => None,
        Some(p) => {
            if [&p.account, &p.device]
                .iter()
                .any(|f| f.is_empty() || f.len() > MAX_ID_BYTES)
            {
                return Err(WireError::Malformed(format!(
                    "reporter account and device must be 1–{MAX_ID_BYTES} bytes"
                )));
            }
            let signature = hex::decode(&p.signature)
                .ok()
                .and_then(|v| <[u8; 64]>::try_from(v).ok())
                .ok_or_else(|| {
                    WireError::Malformed("reporter signature must be 128 hex digits".into())
                })?;
            Some(Reporter {
                account: p.account,
                device: p.device,
                signature,
            })
        }
    };
    Ok(ReportIn {
        messages,
        reason: r.reason,
        text: r.text,
        reporter,
    })
}

/// Encodes one received message for a report (what the receiver's app sends).
pub fn message_json(m: &MessageIn) -> MessageJson {
    let e = base64::engine::general_purpose::STANDARD;
    MessageJson {
        content: e.encode(&m.content),
        salt: hex::encode(m.salt.0),
        sender: m.context.info.sender.clone(),
        conversation: m.context.info.conversation.clone(),
        message_id: m.context.info.message_id.clone(),
        epoch: m.context.epoch,
        recipients: m.context.recipients.clone(),
        accepted_at: m.context.accepted_at,
        stamper: m.context.stamper.clone(),
        stamp: StampJson {
            key_id: m.stamp.key_id,
            mac: hex::encode(m.stamp.mac),
            signature: m.stamp_signature.map(hex::encode),
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
