//! Message franking for the three roles: sender, delivery service, receiver.
//!
//! The sender's plaintext (what the messenger encrypts, e.g. as MLS
//! application data) is an envelope: `0x01 ‖ salt (16 bytes) ‖ content`; the
//! [`FrankingTag`] travels in the message's authenticated data.
//!
//! ```
//! use bulwark_client::franking::{frank, receive, report, stamp};
//! use bulwark_franking::Keyring;
//!
//! // Sender: frank, then encrypt `sent.plaintext` with the tag as AAD.
//! let sent = frank(b"hello");
//! // Delivery service: stamp the tag it sees, with who, where and when.
//! let ring = Keyring::generate(&mut rand::thread_rng());
//! let st = stamp(&ring, &sent.tag, "alice", "group-1", 1_700_000_000);
//! // Receiver: after decrypting, check the tag and keep what a report needs.
//! let got = receive(&sent.plaintext, &sent.tag, st, "alice", "group-1", 1_700_000_000).unwrap();
//! assert_eq!(got.content(), b"hello");
//! // Receiver reports: JSON for POST /v1/reports.
//! let body = report(&[&got], Some("harassment"), None);
//! let parsed = bulwark_franking::wire::parse_report(&body).unwrap();
//! ring.verify_report(&parsed.messages[0].as_reported()).unwrap();
//! ```

use bulwark_franking::wire::{MessageIn, ReportJson, message_json};
use bulwark_franking::{Context, verify_tag};
pub use bulwark_franking::{FrankingTag, Keyring, Rejection, Salt, Stamp};

const ENVELOPE_V1: u8 = 1;

/// What the sender encrypts and what it puts in the authenticated data.
#[derive(Debug, Clone)]
pub struct Franked {
    /// `0x01 ‖ salt ‖ content`: encrypt this.
    pub plaintext: Vec<u8>,
    /// Put this in the message's authenticated data.
    pub tag: FrankingTag,
}

/// Sender: franks `content` with a fresh random salt.
pub fn frank(content: &[u8]) -> Franked {
    let (salt, tag) = bulwark_franking::frank(content, &mut rand::thread_rng());
    let mut plaintext = Vec::with_capacity(17 + content.len());
    plaintext.push(ENVELOPE_V1);
    plaintext.extend_from_slice(&salt.0);
    plaintext.extend_from_slice(content);
    Franked { plaintext, tag }
}

/// Delivery service: stamps a tag with its newest key.
pub fn stamp(
    ring: &Keyring,
    tag: &FrankingTag,
    sender: &str,
    conversation: &str,
    accepted_at: u64,
) -> Stamp {
    ring.stamp(
        tag,
        &Context {
            sender: sender.as_bytes(),
            conversation: conversation.as_bytes(),
            accepted_at,
        },
    )
}

/// A received, tag-checked message, with what a report of it needs.
#[derive(Debug, Clone)]
pub struct Received(MessageIn);

impl Received {
    /// The message content.
    pub fn content(&self) -> &[u8] {
        &self.0.content
    }
}

/// Receiver: splits the decrypted envelope and checks the tag; a message
/// whose tag does not match must be dropped (it could not be reported).
pub fn receive(
    plaintext: &[u8],
    tag: &FrankingTag,
    stamp: Stamp,
    sender: &str,
    conversation: &str,
    accepted_at: u64,
) -> Result<Received, Rejection> {
    if plaintext.len() < 17 || plaintext[0] != ENVELOPE_V1 {
        return Err(Rejection::TagMismatch);
    }
    let mut salt = Salt([0; 16]);
    salt.0.copy_from_slice(&plaintext[1..17]);
    let content = &plaintext[17..];
    verify_tag(content, &salt, tag)?;
    Ok(Received(MessageIn {
        content: content.to_vec(),
        salt,
        sender: sender.to_string(),
        conversation: conversation.to_string(),
        accepted_at,
        stamp,
        attachments: Vec::new(),
    }))
}

/// Receiver: the JSON body of a report of these messages.
pub fn report(messages: &[&Received], reason: Option<&str>, text: Option<&str>) -> Vec<u8> {
    let r = ReportJson {
        messages: messages.iter().map(|m| message_json(&m.0)).collect(),
        reason: reason.map(str::to_string),
        text: text.map(str::to_string),
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_envelope_is_dropped() {
        let sent = frank(b"original");
        let ring = Keyring::generate(&mut rand::thread_rng());
        let st = stamp(&ring, &sent.tag, "a", "g", 1);
        let mut p = sent.plaintext.clone();
        *p.last_mut().expect("content") ^= 1;
        assert!(receive(&p, &sent.tag, st, "a", "g", 1).is_err());
        assert!(receive(&p[..10], &sent.tag, st, "a", "g", 1).is_err());
        assert!(receive(&sent.plaintext, &sent.tag, st, "a", "g", 1).is_ok());
    }
}
