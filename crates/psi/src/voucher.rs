//! The safety voucher and its wire format.
//!
//! ```text
//! "BWPV" | u16 version (2) | [32] pdata root | u16 pairs
//!        | pairs × (u16 x | [32] Q | [64] y' ⊕ HKDF(S, "slot" ‖ Q))
//!        | u32 payload length | payload = [32] commitment ‖ AES-256-GCM(x ‖ y ‖ z ‖ adct)
//! ```
//!
//! A table's two pairs (its two cuckoo slots) carry the same share x of the
//! voucher key in the clear (random, distinct, nonzero: it does not say which
//! table) and its y, encoded as a uniformly random 64-byte string y' that
//! reduces to y mod ℓ, under a one-time pad from the slot key. Nothing
//! authenticates a pair: a pair that does not match "decrypts" to uniformly
//! random bytes, exactly like one that does, so the server learns nothing
//! from a pair alone; only the payload's key commitment tells it which m
//! shares rebuild the key (see `crate::server`).
//!
//! Parsing checks everything that can be checked without α: the sizes, that
//! every x is nonzero and appears exactly twice (version 3, multi-probe: the
//! same even number ≥ 4 of times for every x), that every Q is a canonical
//! ristretto255 encoding.
//!
//! Every voucher made against one pdata has the same length, real or
//! synthetic, matching or not.

use curve25519_dalek::ristretto::CompressedRistretto;

use crate::Rejection;
use crate::pdata::Root;
use crate::wire::Reader;

/// The voucher format version (2: unauthenticated pairs, share x in the clear).
pub const VOUCHER_VERSION: u16 = 2;
/// The version of multi-probe vouchers: the same layout, but each table's
/// share x appears 2·probes times (probes ≥ 2) instead of twice.
pub const VOUCHER_VERSION_PROBES: u16 = 3;
/// Largest voucher accepted (bytes).
pub const MAX_VOUCHER_BYTES: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"BWPV";
/// What a slot carries: the y of a share of the voucher key, as 64 bytes.
pub(crate) const PAIR_CT: usize = 64;
/// Bytes of one pair on the wire.
const PAIR_BYTES: usize = 2 + 32 + PAIR_CT;

/// One pair: the share's x (the same for a table's two pairs), Q, and the
/// padded y.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub(crate) x: u16,
    pub(crate) q: [u8; 32],
    pub(crate) ct: [u8; PAIR_CT],
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
    pub(crate) pairs: Vec<Pair>,
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
        v.extend_from_slice(&self.version().to_be_bytes());
        v.extend_from_slice(&self.root.0);
        v.extend_from_slice(&(self.pairs.len() as u16).to_be_bytes());
        for p in &self.pairs {
            v.extend_from_slice(&p.x.to_be_bytes());
            v.extend_from_slice(&p.q);
            v.extend_from_slice(&p.ct);
        }
        v.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    /// Pairs per share x (2·probes).
    pub(crate) fn group(&self) -> usize {
        let x0 = self.pairs.first().map(|p| p.x);
        self.pairs.iter().filter(|p| Some(p.x) == x0).count()
    }

    fn version(&self) -> u16 {
        if self.group() > 2 {
            VOUCHER_VERSION_PROBES
        } else {
            VOUCHER_VERSION
        }
    }

    /// The size of [`Voucher::to_bytes`].
    pub fn byte_len(&self) -> usize {
        4 + 2 + 32 + 2 + self.pairs.len() * PAIR_BYTES + 4 + self.payload.len()
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
        let version = r.u16("version").map_err(m)?;
        if version != VOUCHER_VERSION && version != VOUCHER_VERSION_PROBES {
            return Err(Rejection::Malformed("unsupported voucher version"));
        }
        let root = Root(r.array("root").map_err(m)?);
        let n = usize::from(r.u16("pairs").map_err(m)?);
        if n.saturating_mul(PAIR_BYTES) > r.remaining() {
            return Err(Rejection::Malformed("pair count exceeds the data"));
        }
        if n == 0 || n % 2 != 0 {
            return Err(Rejection::Malformed(
                "pair count is not a positive even number",
            ));
        }
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let x = r.u16("x").map_err(m)?;
            let q = r.array::<32>("Q").map_err(m)?;
            let ct = r.array::<PAIR_CT>("slot ciphertext").map_err(m)?;
            if x == 0 {
                return Err(Rejection::Malformed("a share x is zero"));
            }
            if CompressedRistretto(q).decompress().is_none() {
                return Err(Rejection::Malformed("Q is not a ristretto255 point"));
            }
            pairs.push(Pair { x, q, ct });
        }
        let mut xs: Vec<u16> = pairs.iter().map(|p| p.x).collect();
        xs.sort_unstable();
        let group = xs.iter().take_while(|&&x| x == xs[0]).count();
        let want = if version == VOUCHER_VERSION { 2 } else { group };
        if group != want
            || group % 2 != 0
            || (version == VOUCHER_VERSION_PROBES && group < 4)
            || xs
                .chunks(group)
                .any(|c| c.len() != group || c[0] != c[group - 1])
            || xs.windows(group + 1).any(|w| w[0] == w[group])
        {
            return Err(Rejection::Malformed(
                "every share x must appear exactly twice (version 3: the same even number of times, at least 4)",
            ));
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
