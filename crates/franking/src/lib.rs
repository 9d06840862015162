//! Message franking and key-committing attachments: verifiable abuse reports
//! from end-to-end encrypted chats.
//!
//! The scheme follows the MIMI style of franking (draft-ietf-mimi-protocol,
//! "Message Franking"):
//!
//! 1. **Sender** ([`frank`]): picks a random 128-bit [`Salt`], puts it *inside*
//!    the encrypted content, and puts `tag = HMAC-SHA256(salt, "bulwark-franking-tag-v2"
//!    ‖ sender ‖ conversation ‖ message id ‖ content)` in the message's
//!    authenticated data ([`FrankingTag`]). The tag commits the sender to the
//!    message's [`MessageInfo`]: a receiver recomputes it with the sender it
//!    authenticated (the MLS credential), so a tag cannot be moved to another
//!    sender, conversation or message id without the receiver dropping it.
//!    The content is a structured [`content::Content`] (body and attachment
//!    references), so an attachment is "referenced" only when it is one of the
//!    parsed references, never because its text is quoted in the body.
//! 2. **Delivery service** ([`Keyring::stamp`]): sees only the tag and what
//!    its authenticated session tells it, and binds the tag to it:
//!    `stamp = HMAC-SHA256(service key, stamp input)` where the stamp input is
//!    `"bulwark-franking-stamp-v2" ‖ tag ‖ sender ‖ conversation ‖ message id ‖
//!    epoch ‖ SHA-256 of the recipient set ‖ time ‖ stamper`, every field
//!    length-prefixed ([`Context`]). The service also signs the same bytes with
//!    Ed25519 ([`Keyring::sign`]) so receivers check every stamp on receipt
//!    ([`verify_signature`]): a delivery service cannot hand out stamps that
//!    would not verify in a report without the receiver noticing.
//! 3. **Receiver** ([`verify_tag`]): after decrypting, recomputes the tag from
//!    the content, salt and the message info it authenticated, and drops a
//!    message whose tag does not match.
//! 4. **Report** ([`Keyring::verify_report`]): the receiver reveals the content
//!    and salt of the reported message with its stamp and context; the service
//!    recomputes both MACs and learns who sent exactly that content, to which
//!    conversation and recipients, when — and nothing about any other message.
//!    Because the recipient set is under the stamp, the service can check that
//!    the reporter was a recipient ([`Context::has_recipient`]).
//!
//! Service keys rotate: a [`Keyring`] stamps with its newest key and keeps old
//! keys, by id, to verify old reports.
//!
//! Attachments ([`attachment`]) are encrypted with a random key and carry a key
//! commitment, so one ciphertext cannot open to two different files under two
//! keys ("invisible salamanders", Dodis–Grubbs–Ristenpart–Woodage 2018), which
//! plain AES-GCM allows.
//!
//! MAC and tag comparisons are constant-time; keys and salts are zeroized on drop
//! and never printed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attachment;
pub mod content;
pub mod wire;

use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

/// Domain separation for tags; part of the MAC input.
const TAG_LABEL: &[u8] = b"bulwark-franking-tag-v2";
/// Domain separation for stamps; part of the MAC input.
const STAMP_LABEL: &[u8] = b"bulwark-franking-stamp-v2";
/// Domain separation for the recipient-set digest.
const RECIPIENTS_LABEL: &[u8] = b"bulwark-franking-recipients-v1";

/// Longest sender, conversation, message id, stamper or recipient id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most recipients a stamp binds (an MLS group's members at the epoch).
pub const MAX_RECIPIENTS: usize = 10_000;

/// The 128-bit secret a sender puts inside the encrypted content.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Salt(pub [u8; 16]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}

/// `HMAC-SHA256(salt, label ‖ message info ‖ content)`: what the sender puts
/// in the authenticated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrankingTag(pub [u8; 32]);

/// The delivery service's MAC over a tag and its context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Which service key made it.
    pub key_id: u32,
    /// The MAC.
    pub mac: [u8; 32],
}

/// Why a franked message or a report does not verify. Shown to the service's
/// operators and stored with a rejected report; a sender or reporter is told
/// only that verification failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The content and salt do not give the tag.
    #[error("the franking tag does not match the content and salt")]
    TagMismatch,
    /// The stamp does not match the tag and its context.
    #[error(
        "the stamp does not match the tag, sender, conversation, message id, epoch, recipients, time and stamper"
    )]
    StampMismatch,
    /// The stamp names a service key this keyring does not hold.
    #[error("the stamp was made with unknown service key {0}")]
    UnknownKey(u32),
    /// The stamp's signature is invalid.
    #[error("the stamp's signature is invalid")]
    BadSignature,
    /// A field of the context is empty or longer than the limits.
    #[error("a context field is empty or too long")]
    BadContext,
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Appends `part` with a 4-byte big-endian length prefix.
fn put(v: &mut Vec<u8>, part: &[u8]) {
    v.extend_from_slice(&(part.len() as u32).to_be_bytes());
    v.extend_from_slice(part);
}

/// What the sender commits to with its tag (besides the content): who sends,
/// where, and the message's id. The receiver recomputes the tag with the
/// values it authenticated itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageInfo {
    /// Sender identity as the service and the receivers know it.
    pub sender: String,
    /// Conversation (MLS group) identity.
    pub conversation: String,
    /// The message's id, chosen by the sender (random, unique per conversation).
    pub message_id: String,
}

impl MessageInfo {
    /// A message info from its three fields.
    pub fn new(sender: &str, conversation: &str, message_id: &str) -> MessageInfo {
        MessageInfo {
            sender: sender.to_string(),
            conversation: conversation.to_string(),
            message_id: message_id.to_string(),
        }
    }

    fn valid(&self) -> bool {
        [&self.sender, &self.conversation, &self.message_id]
            .iter()
            .all(|f| !f.is_empty() && f.len() <= MAX_ID_BYTES)
    }
}

/// Computes the sender's salt and tag for `content` sent as `info`.
pub fn frank<R: RngCore + CryptoRng>(
    info: &MessageInfo,
    content: &[u8],
    rng: &mut R,
) -> (Salt, FrankingTag) {
    let mut salt = Salt([0; 16]);
    rng.fill_bytes(&mut salt.0);
    let tag = tag_of(&salt, info, content);
    (salt, tag)
}

/// `HMAC-SHA256(salt, "bulwark-franking-tag-v2" ‖ sender ‖ conversation ‖
/// message id ‖ content)`, each field with a 4-byte big-endian length.
pub fn tag_of(salt: &Salt, info: &MessageInfo, content: &[u8]) -> FrankingTag {
    let mut v = Vec::with_capacity(64 + content.len());
    for part in [
        TAG_LABEL,
        info.sender.as_bytes(),
        info.conversation.as_bytes(),
        info.message_id.as_bytes(),
        content,
    ] {
        put(&mut v, part);
    }
    FrankingTag(mac(&salt.0, &[&v]))
}

/// Receiver's check after decryption: the content, salt and the message info
/// the receiver authenticated give the tag that was in the authenticated
/// data. Constant-time.
pub fn verify_tag(
    info: &MessageInfo,
    content: &[u8],
    salt: &Salt,
    tag: &FrankingTag,
) -> Result<(), Rejection> {
    let t = tag_of(salt, info, content);
    if bool::from(t.0.ct_eq(&tag.0)) {
        Ok(())
    } else {
        Err(Rejection::TagMismatch)
    }
}

/// Everything the delivery service binds a tag to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// Sender, conversation and message id (the same the sender's tag commits to).
    pub info: MessageInfo,
    /// The MLS epoch the message was sent in.
    pub epoch: u64,
    /// Who the message was delivered to (member identities at that epoch);
    /// bound as a digest of the sorted, de-duplicated set.
    pub recipients: Vec<String>,
    /// When the service accepted the message, Unix seconds (the service's clock).
    pub accepted_at: u64,
    /// Which delivery-service credential attested sender and conversation
    /// (the stamping API key's id).
    pub stamper: String,
}

impl Context {
    /// SHA-256 of `"bulwark-franking-recipients-v1" ‖ count ‖ each id`
    /// (sorted, de-duplicated, length-prefixed): the same set always gives
    /// the same digest, whatever order the service listed it in.
    pub fn recipients_digest(&self) -> [u8; 32] {
        let mut ids: Vec<&str> = self.recipients.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut h = Sha256::new();
        h.update(RECIPIENTS_LABEL);
        h.update((ids.len() as u32).to_be_bytes());
        for id in ids {
            h.update((id.len() as u32).to_be_bytes());
            h.update(id.as_bytes());
        }
        h.finalize().into()
    }

    /// Whether `who` is one of the recipients.
    pub fn has_recipient(&self, who: &str) -> bool {
        self.recipients.iter().any(|r| r == who)
    }

    /// Every field within the limits (non-empty ids, at most
    /// [`MAX_ID_BYTES`] each, at most [`MAX_RECIPIENTS`] recipients).
    pub fn validate(&self) -> Result<(), Rejection> {
        let ok = self.info.valid()
            && !self.stamper.is_empty()
            && self.stamper.len() <= MAX_ID_BYTES
            && self.recipients.len() <= MAX_RECIPIENTS
            && self
                .recipients
                .iter()
                .all(|r| !r.is_empty() && r.len() <= MAX_ID_BYTES);
        if ok {
            Ok(())
        } else {
            Err(Rejection::BadContext)
        }
    }

    /// The exact bytes stamped and signed: label, then each field with a
    /// 4-byte big-endian length, so no two different contexts share an encoding.
    pub fn stamp_input(&self, tag: &FrankingTag) -> Vec<u8> {
        let mut v = Vec::with_capacity(256);
        for part in [
            STAMP_LABEL,
            &tag.0[..],
            self.info.sender.as_bytes(),
            self.info.conversation.as_bytes(),
            self.info.message_id.as_bytes(),
            &self.epoch.to_be_bytes()[..],
            &self.recipients_digest()[..],
            &self.accepted_at.to_be_bytes()[..],
            self.stamper.as_bytes(),
        ] {
            put(&mut v, part);
        }
        v
    }
}

/// A service MAC key with its id.
#[derive(Zeroize, ZeroizeOnDrop)]
struct ServiceKey {
    id: u32,
    key: [u8; 32],
}

/// The delivery service's keys: the newest stamps, all verify.
pub struct Keyring {
    keys: Vec<ServiceKey>,
    signing: Option<ed25519_dalek::SigningKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "key_ids",
                &self.keys.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .field("signs", &self.signing.is_some())
            .finish()
    }
}

/// A report of one message, as a receiver submits it (untrusted until verified).
#[derive(Clone, Debug)]
pub struct ReportedMessage<'a> {
    /// The decrypted content (as the sender franked it).
    pub content: &'a [u8],
    /// The salt found inside the content's envelope.
    pub salt: Salt,
    /// The context as the receiver was told it with the stamp.
    pub context: &'a Context,
    /// The service's stamp that came with the message.
    pub stamp: Stamp,
}

/// What a verified report establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedMessage {
    /// The tag recomputed from content and salt.
    pub tag: FrankingTag,
    /// The service key that stamped it.
    pub key_id: u32,
}

impl Keyring {
    /// A keyring with one fresh random key (id 1) and no signing key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Keyring {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let ring = Keyring::from_keys([(1, key)]);
        key.zeroize();
        ring
    }

    /// A keyring from stored keys `(id, key)`; the largest id stamps.
    pub fn from_keys(keys: impl IntoIterator<Item = (u32, [u8; 32])>) -> Keyring {
        let mut keys: Vec<ServiceKey> = keys
            .into_iter()
            .map(|(id, key)| ServiceKey { id, key })
            .collect();
        keys.sort_by_key(|k| k.id);
        Keyring {
            keys,
            signing: None,
        }
    }

    /// Adds an Ed25519 signing key so stamps can be signed for receivers.
    pub fn with_signing_key(mut self, key: ed25519_dalek::SigningKey) -> Keyring {
        self.signing = Some(key);
        self
    }

    /// Adds a new newest key; old keys stay to verify old reports. Returns its id.
    pub fn rotate<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> u32 {
        let id = self.keys.last().map_or(1, |k| k.id + 1);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        self.keys.push(ServiceKey { id, key });
        key.zeroize();
        id
    }

    /// Drops keys older than `id` (reports stamped with them no longer verify).
    pub fn retire_before(&mut self, id: u32) {
        self.keys.retain(|k| k.id >= id);
    }

    /// Stamps a tag with the newest key.
    ///
    /// # Panics
    /// If the keyring is empty (it never is unless built from no keys).
    pub fn stamp(&self, tag: &FrankingTag, ctx: &Context) -> Stamp {
        let k = self.keys.last().expect("a keyring holds at least one key");
        Stamp {
            key_id: k.id,
            mac: mac(&k.key, &[&ctx.stamp_input(tag)]),
        }
    }

    /// Signs the stamped bytes, for receivers that check stamps themselves.
    pub fn sign(&self, tag: &FrankingTag, ctx: &Context) -> Option<ed25519_dalek::Signature> {
        use ed25519_dalek::Signer;
        self.signing.as_ref().map(|k| k.sign(&ctx.stamp_input(tag)))
    }

    /// The public half of the signing key, for receivers.
    pub fn verifying_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        self.signing.as_ref().map(|k| k.verifying_key())
    }

    /// Verifies a report: the tag from content, salt and message info, then
    /// the stamp over tag and context with the key the stamp names.
    /// Constant-time compares.
    pub fn verify_report(&self, m: &ReportedMessage<'_>) -> Result<VerifiedMessage, Rejection> {
        m.context.validate()?;
        let tag = tag_of(&m.salt, &m.context.info, m.content);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == m.stamp.key_id)
            .ok_or(Rejection::UnknownKey(m.stamp.key_id))?;
        let expect = mac(&key.key, &[&m.context.stamp_input(&tag)]);
        if bool::from(expect.ct_eq(&m.stamp.mac)) {
            Ok(VerifiedMessage {
                tag,
                key_id: key.id,
            })
        } else {
            // Either the content/salt or the context was altered: the tag the
            // stamp covers is not recomputable, which is all the service can tell.
            Err(Rejection::StampMismatch)
        }
    }
}

/// Receiver-side check of a signed stamp (strict Ed25519 verification).
pub fn verify_signature(
    key: &ed25519_dalek::VerifyingKey,
    tag: &FrankingTag,
    ctx: &Context,
    sig: &ed25519_dalek::Signature,
) -> Result<(), Rejection> {
    key.verify_strict(&ctx.stamp_input(tag), sig)
        .map_err(|_| Rejection::BadSignature)
}

/// Entry points for `cargo fuzz` (see fuzz/ at the repository root).
#[doc(hidden)]
pub mod fuzzing {
    /// Parsing arbitrary bytes as message content must not panic; what
    /// parses re-encodes to the same bytes.
    pub fn content(data: &[u8]) {
        if let Ok(c) = crate::content::Content::parse(data) {
            assert_eq!(c.to_bytes(), data);
        }
    }

    /// Decoding arbitrary bytes as a report must not panic; what decodes
    /// re-encodes to a report that decodes to the same messages.
    pub fn report(data: &[u8]) {
        if let Ok(r) = crate::wire::parse_report(data) {
            let again = crate::wire::ReportJson {
                messages: r.messages.iter().map(crate::wire::message_json).collect(),
                reason: r.reason.clone(),
                text: r.text.clone(),
                reporter: None,
            };
            let bytes = serde_json::to_vec(&again).expect("serialises");
            let back = crate::wire::parse_report(&bytes).expect("round trip");
            assert_eq!(back.messages.len(), r.messages.len());
            for (a, b) in back.messages.iter().zip(&r.messages) {
                assert_eq!(a.content, b.content);
                assert_eq!(a.stamp, b.stamp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_rfc4231_vectors() {
        // Test case 1: key 0x0b × 20, "Hi There".
        let t1 = mac(&[0x0b; 20], &[b"Hi There"]);
        assert_eq!(
            t1,
            *b"\xb0\x34\x4c\x61\xd8\xdb\x38\x53\x5c\xa8\xaf\xce\xaf\x0b\xf1\x2b\x88\x1d\xc2\x00\xc9\x83\x3d\xa7\x26\xe9\x37\x6c\x2e\x32\xcf\xf7"
        );
        // Test case 2: key "Jefe", split input (the multi-part path).
        let t2 = mac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            t2,
            *b"\x5b\xdc\xc1\x46\xbf\x60\x75\x4e\x6a\x04\x24\x26\x08\x95\x75\xc7\x5a\x00\x3f\x08\x9d\x27\x39\x83\x9d\xec\x58\xb9\x64\xec\x38\x43"
        );
    }
}
