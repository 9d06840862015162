//! Server keys, the blinded tables ("pdata"), their Merkle root, and the
//! server's plain lookup table.
//!
//! # Format (versions 2 and 3, all integers big-endian)
//!
//! ```text
//! header:  "BWPD" | u16 version | u16 tables | u8 bits_per_table | u16 threshold
//!          | u16 max_synthetic | u16 radius | u16 derivative_bytes | u16 min_tables
//!          | [version 3 only: u8 probes]
//!          | u64 synthetic_probability (IEEE-754 bits) | u64 epoch | u16 min_providers
//!          | u64 bank entries | [32] L = α·G | [32] seed
//!          | tables × (u32 cuckoo salt | u32 slots)
//! body:    for each table, slots × [32] compressed ristretto255 points
//! ```
//!
//! Parameters with one probe per table (no multi-probe) are written as
//! version 2, byte for byte as before; multi-probe parameters as version 3.
//! A version 3 header with `probes` = 1 is refused, so each parameter set has
//! exactly one encoding.
//!
//! # Merkle root
//!
//! Leaves are the header and then each table's points in chunks of
//! [`CHUNK_POINTS`] (the last chunk of a table may be shorter). A leaf hashes to
//! SHA-256(0x00 ‖ "bulwark-psi-pdata-v1" ‖ bytes), an inner node to
//! SHA-256(0x01 ‖ left ‖ right); a list of n > 1 leaves splits at the largest
//! power of two below n (the RFC 6962 tree shape). The root is what a list
//! provider signs and a device checks.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use bulwark_pdq::PdqHash;
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::hash_to_group;
use crate::lsh::{self, SubKey};
use crate::wire::Reader;
use crate::{Params, PdataError};

/// Magic bytes that start a pdata file.
pub const PDATA_MAGIC: &[u8; 4] = b"BWPD";
/// The pdata format version this crate writes and reads (2: the header
/// carries the epoch, the provider quorum and the bank size).
pub const PDATA_VERSION: u16 = 2;
/// The pdata format version of multi-probe parameters (`probes` > 1): the
/// header carries the probe count.
pub const PDATA_VERSION_PROBES: u16 = 3;
/// Points per Merkle leaf.
pub const CHUNK_POINTS: usize = 1024;
/// Largest pdata accepted: 1 GiB.
pub const MAX_PDATA_BYTES: usize = 1 << 30;

/// Header bytes before the per-table (salt, slots) pairs.
const HEADER_FIXED: usize = 109;
const KEY_MAGIC: &[u8; 4] = b"BWSK";
const KEY_VERSION: u16 = 1;
const DST_LEAF: &[u8] = b"bulwark-psi-pdata-v1";
const DST_CUCKOO: &[u8] = b"bulwark-psi-cuckoo-v1";
const MAX_KICKS: usize = 2000;
const MAX_SALTS: u32 = 64;

/// The server's secret α and public L = α·G. Zeroized on drop; `Debug` shows
/// only the public half.
pub struct ServerKeys {
    alpha: Scalar,
    public: RistrettoPoint,
}

impl Drop for ServerKeys {
    fn drop(&mut self) {
        self.alpha.zeroize();
    }
}

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKeys")
            .field("alpha", &"<redacted>")
            .field("public", &hex::encode(self.public().0))
            .finish()
    }
}

/// A compressed public point L = α·G.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl ServerKeys {
    /// Fresh keys: α uniform and nonzero.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> ServerKeys {
        loop {
            let alpha = Scalar::random(rng);
            if alpha != Scalar::ZERO {
                let public = &alpha * RISTRETTO_BASEPOINT_TABLE;
                return ServerKeys { alpha, public };
            }
        }
    }

    /// `"BWSK" ‖ u16 version ‖ α` (38 bytes). Secret: store it like a private key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(38));
        v.extend_from_slice(KEY_MAGIC);
        v.extend_from_slice(&KEY_VERSION.to_be_bytes());
        v.extend_from_slice(self.alpha.as_bytes());
        v
    }

    /// Reads [`ServerKeys::to_bytes`]; refuses a non-canonical or zero α.
    pub fn from_bytes(b: &[u8]) -> Result<ServerKeys, PdataError> {
        if b.len() != 38 || &b[..4] != KEY_MAGIC {
            return Err(PdataError::Malformed("not a 38-byte BWSK server key"));
        }
        let v = u16::from_be_bytes([b[4], b[5]]);
        if v != KEY_VERSION {
            return Err(PdataError::UnsupportedVersion(v));
        }
        let mut a = Zeroizing::new([0u8; 32]);
        a.copy_from_slice(&b[6..]);
        let alpha: Option<Scalar> = Scalar::from_canonical_bytes(*a).into();
        match alpha {
            Some(alpha) if alpha != Scalar::ZERO => Ok(ServerKeys {
                public: &alpha * RISTRETTO_BASEPOINT_TABLE,
                alpha,
            }),
            _ => Err(PdataError::Malformed(
                "server key is not a canonical nonzero scalar",
            )),
        }
    }

    /// The public key L = α·G.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.public.compress().to_bytes())
    }

    pub(crate) fn alpha(&self) -> &Scalar {
        &self.alpha
    }
}

/// A Merkle root over a pdata (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Root(pub [u8; 32]);

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root({self})")
    }
}

impl FromStr for Root {
    type Err = PdataError;
    fn from_str(s: &str) -> Result<Root, PdataError> {
        let v = hex::decode(s.trim()).map_err(|_| PdataError::Malformed("root is not hex"))?;
        let a: [u8; 32] = v
            .try_into()
            .map_err(|_| PdataError::Malformed("root is not 64 hex digits"))?;
        Ok(Root(a))
    }
}

impl Root {
    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Root) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(DST_LEAF);
    h.update(data);
    h.finalize().into()
}

fn merkle(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => leaf_hash(&[]),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let (l, r) = (merkle(&leaves[..k]), merkle(&leaves[k..]));
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(l);
            h.update(r);
            h.finalize().into()
        }
    }
}

/// One cuckoo table: its salt and its slots' compressed points.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) salt: u32,
    pub(crate) points: Vec<[u8; 32]>,
}

/// A verified pdata: the public parameters and blinded tables a device builds
/// vouchers against. Obtained by [`Pdata::build`] (server) or
/// [`PdataIn::verify`] / [`Pdata::from_bytes`] (device: only with the root).
#[derive(Clone, PartialEq)]
pub struct Pdata {
    pub(crate) params: Params,
    pub(crate) release: Release,
    pub(crate) bank_entries: u64,
    pub(crate) public: RistrettoPoint,
    pub(crate) seed: [u8; 32],
    pub(crate) tables: Vec<Table>,
    pub(crate) positions: Vec<Vec<u8>>,
    pub(crate) root: Root,
}

impl fmt::Debug for Pdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pdata")
            .field("params", &self.params)
            .field("root", &self.root)
            .field(
                "slots",
                &self
                    .tables
                    .iter()
                    .map(|t| t.points.len())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A parsed but not yet verified pdata (untrusted input). The only way to use
/// it is [`PdataIn::verify`] against a root obtained out of band.
#[derive(Clone, Debug)]
pub struct PdataIn(Pdata);

pub(crate) fn cuckoo_slot(seed: &[u8; 32], salt: u32, key: SubKey, j: u8, slots: usize) -> usize {
    let mut h = Sha256::new();
    h.update(DST_CUCKOO);
    h.update(seed);
    h.update(salt.to_be_bytes());
    h.update([j]);
    h.update(key.to_bytes());
    let d = h.finalize();
    let mut w = [0u8; 8];
    w.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(w) % slots as u64) as usize
}

/// Cuckoo-inserts `keys` into `slots` slots; `None` if a key cannot be placed.
fn cuckoo_place<R: RngCore>(
    seed: &[u8; 32],
    salt: u32,
    keys: &[SubKey],
    slots: usize,
    rng: &mut R,
) -> Option<Vec<Option<u32>>> {
    let mut t: Vec<Option<u32>> = vec![None; slots];
    for (i, _) in keys.iter().enumerate() {
        let mut cur = i as u32;
        let mut placed = false;
        for _ in 0..MAX_KICKS {
            let k = keys[cur as usize];
            let p0 = cuckoo_slot(seed, salt, k, 0, slots);
            let p1 = cuckoo_slot(seed, salt, k, 1, slots);
            if t[p0].is_none() {
                t[p0] = Some(cur);
                placed = true;
                break;
            }
            if t[p1].is_none() {
                t[p1] = Some(cur);
                placed = true;
                break;
            }
            let p = if rng.next_u32() & 1 == 0 { p0 } else { p1 };
            let evicted = t[p].replace(cur);
            cur = evicted.unwrap_or(cur);
        }
        if !placed {
            return None;
        }
    }
    Some(t)
}

/// Slots for `n` distinct sub-keys: a load of about 0.485 (two-choice cuckoo
/// hashing with one slot per bucket fails above 0.5; placement retries with a
/// new salt if a random walk gets stuck).
pub fn slots_for(n: usize) -> usize {
    (n * 2 + n / 16 + 8).max(8)
}

/// What a release adds to the parameters, all in the signed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// The epoch id: every device secret is derived per epoch, so what the
    /// service learns about an account in one epoch says nothing about another.
    pub epoch: u64,
    /// How many distinct pinned provider keys must sign the root (at least 2;
    /// devices never accept fewer whatever this says).
    pub min_providers: u16,
}

impl Default for Release {
    /// Epoch 0, two providers.
    fn default() -> Self {
        Release {
            epoch: 0,
            min_providers: 2,
        }
    }
}

impl Pdata {
    /// [`Pdata::build_release`] for epoch 0 and two providers.
    pub fn build<R: RngCore + CryptoRng>(
        keys: &ServerKeys,
        params: &Params,
        entries: &[(u64, PdqHash)],
        rng: &mut R,
    ) -> Result<(Pdata, ServerTable), PdataError> {
        Pdata::build_release(keys, params, Release::default(), entries, rng)
    }

    /// Builds the pdata for a bank: for each LSH table, the distinct sub-keys
    /// of the entries' hashes, cuckoo-placed, blinded as α·H(seed ‖ sub-key);
    /// empty slots hold random points. `entries` are (content id, hash); the
    /// ids stay on the server (see [`ServerTable`]).
    ///
    /// Cost: one hash-to-group and one scalar multiplication per distinct
    /// sub-key per table (≈ 40 µs each on the project's VM).
    pub fn build_release<R: RngCore + CryptoRng>(
        keys: &ServerKeys,
        params: &Params,
        release: Release,
        entries: &[(u64, PdqHash)],
        rng: &mut R,
    ) -> Result<(Pdata, ServerTable), PdataError> {
        Pdata::build_with_variants(keys, params, release, entries, &[], 0, rng)
    }

    /// Bank-side expansion: [`Pdata::build_release`] where the first
    /// `variant_tables` tables also hold the sub-keys of `variants` — extra
    /// hashes of banked images (content id, hash), such as hashes of centred
    /// crops of them, so that a copy nearer a variant than the image itself
    /// (a cropped copy) still agrees in those tables. The pdata format, the
    /// vouchers and the device are unchanged; each variant costs pdata space
    /// (≈ 66 B per table it is in, fewer where its sub-key equals the image's)
    /// and false candidates. The header's `bank_entries` counts `entries`
    /// only. The [`ServerTable`] holds entries and variants, so an opened
    /// voucher within the radius of a variant matches its content id.
    /// Measured on the corpus in docs/PRIVATE-MATCHING.md ("Multi-probe").
    pub fn build_with_variants<R: RngCore + CryptoRng>(
        keys: &ServerKeys,
        params: &Params,
        release: Release,
        entries: &[(u64, PdqHash)],
        variants: &[(u64, PdqHash)],
        variant_tables: u16,
        rng: &mut R,
    ) -> Result<(Pdata, ServerTable), PdataError> {
        params.validate()?;
        if release.min_providers < 2 {
            return Err(PdataError::InvalidParams(
                "min_providers must be at least 2",
            ));
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let positions = lsh::positions(&seed, params.tables, params.bits_per_table);
        let mut tables = Vec::with_capacity(positions.len());
        for (l, pos) in positions.iter().enumerate() {
            let extra = if l < usize::from(variant_tables) {
                variants
            } else {
                &[]
            };
            let keys_l: Vec<SubKey> = entries
                .iter()
                .chain(extra)
                .map(|(_, h)| lsh::sub_key(h, l as u16, pos))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let slots = slots_for(keys_l.len());
            let mut placed = None;
            for salt in 0..MAX_SALTS {
                if let Some(t) = cuckoo_place(&seed, salt, &keys_l, slots, rng) {
                    placed = Some((salt, t));
                    break;
                }
            }
            let (salt, t) = placed.ok_or(PdataError::BuildFailed)?;
            // Randomness for the empty slots is drawn here, in order; the
            // points (one scalar multiplication per used slot) are computed on
            // every core.
            let fill: Vec<[u8; 64]> = t
                .iter()
                .map(|_| {
                    let mut b = [0u8; 64];
                    rng.fill_bytes(&mut b);
                    b
                })
                .collect();
            let mut points = vec![[0u8; 32]; t.len()];
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let chunk = t.len().div_ceil(threads).max(1);
            let (alpha, keys_l, seed) = (keys.alpha(), &keys_l, &seed);
            std::thread::scope(|sc| {
                for ((out, slots), fill) in points
                    .chunks_mut(chunk)
                    .zip(t.chunks(chunk))
                    .zip(fill.chunks(chunk))
                {
                    sc.spawn(move || {
                        for ((o, s), f) in out.iter_mut().zip(slots).zip(fill) {
                            *o = match s {
                                Some(i) => {
                                    let h = hash_to_group(&[seed, &keys_l[*i as usize].to_bytes()]);
                                    (alpha * h).compress().to_bytes()
                                }
                                None => RistrettoPoint::from_uniform_bytes(f).compress().to_bytes(),
                            };
                        }
                    });
                }
            });
            tables.push(Table { salt, points });
        }
        let mut p = Pdata {
            params: *params,
            release,
            bank_entries: entries.len() as u64,
            public: keys.public,
            seed,
            tables,
            positions,
            root: Root([0; 32]),
        };
        p.root = p.compute_root();
        let all: Vec<(u64, PdqHash)> = entries.iter().chain(variants).copied().collect();
        let st = ServerTable::new(&p, &all);
        Ok((p, st))
    }

    /// The header as serialised (what [`Pdata::header_digest`] hashes).
    pub(crate) fn header_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let mut v = Vec::with_capacity(HEADER_FIXED + 1 + 8 * self.tables.len());
        v.extend_from_slice(PDATA_MAGIC);
        let version = if p.probes > 1 {
            PDATA_VERSION_PROBES
        } else {
            PDATA_VERSION
        };
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&p.tables.to_be_bytes());
        v.push(p.bits_per_table);
        v.extend_from_slice(&p.threshold.to_be_bytes());
        v.extend_from_slice(&p.max_synthetic.to_be_bytes());
        v.extend_from_slice(&p.radius.to_be_bytes());
        v.extend_from_slice(&p.derivative_bytes.to_be_bytes());
        v.extend_from_slice(&p.min_tables.to_be_bytes());
        if p.probes > 1 {
            v.push(p.probes);
        }
        v.extend_from_slice(&p.synthetic_probability.to_bits().to_be_bytes());
        v.extend_from_slice(&self.release.epoch.to_be_bytes());
        v.extend_from_slice(&self.release.min_providers.to_be_bytes());
        v.extend_from_slice(&self.bank_entries.to_be_bytes());
        v.extend_from_slice(self.public.compress().as_bytes());
        v.extend_from_slice(&self.seed);
        for t in &self.tables {
            v.extend_from_slice(&t.salt.to_be_bytes());
            v.extend_from_slice(&(t.points.len() as u32).to_be_bytes());
        }
        v
    }

    fn compute_root(&self) -> Root {
        let mut leaves = vec![leaf_hash(&self.header_bytes())];
        for t in &self.tables {
            for chunk in t.points.chunks(CHUNK_POINTS) {
                leaves.push(leaf_hash(&chunk.concat()));
            }
        }
        Root(merkle(&leaves))
    }

    /// The serialised pdata (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.header_bytes();
        for t in &self.tables {
            for p in &t.points {
                v.extend_from_slice(p);
            }
        }
        v
    }

    /// Parses and verifies in one step: refuses bytes whose root is not `root`.
    pub fn from_bytes(bytes: &[u8], root: &Root) -> Result<Pdata, PdataError> {
        PdataIn::from_bytes(bytes)?.verify(root)
    }

    /// The Merkle root.
    pub fn root(&self) -> Root {
        self.root
    }

    /// `Ok` if this pdata's root is `root` (constant-time).
    pub fn verify(&self, root: &Root) -> Result<(), PdataError> {
        if self.root.ct_eq(root) {
            Ok(())
        } else {
            Err(PdataError::RootMismatch)
        }
    }

    /// Checks the published header against a device's [`crate::Policy`]: the
    /// parameters must be exactly one of the allowed profiles, the server key
    /// must not be the identity, the provider quorum at least the device's (and
    /// never below 2), and no table larger than the published bank size
    /// explains. Signatures are checked by [`crate::SignedRoot::verify`].
    pub fn check_policy(&self, policy: &crate::Policy) -> Result<(), PdataError> {
        let no = |why| Err(PdataError::Policy(why));
        if !policy.profiles.iter().any(|pr| pr.allows(&self.params)) {
            return no("parameters are not one of the device's allowed profiles");
        }
        if self.public == RistrettoPoint::identity() {
            return no("the server public key is the identity point");
        }
        if self.release.min_providers < policy.min_providers().max(2) {
            return no("fewer providers than the device requires");
        }
        let max = usize::try_from(self.bank_entries)
            .map(slots_for)
            .unwrap_or(usize::MAX);
        if self.tables.iter().any(|t| t.points.len() > max) {
            return no("a table is larger than the published bank size explains");
        }
        Ok(())
    }

    /// SHA-256 of the serialised header (what provider signatures cover,
    /// next to the root).
    pub fn header_digest(&self) -> [u8; 32] {
        Sha256::digest(self.header_bytes()).into()
    }

    /// The epoch, provider quorum and bank size from the header.
    pub fn release(&self) -> Release {
        self.release
    }

    /// The number of bank entries the header declares.
    pub fn bank_entries(&self) -> u64 {
        self.bank_entries
    }

    /// The public parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The server's public key L.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.public.compress().to_bytes())
    }

    /// The public seed the LSH positions and cuckoo slots derive from.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The sampled bit positions of each table.
    pub fn positions(&self) -> &[Vec<u8>] {
        &self.positions
    }

    /// Slots per table.
    pub fn slots(&self) -> Vec<usize> {
        self.tables.iter().map(|t| t.points.len()).collect()
    }

    /// The size of [`Pdata::to_bytes`].
    pub fn byte_len(&self) -> usize {
        HEADER_FIXED
            + usize::from(self.params.probes > 1)
            + 8 * self.tables.len()
            + 32 * self.tables.iter().map(|t| t.points.len()).sum::<usize>()
    }

    /// The sub-key of `hash` in every table.
    pub fn sub_keys(&self, hash: &PdqHash) -> Vec<SubKey> {
        self.positions
            .iter()
            .enumerate()
            .map(|(l, pos)| lsh::sub_key(hash, l as u16, pos))
            .collect()
    }

    /// Multi-probe: for every table, the `probes` sub-keys a device sends for
    /// `hash` with per-bit `margins` (`lsh::probe_keys`), table by table.
    pub fn probe_keys(&self, hash: &PdqHash, margins: &[f32; 256]) -> Vec<SubKey> {
        let probes = usize::from(self.params.probes.max(1));
        self.positions
            .iter()
            .enumerate()
            .flat_map(|(l, pos)| lsh::probe_keys(hash, margins, l as u16, pos, probes))
            .collect()
    }

    /// The two cuckoo slots of `key` in its table.
    pub(crate) fn slots_of(&self, key: SubKey) -> [usize; 2] {
        let t = &self.tables[usize::from(key.table)];
        let n = t.points.len();
        [
            cuckoo_slot(&self.seed, t.salt, key, 0, n),
            cuckoo_slot(&self.seed, t.salt, key, 1, n),
        ]
    }

    /// The point in a slot, if it decodes canonically and is not the identity
    /// (a verified pdata's points always are unless the server published
    /// garbage, which then matches nothing).
    pub(crate) fn point(&self, table: u16, slot: usize) -> Option<RistrettoPoint> {
        let t = self.tables.get(usize::from(table))?;
        CompressedRistretto(*t.points.get(slot)?)
            .decompress()
            .filter(|p| *p != RistrettoPoint::identity())
    }
}

impl PdataIn {
    /// Parses untrusted bytes: checks magic, version, every parameter's range
    /// and every length before allocating. Never panics.
    pub fn from_bytes(b: &[u8]) -> Result<PdataIn, PdataError> {
        if b.len() > MAX_PDATA_BYTES {
            return Err(PdataError::LimitExceeded("pdata larger than 1 GiB"));
        }
        let mut r = Reader::new(b);
        let m = |e: crate::wire::Short| PdataError::Malformed(e.0);
        if &r.array::<4>("magic").map_err(m)? != PDATA_MAGIC {
            return Err(PdataError::Malformed("not pdata (magic is not BWPD)"));
        }
        let version = r.u16("version").map_err(m)?;
        if version != PDATA_VERSION && version != PDATA_VERSION_PROBES {
            return Err(PdataError::UnsupportedVersion(version));
        }
        let tables = r.u16("tables").map_err(m)?;
        let bits_per_table = r.u8("bits per table").map_err(m)?;
        let threshold = r.u16("threshold").map_err(m)?;
        let max_synthetic = r.u16("max synthetic").map_err(m)?;
        let radius = r.u16("radius").map_err(m)?;
        let derivative_bytes = r.u16("derivative bytes").map_err(m)?;
        let min_tables = r.u16("min tables").map_err(m)?;
        let probes = if version == PDATA_VERSION_PROBES {
            let p = r.u8("probes").map_err(m)?;
            if p < 2 {
                return Err(PdataError::Malformed(
                    "a version 3 header needs at least 2 probes",
                ));
            }
            p
        } else {
            1
        };
        let params = Params {
            tables,
            bits_per_table,
            threshold,
            max_synthetic,
            radius,
            derivative_bytes,
            min_tables,
            synthetic_probability: f64::from_bits(r.u64("synthetic probability").map_err(m)?),
            probes,
        };
        params.validate()?;
        let release = Release {
            epoch: r.u64("epoch").map_err(m)?,
            min_providers: r.u16("min providers").map_err(m)?,
        };
        let bank_entries = r.u64("bank entries").map_err(m)?;
        let public = CompressedRistretto(r.array("public key").map_err(m)?)
            .decompress()
            .filter(|p| *p != RistrettoPoint::identity())
            .ok_or(PdataError::Malformed(
                "public key is not a ristretto255 point other than the identity",
            ))?;
        let seed: [u8; 32] = r.array("seed").map_err(m)?;
        let mut sizes = Vec::with_capacity(usize::from(params.tables));
        for _ in 0..params.tables {
            let salt = r.u32("cuckoo salt").map_err(m)?;
            let slots = r.u32("slots").map_err(m)? as usize;
            if slots < 2 {
                return Err(PdataError::Malformed("a table has fewer than 2 slots"));
            }
            sizes.push((salt, slots));
        }
        let total: usize = sizes.iter().map(|s| s.1).sum();
        if total.checked_mul(32) != Some(r.remaining()) {
            return Err(PdataError::Malformed("table sizes do not match the data"));
        }
        let mut tables = Vec::with_capacity(sizes.len());
        for (salt, slots) in sizes {
            let mut points = Vec::with_capacity(slots);
            for _ in 0..slots {
                points.push(r.array::<32>("point").map_err(m)?);
            }
            tables.push(Table { salt, points });
        }
        r.finish().map_err(m)?;
        let positions = lsh::positions(&seed, params.tables, params.bits_per_table);
        let mut p = Pdata {
            params,
            release,
            bank_entries,
            public,
            seed,
            tables,
            positions,
            root: Root([0; 32]),
        };
        p.root = p.compute_root();
        Ok(PdataIn(p))
    }

    /// The root of what was parsed (to display; trust needs [`PdataIn::verify`]).
    pub fn root(&self) -> Root {
        self.0.root
    }

    /// The parameters as parsed (unverified).
    pub fn params(&self) -> &Params {
        &self.0.params
    }

    /// The verified pdata if its root is `root`, else [`PdataError::RootMismatch`].
    pub fn verify(self, root: &Root) -> Result<Pdata, PdataError> {
        self.0.verify(root)?;
        Ok(self.0)
    }
}

/// One bank entry a voucher matched, with its true distance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The content id given to [`Pdata::build`].
    pub content_id: u64,
    /// The banked hash.
    pub hash: PdqHash,
    /// Hamming distance between the banked hash and the voucher's hash.
    pub distance: u32,
}

/// The server's plain lookup: sub-key → bank entries, to turn an opened
/// voucher's hash into the bank entries it is truly near. Holds no secret; it
/// can be rebuilt from the pdata and the bank at any time with
/// [`ServerTable::new`].
#[derive(Clone, Debug)]
pub struct ServerTable {
    positions: Vec<Vec<u8>>,
    probes: u8,
    radius: u32,
    entries: Vec<(u64, PdqHash)>,
    map: HashMap<SubKey, Vec<u32>>,
}

impl ServerTable {
    /// Indexes `entries` (the same list the pdata was built from) under the
    /// pdata's LSH positions.
    pub fn new(pdata: &Pdata, entries: &[(u64, PdqHash)]) -> ServerTable {
        let mut map: HashMap<SubKey, Vec<u32>> = HashMap::new();
        for (i, (_, h)) in entries.iter().enumerate() {
            for k in pdata.sub_keys(h) {
                map.entry(k).or_default().push(i as u32);
            }
        }
        ServerTable {
            positions: pdata.positions.clone(),
            probes: pdata.params.probes,
            radius: u32::from(pdata.params.radius),
            entries: entries.to_vec(),
            map,
        }
    }

    /// Every bank entry sharing a sub-key with `hash` (the LSH candidates),
    /// with its true distance, nearest first, each entry once. With
    /// multi-probe, every entry whose sub-key in some table is at most
    /// [`lsh::MAX_PROBE_FLIPS`] bits from `hash`'s (a superset of what any
    /// probe could have matched; the server does not know the device's
    /// margins), by a scan of the bank.
    pub fn candidates(&self, hash: &PdqHash) -> Vec<Candidate> {
        let mut seen = BTreeSet::new();
        if self.probes > 1 {
            let keys: Vec<SubKey> = self
                .positions
                .iter()
                .enumerate()
                .map(|(l, pos)| lsh::sub_key(hash, l as u16, pos))
                .collect();
            for (i, (_, h)) in self.entries.iter().enumerate() {
                let near = self.positions.iter().zip(&keys).any(|(pos, k)| {
                    let e = lsh::sub_key(h, k.table, pos);
                    (e.bits ^ k.bits).count_ones() as usize <= lsh::MAX_PROBE_FLIPS
                });
                if near {
                    seen.insert(i as u32);
                }
            }
        }
        for (l, pos) in self.positions.iter().enumerate() {
            if let Some(ix) = self.map.get(&lsh::sub_key(hash, l as u16, pos)) {
                seen.extend(ix.iter().copied());
            }
        }
        let mut out: Vec<Candidate> = seen
            .into_iter()
            .map(|i| {
                let (content_id, h) = self.entries[i as usize];
                Candidate {
                    content_id,
                    hash: h,
                    distance: h.distance(hash),
                }
            })
            .collect();
        out.sort_by_key(|c| (c.distance, c.content_id));
        out
    }

    /// The candidates within the pdata's radius: the true matches.
    pub fn matches(&self, hash: &PdqHash) -> Vec<Candidate> {
        let mut c = self.candidates(hash);
        c.retain(|c| c.distance <= self.radius);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_shape_matches_rfc6962_split() {
        let l: Vec<[u8; 32]> = (0..3u8).map(|i| leaf_hash(&[i])).collect();
        let node = |a: [u8; 32], b: [u8; 32]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(a);
            h.update(b);
            h.finalize().into()
        };
        assert_eq!(merkle(&l), node(node(l[0], l[1]), l[2]));
        assert_eq!(merkle(&l[..1]), l[0]);
    }
}
