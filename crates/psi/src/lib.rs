//! Private matching for end-to-end encrypted messengers: threshold private set
//! intersection with associated data, after Bhowmick, Boneh, Myers, Talwar and
//! Tarbe, "The Apple PSI System" (2021), on ristretto255, made tolerant of
//! near-duplicate images by locality-sensitive hashing over PDQ hashes.
//!
//! The protocol, its parameters and measured trade-offs are in
//! `docs/PRIVATE-MATCHING.md`; what each party learns is in
//! `docs/THREAT-MODEL.md`. In short:
//!
//! - **Server** ([`ServerKeys`], [`Pdata::build`]): secret α, public L = α·G.
//!   For each of L LSH tables (k sampled bits of the 256-bit PDQ hash), a cuckoo
//!   table of blinded entries α·H(seed ‖ ℓ ‖ bits). The tables and parameters
//!   ("pdata") have a Merkle [`Root`] that list providers sign and devices check;
//!   devices also refuse weakened parameters ([`Pdata::check_policy`], [`Policy`]).
//! - **Device** ([`DeviceAccount::voucher`]): per image, for each table and both
//!   cuckoo slots, a pair (Q = β·H + γ·G, Enc(KDF(β·P + γ·L), that table's
//!   share of rkey)), shuffled; rkey is Shamir-shared so that `min_tables`
//!   agreeing tables rebuild it;
//!   the payload Enc(rkey, share ‖ detection vector ‖ adct), adct = Enc(account
//!   key, PDQ hash ‖ small grey derivative). One Shamir share of the account key
//!   per distinct hash. With a small probability, a *synthetic* voucher that
//!   always opens but carries a dummy share.
//! - **Server** ([`AccountState::ingest`], [`AccountState::open`]): α·Q opens
//!   a pair only on an LSH match in that table (or a synthetic voucher); with
//!   enough opened pairs the payload opens; opened payloads are
//!   kept per account. Only with more than `threshold` real distinct shares can
//!   it find the real ones (the detection vectors become linearly dependent),
//!   rebuild the account key, read the hashes and derivatives, and keep those
//!   truly within the radius of a bank entry ([`ServerTable`]).
//!
//! ```
//! use bulwark_psi::{AccountState, DeviceAccount, Params, Pdata, ServerKeys, Voucher};
//! use bulwark_pdq::PdqHash;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let keys = ServerKeys::generate(&mut rng);
//! let params = Params { threshold: 2, synthetic_probability: 0.0, ..Params::default() };
//! let bank: Vec<(u64, PdqHash)> =
//!     (0..3u8).map(|i| (u64::from(i), PdqHash::from_bytes([i * 40 + 1; 32]))).collect();
//! let (pdata, table) = Pdata::build(&keys, &params, &bank, &mut rng)?;
//!
//! // The device checks the published root, then makes vouchers.
//! let device_pdata = Pdata::from_bytes(&pdata.to_bytes(), &pdata.root())?;
//! let account = DeviceAccount::generate(&mut rng);
//! let mut state = AccountState::new();
//! for (_, h) in &bank {
//!     let v = account.voucher(&device_pdata, h, b"32x32 grey bytes", &mut rng)?;
//!     let wire = v.to_bytes();
//!     state.ingest(&keys, &pdata, &Voucher::from_bytes(&wire)?)?;
//! }
//! // Three distinct matches > threshold 2: the server opens them.
//! let opened = state.open(&pdata, &table).expect("above threshold");
//! assert_eq!(opened.len(), 3);
//! assert_eq!(opened[0].derivative, b"32x32 grey bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Secrets (α, the device's account secret, per-voucher keys) are zeroized on
//! drop and never printed; commitment and root comparisons are constant-time.
//! Scalar multiplications by secrets use curve25519-dalek's constant-time
//! routines.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod crypto;
mod device;
pub mod envelope;
mod gf;
pub mod log;
pub mod lsh;
mod pdata;
mod provider;
mod server;
mod voucher;
mod wire;

pub use crate::device::{DeviceAccount, SeenImages};
pub use crate::pdata::{
    CHUNK_POINTS, Candidate, MAX_PDATA_BYTES, PDATA_MAGIC, PDATA_VERSION, PDATA_VERSION_PROBES,
    Pdata, PdataIn, PublicKey, Release, Root, ServerKeys, ServerTable, slots_for,
};
pub use crate::provider::{ProviderKey, ProviderPublic, RootSignature, SignedRoot};
pub use crate::server::{
    AccountState, MAX_ENTRIES, Opened, StateError, agreeing_tables, opened_pairs_per_table,
};
pub use crate::voucher::{MAX_VOUCHER_BYTES, VOUCHER_VERSION, VOUCHER_VERSION_PROBES, Voucher};

/// Bits per table of [`Params::multiprobe`].
const PROBE_K: u8 = 40;
/// Sub-keys per table of [`Params::multiprobe`].
const PROBE_P: u8 = 5;
/// Bits per table of [`Params::expanded`].
const EXPANDED_K: u8 = 44;
/// [`Params::synthetic_extra_pair`] of the expanded profile: fitted to the
/// tables with two open pairs of real exact copies on the corpus (≈ 15 %).
const EXPANDED_EXTRA_PAIR: f64 = 0.15;

/// Most candidate keys the server may try per voucher (see
/// [`Params::opening_trials`]).
pub const MAX_OPENING_TRIALS: u64 = 4096;

/// Protocol parameters, published in the pdata header (so every device uses
/// the service's values and auditors can read them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Number of LSH tables L (1..=64). Recall grows with L; so do voucher size,
    /// device and server time and pdata size (linearly).
    pub tables: u16,
    /// Tables that must agree for a voucher to open, m (1..=tables): the
    /// voucher key is Shamir-shared across the tables with threshold m. m = 1
    /// is the plain construction; m ≥ 2 ("m-of-L") cuts unrelated-image
    /// candidates sharply for a given recall but lets the server see pairs
    /// open below m (see docs/THREAT-MODEL.md).
    pub min_tables: u16,
    /// Sampled bits per table k (1..=64). Fewer bits catch more distant copies
    /// and make more false candidates: about L·n·2⁻ᵏ per image for a bank of n
    /// unrelated hashes.
    pub bits_per_table: u8,
    /// The threshold t: the server learns nothing until it holds more than t
    /// distinct real matching shares of an account (t + 1 open it).
    pub threshold: u16,
    /// The most synthetic vouchers the server can tell apart from real ones
    /// once over the threshold; sets the detection vector's length
    /// `threshold + max_synthetic + 1` (8 bytes each).
    pub max_synthetic: u16,
    /// Probability that a device sends a synthetic voucher for a hash (decided
    /// once per distinct hash, so a repeat behaves the same).
    pub synthetic_probability: f64,
    /// PDQ radius the server re-checks after opening (31 is PDQ's usual match).
    pub radius: u16,
    /// Bytes of the visual derivative, padded to this length so voucher size
    /// does not depend on the image (1024 = a 32×32 8-bit grey thumbnail).
    pub derivative_bytes: u16,
    /// Multi-probe: sub-keys the device sends per table (1..=16): the exact
    /// one and `probes − 1` variants with its least confident bits flipped
    /// (`lsh::probe_keys`). 1 is the plain construction (pdata format
    /// version 2); more needs pdata version 3 and multiplies voucher pairs,
    /// device and server work by `probes`. A voucher still carries one share:
    /// however many probes agree, an image opens at most once.
    pub probes: u8,
}

impl Default for Params {
    /// The measured default, privacy first: 6 tables × 32 bits, 2 of which must
    /// agree (≈ 1.3 × 10⁻⁴ unrelated photos open per image against 10⁶ banked
    /// hashes; JPEG re-encodes keep 96 % of plain PDQ's recall; 396 pdata
    /// bytes per banked hash). See docs/PRIVATE-MATCHING.md, "Parameters", and
    /// [`Params::compact`].
    fn default() -> Self {
        Params {
            tables: 6,
            min_tables: 2,
            bits_per_table: 32,
            threshold: 30,
            max_synthetic: 40,
            synthetic_probability: 0.01,
            radius: 31,
            derivative_bytes: 1024,
            probes: 1,
        }
    }
}

impl Params {
    /// The compact profile: 3 tables × 32 bits, any one opens. 198 pdata bytes
    /// per banked hash and half the server time of the default, at the same
    /// JPEG recall, but ≈ 70× more unrelated photos open (≈ 0.9 % per image
    /// against 10⁶ banked hashes), which brings heavy senders toward the
    /// threshold on false candidates alone.
    pub fn compact() -> Params {
        Params {
            tables: 3,
            min_tables: 1,
            ..Params::default()
        }
    }

    /// The multi-probe profile: 6 tables × 40 bits, any one opens, 5
    /// sub-keys per table (the exact one and 4 with its least confident bits
    /// flipped, from PDQ's per-bit confidence). On the corpus, through real
    /// vouchers, it keeps ≈ 90 % of plain PDQ's recall under resizing (the
    /// default: ≈ 59 %) at no more modelled false candidates per innocent image
    /// than the default; 7,690-byte vouchers and 5× the server's scalar
    /// multiplications. See docs/PRIVATE-MATCHING.md ("Multi-probe").
    pub fn multiprobe() -> Params {
        Params {
            min_tables: 1,
            bits_per_table: PROBE_K,
            probes: PROBE_P,
            ..Params::default()
        }
    }

    /// The expanded profile: [`Params::multiprobe`]'s 6 tables, 5 probes and
    /// one table to open, at 44 bits per table, for a pdata built with
    /// bank-side variants ([`Pdata::build_with_variants`]: for each banked
    /// image, the PDQ hashes of a centred crop of 1.5 % off each edge and of a
    /// 0.3× resize, in every table). The longer key pays for the variants'
    /// false candidates. Devices and vouchers are those of multi-probe
    /// (version 3, 7,690 bytes); on the corpus, through real vouchers, it keeps
    /// ≥ 90 % of plain PDQ's recall under resizing and 1 % crops. See
    /// docs/PRIVATE-MATCHING.md ("Multi-probe").
    pub fn expanded() -> Params {
        Params {
            bits_per_table: EXPANDED_K,
            ..Params::multiprobe()
        }
    }

    /// For synthetic vouchers: the chance that an opened table of one that
    /// plays a copy opens one more pair (see docs/PRIVATE-MATCHING.md, "What
    /// the server sees of an opened voucher"). 0.15 for a pdata with the
    /// expanded profile's tables (6 × 44 bits, 1 to open, 5 probes), whose
    /// bank-side variants make a real copy's probes open two pairs of a table
    /// that often; 0 otherwise (a real table then opens one pair, unless two
    /// banked images are near-duplicates).
    pub fn synthetic_extra_pair(&self) -> f64 {
        let e = Params::expanded();
        if (
            self.tables,
            self.min_tables,
            self.bits_per_table,
            self.probes,
        ) == (e.tables, e.min_tables, e.bits_per_table, e.probes)
        {
            EXPANDED_EXTRA_PAIR
        } else {
            0.0
        }
    }

    /// Length of the detection vector: `threshold + max_synthetic + 1`.
    pub fn detection_dim(&self) -> usize {
        usize::from(self.threshold) + usize::from(self.max_synthetic) + 1
    }

    /// Candidate keys the server tries per voucher: C(L, m)·(2·probes)ᵐ (every
    /// m of the L tables, each with any of its probes at either cuckoo slot);
    /// saturates on overflow.
    pub fn opening_trials(&self) -> u64 {
        let (l, m) = (u64::from(self.tables), u64::from(self.min_tables));
        let mut c: u64 = 1;
        for i in 0..m.min(l) {
            c = c.saturating_mul(l - i) / (i + 1);
        }
        let per_table = 2 * u64::from(self.probes.max(1));
        let mut pow: u64 = 1;
        for _ in 0..m {
            pow = pow.saturating_mul(per_table);
        }
        c.saturating_mul(pow)
    }

    /// Pairs in a voucher: 2 cuckoo slots × probes × tables.
    pub fn pairs(&self) -> usize {
        2 * usize::from(self.probes.max(1)) * usize::from(self.tables)
    }

    /// Most opened entries one account holds per epoch: the detection
    /// dimension t + s + 1. Beyond it the detection vectors are dependent
    /// whatever they are, so more entries could not be told apart anyway;
    /// t real + s synthetic + 1 more real still fits and opens.
    pub fn max_entries_per_epoch(&self) -> usize {
        self.detection_dim()
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), PdataError> {
        let bad = |what| Err(PdataError::InvalidParams(what));
        if !(1..=64).contains(&self.tables) {
            return bad("tables must be 1..=64");
        }
        if !(1..=self.tables).contains(&self.min_tables) {
            return bad("min_tables must be 1..=tables");
        }
        if !(1..=64).contains(&self.bits_per_table) {
            return bad("bits_per_table must be 1..=64");
        }
        if !(1..=1000).contains(&self.threshold) {
            return bad("threshold must be 1..=1000");
        }
        if self.detection_dim() > 2048 {
            return bad("threshold + max_synthetic must be below 2048");
        }
        if !(0.0..=1.0).contains(&self.synthetic_probability) {
            return bad("synthetic_probability must be within 0..=1");
        }
        if self.radius > 256 {
            return bad("radius must be 0..=256");
        }
        if self.derivative_bytes > 16384 {
            return bad("derivative_bytes must be at most 16384");
        }
        if !(1..=16).contains(&self.probes) {
            return bad("probes must be 1..=16");
        }
        if usize::from(self.probes) - 1 > lsh::available_probes(self.bits_per_table) {
            return bad("more probes than the table's bits allow");
        }
        if self.pairs() > 2 * 64 {
            return bad("tables x probes must be at most 64");
        }
        if self.opening_trials() > MAX_OPENING_TRIALS {
            return bad("C(tables, min_tables) x (2 probes)^min_tables must be at most 4096");
        }
        Ok(())
    }
}

/// One parameter profile a device accepts: every field exact except the
/// threshold and the synthetic probability, which have floors (raising
/// either only costs the service detection).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// A name for messages and docs ("default", "compact").
    pub name: &'static str,
    /// Exactly this many tables.
    pub tables: u16,
    /// Exactly this many agreeing tables to open.
    pub min_tables: u16,
    /// Exactly this many sampled bits per table.
    pub bits_per_table: u8,
    /// Lowest threshold.
    pub min_threshold: u16,
    /// Exactly this `max_synthetic`.
    pub max_synthetic: u16,
    /// Lowest synthetic probability (0 would expose the match count).
    pub min_synthetic_probability: f64,
    /// Exactly this radius.
    pub radius: u16,
    /// Exactly this derivative size.
    pub derivative_bytes: u16,
    /// Exactly this many probes per table.
    pub probes: u8,
}

impl Profile {
    /// The profile of [`Params::default`] (t ≥ 30, p ≥ 0.001).
    pub fn default_profile() -> Profile {
        Profile::of("default", &Params::default())
    }

    /// The profile of [`Params::compact`] (t ≥ 30, p ≥ 0.001).
    pub fn compact() -> Profile {
        Profile::of("compact", &Params::compact())
    }

    /// The profile of [`Params::multiprobe`] (t ≥ 30, p ≥ 0.001).
    pub fn multiprobe() -> Profile {
        Profile::of("multiprobe", &Params::multiprobe())
    }

    /// The profile of [`Params::expanded`] (t ≥ 30, p ≥ 0.001).
    pub fn expanded() -> Profile {
        Profile::of("expanded", &Params::expanded())
    }

    fn of(name: &'static str, p: &Params) -> Profile {
        Profile {
            name,
            tables: p.tables,
            min_tables: p.min_tables,
            bits_per_table: p.bits_per_table,
            min_threshold: p.threshold,
            max_synthetic: p.max_synthetic,
            min_synthetic_probability: 0.001,
            radius: p.radius,
            derivative_bytes: p.derivative_bytes,
            probes: p.probes,
        }
    }

    /// Whether `p` is this profile.
    pub fn allows(&self, p: &Params) -> bool {
        p.tables == self.tables
            && p.min_tables == self.min_tables
            && p.bits_per_table == self.bits_per_table
            && p.threshold >= self.min_threshold
            && p.max_synthetic == self.max_synthetic
            && !p.synthetic_probability.is_nan()
            && p.synthetic_probability >= self.min_synthetic_probability
            && p.synthetic_probability <= 1.0
            && p.radius == self.radius
            && p.derivative_bytes == self.derivative_bytes
            && p.probes == self.probes
    }
}

/// What a device accepts from a service: an allowlist of exact parameter
/// profiles, the provider keys it pins and how many of them must sign (see
/// docs/THREAT-MODEL.md, "Service weakens the parameters"). The client SDK
/// loads pdata through [`Pdata::from_signed`], which applies all of it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Policy {
    /// Accepted parameter profiles.
    pub profiles: Vec<Profile>,
    /// Pinned provider keys; only their signatures count.
    pub providers: Vec<ProviderPublic>,
    /// Distinct pinned providers that must sign a root; values below 2 are
    /// treated as 2.
    pub min_providers: u16,
}

impl Default for Policy {
    /// The default, compact, multi-probe and expanded profiles, two providers, no key pinned yet
    /// (pin them with [`Policy::pin`]: until then no root verifies).
    fn default() -> Self {
        Policy {
            profiles: vec![
                Profile::default_profile(),
                Profile::compact(),
                Profile::multiprobe(),
                Profile::expanded(),
            ],
            providers: Vec::new(),
            min_providers: 2,
        }
    }
}

impl Policy {
    /// Adds pinned provider keys.
    pub fn pin(mut self, keys: impl IntoIterator<Item = ProviderPublic>) -> Policy {
        self.providers.extend(keys);
        self
    }

    /// Lowers every profile's threshold floor to `t` (tests and demos only:
    /// a low threshold tells the service about an account after few matches).
    pub fn allow_threshold(mut self, t: u16) -> Policy {
        for p in &mut self.profiles {
            p.min_threshold = t;
        }
        self
    }

    /// Replaces the allowed profiles.
    pub fn with_profiles(mut self, profiles: Vec<Profile>) -> Policy {
        self.profiles = profiles;
        self
    }

    /// The number of distinct pinned providers a root needs: at least 2.
    pub fn min_providers(&self) -> u16 {
        self.min_providers.max(2)
    }
}

/// Why pdata, keys or parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PdataError {
    /// The bytes are not a pdata (or key) of this format; says which field.
    #[error("malformed pdata: {0}")]
    Malformed(&'static str),
    /// Written by a newer or older format.
    #[error(
        "pdata format version {0} is not supported (this build reads version 2, and 3 for multi-probe)"
    )]
    UnsupportedVersion(u16),
    /// A parameter is out of range.
    #[error("invalid parameters: {0}")]
    InvalidParams(&'static str),
    /// Larger than this build accepts.
    #[error("pdata too large: {0}")]
    LimitExceeded(&'static str),
    /// The Merkle root differs from the published one: do not use this pdata.
    #[error("pdata root does not match the published root; refusing it")]
    RootMismatch,
    /// The parameters are weaker than the device's [`Policy`] allows.
    #[error("pdata refused by the device's policy: {0}")]
    Policy(&'static str),
    /// Fewer valid signatures by distinct pinned providers than required, or
    /// the signed root is for another pdata.
    #[error("pdata root signatures: {0}")]
    Signature(&'static str),
    /// Cuckoo placement failed for every salt (a bug or an absurdly small table).
    #[error("could not place the entries in a cuckoo table (internal error: please report)")]
    BuildFailed,
}

/// Why a device cannot make a voucher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VoucherError {
    /// The derivative is longer than the pdata's `derivative_bytes`.
    #[error(
        "visual derivative is {got} bytes; this pdata allows at most {max} (downscale or compress it)"
    )]
    DerivativeTooLarge {
        /// Bytes given.
        got: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// The bytes are not a device account of this format.
    #[error("malformed device account: {0}")]
    MalformedAccount(&'static str),
}

/// Why the server refuses a voucher. A refused voucher never changes the
/// account state. The variants name what the server could check; all are the
/// sender's fault. They are for the service's logs: `Replayed` can only
/// happen to a voucher that opened, so clients must get the same answer for
/// every well-formed voucher (see docs/THREAT-MODEL.md, "Response oracle").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The bytes do not parse, or sizes do not fit the pdata's parameters.
    #[error("malformed voucher: {0}")]
    Malformed(&'static str),
    /// Built against a different pdata (root differs) or different parameters.
    #[error("voucher was built against a different pdata")]
    WrongPdata,
    /// A pair opens but the payload does not authenticate, or its contents are
    /// out of range (not made by an honest device).
    #[error("voucher payload does not authenticate")]
    Forged,
    /// The account state holds another epoch's entries.
    #[error("voucher is for another epoch than this account state")]
    WrongEpoch,
    /// This exact voucher was already stored.
    #[error("voucher already received")]
    Replayed,
    /// The account state holds the maximum number of entries.
    #[error("account state is full ({0} entries)")]
    LimitExceeded(usize),
}

/// Entry points for `cargo fuzz` (see fuzz/ at the repository root).
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::OnceLock;

    use rand::SeedableRng;

    use crate::{AccountState, Params, Pdata, PdataIn, ServerKeys, ServerTable, Voucher};

    /// Parsing arbitrary bytes as pdata must not panic; what parses
    /// re-serialises to the same bytes and root.
    pub fn pdata(data: &[u8]) {
        if let Ok(p) = PdataIn::from_bytes(data) {
            let root = p.root();
            let v = p.verify(&root).expect("own root verifies");
            assert_eq!(v.to_bytes(), data);
        }
    }

    fn fixture() -> &'static (ServerKeys, Pdata, ServerTable) {
        static F: OnceLock<(ServerKeys, Pdata, ServerTable)> = OnceLock::new();
        F.get_or_init(|| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(9);
            let keys = ServerKeys::generate(&mut rng);
            let params = Params {
                tables: 2,
                bits_per_table: 8,
                threshold: 1,
                max_synthetic: 2,
                derivative_bytes: 16,
                ..Params::default()
            };
            let bank = [(1u64, bulwark_pdq::PdqHash::from_bytes([0; 32]))];
            let (p, t) = Pdata::build(&keys, &params, &bank, &mut rng).expect("builds");
            (keys, p, t)
        })
    }

    /// Decoding arbitrary bytes as a voucher and ingesting it must not panic;
    /// what decodes re-encodes identically; a refused voucher leaves the state
    /// unchanged.
    pub fn voucher(data: &[u8]) {
        let Ok(v) = Voucher::from_bytes(data) else {
            return;
        };
        assert_eq!(v.to_bytes(), data);
        let (keys, pdata, table) = fixture();
        let mut s = AccountState::new();
        if s.ingest(keys, pdata, &v).is_err() {
            assert_eq!(s, AccountState::new());
        }
        let _ = s.open(pdata, table);
    }

    /// A valid voucher against the fuzzing fixture's pdata (a corpus seed):
    /// image `i`, from a synthetic-only account when `synthetic`.
    pub fn seed_voucher(i: u8, synthetic: bool) -> Vec<u8> {
        let (_, pdata, _) = fixture();
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(i));
        let a = crate::DeviceAccount::generate(&mut rng);
        let mut p = pdata.clone();
        if synthetic {
            // Same root check fails for a different pdata, so only the
            // device's decision is changed here.
            p.params.synthetic_probability = 1.0;
        }
        a.voucher(
            &p,
            &bulwark_pdq::PdqHash::from_bytes([i; 32]),
            b"grey",
            &mut rng,
        )
        .map(|v| v.to_bytes())
        .unwrap_or_default()
    }

    /// Decoding arbitrary bytes as an account state must not panic; what
    /// decodes re-encodes identically.
    pub fn account_state(data: &[u8]) {
        if let Ok(s) = AccountState::from_bytes(data) {
            assert_eq!(s.to_bytes(), data);
            let (_, pdata, table) = fixture();
            let _ = s.open(pdata, table);
        }
    }
}
