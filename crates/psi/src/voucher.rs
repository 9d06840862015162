//! The safety voucher and its wire format.
//!
//! ```text
//! "BWPV" | u16 version | [32] pdata root | u16 pairs
//!        | pairs × ([32] Q | [50] slot ciphertext = AES-256-GCM(share of rkey: u16 x ‖ [32] y))
//!        | u32 payload length | payload = [32] commitment ‖ AES-256-GCM(x ‖ y ‖ z ‖ adct)
//! ```
//!
//! Every voucher made against one pdata has the same length, real or
//! synthetic, matching or not.

use crate::Rejection;
use crate::pdata::Root;
use crate::wire::Reader;

/// The voucher format version.
pub const VOUCHER_VERSION: u16 = 1;
/// Largest voucher accepted (bytes).
pub const MAX_VOUCHER_BYTES: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"BWPV";
/// What a slot carries: a share of the voucher key, `x (2) ‖ y (32)`.
pub(crate) const SHARE_PT: usize = 34;
/// Slot ciphertext: the share + 16-byte tag.
pub(crate) const PAIR_CT: usize = SHARE_PT + 16;
const SLOT_AAD: &[u8] = b"bulwark-psi-slot-v1";

pub(crate) fn slot_aad() -> &'static [u8] {
    SLOT_AAD
}

pub(crate) fn payload_aad(root: &Root) -> Vec<u8> {
    let mut v = b"bulwark-psi-payload-v1".to_vec();
    v.extend_from_slice(&root.0);
    v
}

/// One image's safety voucher (what a device uploads with an attachment).
#[derive(Clone, PartialEq, Eq)]
pub struct Voucher {
    pub(crate) root: Root,
    pub(crate) pairs: Vec<([u8; 32], [u8; PAIR_CT])>,
    pub(crate) payload: Vec<u8>,
}

impl std::fmt::Debug for Voucher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voucher")
            .field("root", &self.root)
            .field("pairs", &self.pairs.len())
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

impl Voucher {
    /// The root of the pdata it was built against.
    pub fn root(&self) -> Root {
        self.root
    }

    /// The wire form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.byte_len());
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&VOUCHER_VERSION.to_be_bytes());
        v.extend_from_slice(&self.root.0);
        v.extend_from_slice(&(self.pairs.len() as u16).to_be_bytes());
        for (q, ct) in &self.pairs {
            v.extend_from_slice(q);
            v.extend_from_slice(ct);
        }
        v.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    /// The size of [`Voucher::to_bytes`].
    pub fn byte_len(&self) -> usize {
        4 + 2 + 32 + 2 + self.pairs.len() * (32 + PAIR_CT) + 4 + self.payload.len()
    }

    /// Parses untrusted bytes (at most [`MAX_VOUCHER_BYTES`]). Never panics.
    /// Sizes are checked against the pdata only when the voucher is ingested.
    pub fn from_bytes(b: &[u8]) -> Result<Voucher, Rejection> {
        if b.len() > MAX_VOUCHER_BYTES {
            return Err(Rejection::Malformed("voucher larger than 64 KiB"));
        }
        let m = |e: crate::wire::Short| Rejection::Malformed(e.0);
        let mut r = Reader::new(b);
        if &r.array::<4>("magic").map_err(m)? != MAGIC {
            return Err(Rejection::Malformed("not a voucher (magic is not BWPV)"));
        }
        if r.u16("version").map_err(m)? != VOUCHER_VERSION {
            return Err(Rejection::Malformed("unsupported voucher version"));
        }
        let root = Root(r.array("root").map_err(m)?);
        let n = usize::from(r.u16("pairs").map_err(m)?);
        if n.saturating_mul(32 + PAIR_CT) > r.remaining() {
            return Err(Rejection::Malformed("pair count exceeds the data"));
        }
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let q = r.array::<32>("Q").map_err(m)?;
            let ct = r.array::<PAIR_CT>("slot ciphertext").map_err(m)?;
            pairs.push((q, ct));
        }
        let len = r.u32("payload length").map_err(m)? as usize;
        let payload = r.bytes(len, "payload").map_err(m)?.to_vec();
        r.finish().map_err(m)?;
        Ok(Voucher {
            root,
            pairs,
            payload,
        })
    }
}
