//! Message franking for the three roles: sender, delivery service, receiver.
//!
//! The sender's plaintext (what the messenger encrypts, e.g. as MLS
//! application data) is an envelope: `0x02 ‖ salt (16 bytes) ‖ content`,
//! where the content is a [`Content`] (body and attachment references); the
//! [`FrankingTag`] travels in the message's authenticated data. The tag
//! commits to sender, conversation and message id, so the receiver checks it
//! against what it authenticated itself.
//!
//! ```
//! use bulwark_client::franking::{Content, Context, MessageInfo, frank, receive, report};
//! use bulwark_franking::Keyring;
//!
//! let mut rng = rand::thread_rng();
//! // Sender: frank, then encrypt `sent.plaintext` with the tag as AAD.
//! let info = MessageInfo::new("alice", "group-1", "m-0001");
//! let sent = frank(&info, &Content::text("hello"));
//! // Delivery service: stamps and signs the tag with what its session attests.
//! let ring = Keyring::generate(&mut rng)
//!     .with_signing_key(ed25519_dalek::SigningKey::generate(&mut rng));
//! let ctx = Context {
//!     info: info.clone(),
//!     epoch: 1,
//!     recipients: vec!["alice".into(), "bob".into()],
//!     accepted_at: 1_700_000_000,
//!     stamper: "ds-1".into(),
//! };
//! let stamp = ring.stamp(&sent.tag, &ctx);
//! let sig = ring.sign(&sent.tag, &ctx).unwrap();
//! // Receiver: after decrypting, check the tag and the service's signature.
//! let vk = ring.verifying_key().unwrap();
//! let got = receive(&sent.plaintext, &sent.tag, stamp, &sig, &vk, ctx).unwrap();
//! assert_eq!(got.content().body, b"hello");
//! // Receiver reports, signed by its enrolled device key: JSON for POST /v1/reports.
//! let device = ed25519_dalek::SigningKey::generate(&mut rng);
//! let body = report(&[&got], Some("harassment"), None, Some(("bob", "bob-phone", &device)));
//! let parsed = bulwark_franking::wire::parse_report(&body).unwrap();
//! ring.verify_report(&parsed.messages[0].as_reported()).unwrap();
//! ```

pub use bulwark_franking::content::Content;
use bulwark_franking::verify_tag;
use bulwark_franking::wire::{MessageIn, ReportJson, ReporterJson, message_json};
pub use bulwark_franking::{Context, FrankingTag, Keyring, MessageInfo, Rejection, Salt, Stamp};

const ENVELOPE_V2: u8 = 2;

/// What the sender encrypts and what it puts in the authenticated data.
#[derive(Debug, Clone)]
pub struct Franked {
    /// `0x02 ‖ salt ‖ content`: encrypt this.
    pub plaintext: Vec<u8>,
    /// Put this in the message's authenticated data.
    pub tag: FrankingTag,
}

/// Sender: franks `content`, sent as `info`, with a fresh random salt.
pub fn frank(info: &MessageInfo, content: &Content) -> Franked {
    let bytes = content.to_bytes();
    let (salt, tag) = bulwark_franking::frank(info, &bytes, &mut rand::thread_rng());
    let mut plaintext = Vec::with_capacity(17 + bytes.len());
    plaintext.push(ENVELOPE_V2);
    plaintext.extend_from_slice(&salt.0);
    plaintext.extend_from_slice(&bytes);
    Franked { plaintext, tag }
}

/// A received, checked message, with what a report of it needs.
#[derive(Debug, Clone)]
pub struct Received {
    message: MessageIn,
    content: Content,
}

impl Received {
    /// The message content.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// Sender, conversation, message id, epoch, recipients, time, stamper.
    pub fn context(&self) -> &Context {
        &self.message.context
    }
}

/// Receiver: splits the decrypted envelope, checks the tag against the
/// context (whose sender and conversation the receiver must have
/// authenticated itself) and the delivery service's signature on the stamp.
/// A message that fails either check must be dropped: it could not be
/// reported.
pub fn receive(
    plaintext: &[u8],
    tag: &FrankingTag,
    stamp: Stamp,
    stamp_signature: &ed25519_dalek::Signature,
    service_key: &ed25519_dalek::VerifyingKey,
    context: Context,
) -> Result<Received, Rejection> {
    if plaintext.len() < 17 || plaintext[0] != ENVELOPE_V2 {
        return Err(Rejection::TagMismatch);
    }
    let mut salt = Salt([0; 16]);
    salt.0.copy_from_slice(&plaintext[1..17]);
    let bytes = &plaintext[17..];
    verify_tag(&context.info, bytes, &salt, tag)?;
    context.validate()?;
    bulwark_franking::verify_signature(service_key, tag, &context, stamp_signature)?;
    let content = Content::parse(bytes).map_err(|_| Rejection::TagMismatch)?;
    Ok(Received {
        message: MessageIn {
            content: bytes.to_vec(),
            salt,
            context,
            stamp,
            stamp_signature: Some(stamp_signature.to_bytes()),
            attachments: Vec::new(),
        },
        content,
    })
}

/// Receiver: the JSON body of a report of these messages; with `reporter`
/// `(account, device, device signing key)` the report is signed by the
/// reporter's enrolled device.
pub fn report(
    messages: &[&Received],
    reason: Option<&str>,
    text: Option<&str>,
    reporter: Option<(&str, &str, &ed25519_dalek::SigningKey)>,
) -> Vec<u8> {
    report_with_attachments(
        &messages
            .iter()
            .map(|m| (*m, Vec::new()))
            .collect::<Vec<_>>(),
        reason,
        text,
        reporter,
    )
}

/// Attachment ciphertexts sent with a reported message: `(index into its
/// content's attachments, ciphertext)`.
pub type AttachmentCiphertexts = Vec<(usize, Vec<u8>)>;

/// Like [`report`], with attachment ciphertexts for each message.
pub fn report_with_attachments(
    messages: &[(&Received, AttachmentCiphertexts)],
    reason: Option<&str>,
    text: Option<&str>,
    reporter: Option<(&str, &str, &ed25519_dalek::SigningKey)>,
) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let ins: Vec<MessageIn> = messages
        .iter()
        .map(|(m, atts)| {
            let mut mi = m.message.clone();
            mi.attachments = atts
                .iter()
                .filter_map(|(i, ct)| {
                    m.content
                        .attachments
                        .get(*i)
                        .map(|a| (a.clone(), Some(ct.clone())))
                })
                .collect();
            mi
        })
        .collect();
    let reporter = reporter.map(|(account, device, key)| {
        let stamps: Vec<Stamp> = ins.iter().map(|m| m.stamp).collect();
        let input =
            bulwark_franking::wire::report_signing_input(account, device, &stamps, reason, text);
        ReporterJson {
            account: account.to_string(),
            device: device.to_string(),
            signature: hex::encode(key.sign(&input).to_bytes()),
        }
    });
    let r = ReportJson {
        messages: ins.iter().map(message_json).collect(),
        reason: reason.map(str::to_string),
        text: text.map(str::to_string),
        reporter,
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_envelope_or_unsigned_stamp_is_dropped() {
        let mut rng = rand::thread_rng();
        let info = MessageInfo::new("a", "g", "m1");
        let sent = frank(&info, &Content::text("original"));
        let ring = Keyring::generate(&mut rng)
            .with_signing_key(ed25519_dalek::SigningKey::generate(&mut rng));
        let ctx = Context {
            info,
            epoch: 1,
            recipients: vec!["a".into(), "b".into()],
            accepted_at: 1,
            stamper: "ds".into(),
        };
        let st = ring.stamp(&sent.tag, &ctx);
        let sig = ring.sign(&sent.tag, &ctx).expect("signs");
        let vk = ring.verifying_key().expect("vk");
        let mut p = sent.plaintext.clone();
        *p.last_mut().expect("content") ^= 1;
        assert!(receive(&p, &sent.tag, st, &sig, &vk, ctx.clone()).is_err());
        assert!(receive(&p[..10], &sent.tag, st, &sig, &vk, ctx.clone()).is_err());
        // A stamp the service signed for other recipients is refused on receipt.
        let other = Context {
            recipients: vec!["a".into()],
            ..ctx.clone()
        };
        assert_eq!(
            receive(&sent.plaintext, &sent.tag, st, &sig, &vk, other).err(),
            Some(Rejection::BadSignature)
        );
        // A stamp signed by another key (a delivery service not the platform's).
        let stranger = ed25519_dalek::SigningKey::generate(&mut rng).verifying_key();
        assert!(receive(&sent.plaintext, &sent.tag, st, &sig, &stranger, ctx.clone()).is_err());
        assert!(receive(&sent.plaintext, &sent.tag, st, &sig, &vk, ctx).is_ok());
    }
}
