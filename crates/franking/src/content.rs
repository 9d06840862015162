//! The franked content: a message body and the attachments it references,
//! in one strict binary encoding.
//!
//! ```text
//! "BWC1" ‖ u32 body length ‖ body ‖ u16 attachment count ‖ attachments
//! attachment = u16 blob id length ‖ blob id ‖ key (32) ‖ commitment (32)
//!            ‖ ciphertext SHA-256 (32) ‖ u64 size ‖ u16 media type length ‖ media type
//! ```
//!
//! All integers are big-endian; nothing may follow the last attachment. A
//! report's attachment counts as sent by the sender only when it equals one
//! of the references parsed here ([`Content::references`]): text in the body
//! that looks like a reference (someone quoting another user's attachment)
//! is only text.

use subtle::ConstantTimeEq;

use crate::attachment::{AttachmentKey, AttachmentRef, Commitment};

const MAGIC: &[u8; 4] = b"BWC1";
/// Largest body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 << 10;
/// Most attachments in one message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Longest blob id or media type, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// A message's franked content.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Content {
    /// The message text (or other body bytes).
    pub body: Vec<u8>,
    /// The attachments the message carries.
    pub attachments: Vec<AttachmentRef>,
}

/// Why bytes are not a [`Content`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message content: {0}")]
pub struct ContentError(pub &'static str);

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ContentError> {
        if self.0.len() < n {
            return Err(ContentError(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ContentError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn text(&mut self, what: &'static str) -> Result<String, ContentError> {
        let n = usize::from(u16::from_be_bytes(self.array(what)?));
        if n == 0 || n > MAX_FIELD_BYTES {
            return Err(ContentError(what));
        }
        String::from_utf8(self.take(n, what)?.to_vec()).map_err(|_| ContentError(what))
    }
}

impl Content {
    /// A text message without attachments.
    pub fn text(body: &str) -> Content {
        Content {
            body: body.as_bytes().to_vec(),
            attachments: Vec::new(),
        }
    }

    /// The encoding above.
    ///
    /// # Panics
    /// If a field is over the limits ([`Content::check`] says which).
    pub fn to_bytes(&self) -> Vec<u8> {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        let mut v = Vec::with_capacity(16 + self.body.len() + 200 * self.attachments.len());
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        v.extend_from_slice(&self.body);
        v.extend_from_slice(&(self.attachments.len() as u16).to_be_bytes());
        for a in &self.attachments {
            v.extend_from_slice(&(a.blob_id.len() as u16).to_be_bytes());
            v.extend_from_slice(a.blob_id.as_bytes());
            v.extend_from_slice(&a.key.0);
            v.extend_from_slice(&a.commitment.0);
            v.extend_from_slice(&a.ciphertext_sha256);
            v.extend_from_slice(&a.size.to_be_bytes());
            v.extend_from_slice(&(a.media_type.len() as u16).to_be_bytes());
            v.extend_from_slice(a.media_type.as_bytes());
        }
        v
    }

    /// Every field within the limits.
    pub fn check(&self) -> Result<(), ContentError> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(ContentError("body over 256 KiB"));
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(ContentError("more than 10 attachments"));
        }
        for a in &self.attachments {
            for f in [&a.blob_id, &a.media_type] {
                if f.is_empty() || f.len() > MAX_FIELD_BYTES {
                    return Err(ContentError(
                        "attachment blob id or media type empty or over 256 bytes",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Parses [`Content::to_bytes`] strictly (no trailing bytes, limits checked).
    pub fn parse(bytes: &[u8]) -> Result<Content, ContentError> {
        let mut r = Reader(bytes);
        if r.take(4, "magic")? != MAGIC {
            return Err(ContentError("magic"));
        }
        let n = u32::from_be_bytes(r.array("body length")?) as usize;
        if n > MAX_BODY_BYTES {
            return Err(ContentError("body over 256 KiB"));
        }
        let body = r.take(n, "body")?.to_vec();
        let count = usize::from(u16::from_be_bytes(r.array("attachment count")?));
        if count > MAX_ATTACHMENTS {
            return Err(ContentError("more than 10 attachments"));
        }
        let mut attachments = Vec::with_capacity(count);
        for _ in 0..count {
            attachments.push(AttachmentRef {
                blob_id: r.text("blob id")?,
                key: AttachmentKey(r.array("key")?),
                commitment: Commitment(r.array("commitment")?),
                ciphertext_sha256: r.array("ciphertext sha256")?,
                size: u64::from_be_bytes(r.array("size")?),
                media_type: r.text("media type")?,
            });
        }
        if !r.0.is_empty() {
            return Err(ContentError("trailing bytes"));
        }
        Ok(Content { body, attachments })
    }

    /// Whether `a` is one of this content's attachment references, field by
    /// field (the key compared in constant time).
    pub fn references(&self, a: &AttachmentRef) -> bool {
        self.attachments.iter().any(|r| {
            bool::from(r.key.0.ct_eq(&a.key.0))
                && r.commitment == a.commitment
                && r.ciphertext_sha256 == a.ciphertext_sha256
                && r.blob_id == a.blob_id
                && r.size == a.size
                && r.media_type == a.media_type
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn round_trips_and_refuses_every_truncation() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (a, _) = crate::attachment::seal(b"benign", "image/png", "blob-1", &mut rng);
        let c = Content {
            body: b"look".to_vec(),
            attachments: vec![a.clone()],
        };
        let bytes = c.to_bytes();
        assert_eq!(Content::parse(&bytes), Ok(c.clone()));
        assert!(c.references(&a));
        for n in 0..bytes.len() {
            assert!(Content::parse(&bytes[..n]).is_err(), "truncated at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Content::parse(&longer), Err(ContentError("trailing bytes")));
    }

    #[test]
    fn a_quoted_reference_in_the_body_is_not_a_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let (theirs, _) = crate::attachment::seal(b"benign", "image/png", "blob-9", &mut rng);
        // Mallory's message quotes the encoded reference of someone else's attachment.
        let quoted = Content {
            body: Content {
                body: Vec::new(),
                attachments: vec![theirs.clone()],
            }
            .to_bytes(),
            attachments: Vec::new(),
        };
        let parsed = Content::parse(&quoted.to_bytes()).expect("parses");
        assert!(!parsed.references(&theirs));
    }
}
