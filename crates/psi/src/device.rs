//! The device side: the account secret and voucher construction.
//!
//! Everything an account derives comes from one 32-byte secret through a PRF
//! (HKDF-SHA256 with a distinct label per use), first to a per-epoch secret
//! PRF("epoch", epoch id from the signed pdata header) and from that, so no
//! value of one epoch (polynomial, key, shares, detection vectors, synthetic
//! decisions) says anything about another's:
//!
//! - the Shamir polynomial f of degree t over the ristretto255 scalar field;
//!   the **account key** is K = f(0);
//! - per distinct PDQ hash h: the share's x = PRF("x", h), so an exact
//!   duplicate gives the same share and adds nothing; the synthetic decision
//!   PRF("synthetic", h) < p, so a repeat is decided the same way; the dummy
//!   share and dummy detection vector of a synthetic voucher;
//! - the detection matrix M (D × t over GF(2⁶¹−1)): a real voucher carries
//!   z = M·(1, u, …, u^{t−1}) with u = PRF("u", h); a synthetic one carries a
//!   PRF-random z (see `crate::server` for why this lets the server find the
//!   real shares once, and only once, it has more than t of them).

use std::fmt;

use bulwark_pdq::PdqHash;
use curve25519_dalek::constants::{RISTRETTO_BASEPOINT_POINT, RISTRETTO_BASEPOINT_TABLE};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::MultiscalarMul;
use rand::{CryptoRng, Rng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{
    INFO_ADCT, adct_key, hash_to_group, prf, prf_scalar, random_point, seal_committed,
    seal_random_nonce, slot_pad, wide_encoding,
};
use crate::gf;
use crate::voucher::{PAIR_CT, Pair, Voucher, payload_aad};
use crate::{Pdata, VoucherError};

const ACCOUNT_MAGIC: &[u8; 4] = b"BWDA";
const ACCOUNT_VERSION: u16 = 1;

/// A third of synthetic vouchers open as many tables as a real match at a
/// distance drawn uniformly from 1..=this would (see `synthetic_open_tables`).
const SYNTHETIC_SIM_MAX_DISTANCE: u32 = 8;

/// A device's account secret. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DeviceAccount {
    secret: [u8; 32],
}

impl fmt::Debug for DeviceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceAccount(<redacted>)")
    }
}

/// What a device remembers of the images it made vouchers for in one epoch:
/// their PDQ hashes, kept on the device only (it has the images anyway), so
/// that a re-encoded or resized copy within the pdata's radius of an earlier
/// image reuses that image's share ([`DeviceAccount::voucher_as`]) and counts
/// once toward the threshold, as an exact repeat does. Cleared when the epoch
/// changes. Store it like the account secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenImages {
    epoch: Option<u64>,
    hashes: Vec<PdqHash>,
}

impl SeenImages {
    /// Nothing remembered.
    pub fn new() -> SeenImages {
        SeenImages::default()
    }

    /// The identity to make `hash`'s voucher with: the first remembered hash
    /// within the pdata's radius, else `hash` itself (then remembered).
    pub fn identity(&mut self, pdata: &Pdata, hash: &PdqHash) -> PdqHash {
        let epoch = pdata.release().epoch;
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.hashes.clear();
        }
        let radius = u32::from(pdata.params().radius);
        if let Some(h) = self.hashes.iter().find(|h| h.distance(hash) <= radius) {
            return *h;
        }
        self.hashes.push(*hash);
        *hash
    }

    /// The remembered hashes and their epoch (to persist on the device).
    pub fn remembered(&self) -> (Option<u64>, &[PdqHash]) {
        (self.epoch, &self.hashes)
    }

    /// Restores [`SeenImages::remembered`].
    pub fn restore(epoch: Option<u64>, hashes: Vec<PdqHash>) -> SeenImages {
        SeenImages { epoch, hashes }
    }
}

/// A share as it travels inside the payload.
pub(crate) struct Inner {
    pub(crate) x: Scalar,
    pub(crate) y: Scalar,
    pub(crate) z: Vec<u64>,
}

impl DeviceAccount {
    /// A fresh random account secret.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> DeviceAccount {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        DeviceAccount { secret }
    }

    /// `"BWDA" ‖ u16 version ‖ secret` (38 bytes). Keep it like a private key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(38));
        v.extend_from_slice(ACCOUNT_MAGIC);
        v.extend_from_slice(&ACCOUNT_VERSION.to_be_bytes());
        v.extend_from_slice(&self.secret);
        v
    }

    /// Reads [`DeviceAccount::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<DeviceAccount, VoucherError> {
        if b.len() != 38 || &b[..4] != ACCOUNT_MAGIC {
            return Err(VoucherError::MalformedAccount("not a 38-byte BWDA account"));
        }
        if u16::from_be_bytes([b[4], b[5]]) != ACCOUNT_VERSION {
            return Err(VoucherError::MalformedAccount(
                "unsupported account version",
            ));
        }
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&b[6..]);
        Ok(DeviceAccount { secret })
    }

    /// The secret of one epoch: PRF("epoch", epoch id).
    fn epoch_secret(&self, epoch: u64) -> Zeroizing<[u8; 32]> {
        let mut k = Zeroizing::new([0u8; 32]);
        prf(
            &self.secret,
            b"bulwark-psi-epoch-v2",
            &epoch.to_be_bytes(),
            &mut k[..],
        );
        k
    }

    /// The account key K = f(0) of `epoch` for threshold `t` (what the server
    /// rebuilds above the threshold).
    pub(crate) fn account_key(&self, epoch: u64, t: u16) -> Scalar {
        coefficient(&self.epoch_secret(epoch), t, 0)
    }

    /// Whether this account sends a synthetic voucher for `hash` under this
    /// pdata (for tests: a real device never needs to know).
    #[doc(hidden)]
    pub fn sends_synthetic_for(&self, pdata: &Pdata, hash: &PdqHash) -> bool {
        let k = self.epoch_secret(pdata.release().epoch);
        is_synthetic(&k, pdata.params().synthetic_probability, hash)
    }

    pub(crate) fn inner(&self, pdata: &Pdata, hash: &PdqHash) -> (Inner, bool) {
        let params = pdata.params();
        let k = self.epoch_secret(pdata.release().epoch);
        let t = params.threshold;
        let dim = params.detection_dim();
        let mut x = prf_scalar(&k, b"bulwark-psi-x-v1", hash.as_bytes());
        if x == Scalar::ZERO {
            x = Scalar::ONE; // probability 2⁻²⁵²
        }
        // The real share and vector are computed either way (equal timing).
        let y = share_y(&k, t, &x);
        let z = detection_vector(&k, t, dim, hash);
        if is_synthetic(&k, params.synthetic_probability, hash) {
            let y = prf_scalar(&k, b"bulwark-psi-dummy-y-v1", hash.as_bytes());
            let mut w = words(&k, b"bulwark-psi-dummy-z-v1", hash.as_bytes(), dim);
            let z = (0..dim).map(|_| gf::from_words(&mut w)).collect();
            (Inner { x, y, z }, true)
        } else {
            (Inner { x, y, z }, false)
        }
    }

    /// The safety voucher for one image: its PDQ `hash` and its visual
    /// `derivative` (e.g. 32×32 8-bit grey, at most the pdata's
    /// `derivative_bytes`; padded so every voucher has the same size).
    ///
    /// Cost: per table one hash-to-group and, for each of the two cuckoo slots,
    /// two 2-term constant-time multiscalar multiplications.
    pub fn voucher<R: RngCore + CryptoRng>(
        &self,
        pdata: &Pdata,
        hash: &PdqHash,
        derivative: &[u8],
        rng: &mut R,
    ) -> Result<Voucher, VoucherError> {
        self.voucher_as(pdata, hash, hash, derivative, rng)
    }

    /// [`DeviceAccount::voucher`] for a copy of an image this device already
    /// made a voucher for: the pairs and the encrypted hash are the copy's,
    /// but the share, detection vector and synthetic decision are those of
    /// `identity` (the earlier image's hash, from [`SeenImages::identity`]),
    /// so the service stores the copy's share once, like an exact repeat.
    pub fn voucher_as<R: RngCore + CryptoRng>(
        &self,
        pdata: &Pdata,
        hash: &PdqHash,
        identity: &PdqHash,
        derivative: &[u8],
        rng: &mut R,
    ) -> Result<Voucher, VoucherError> {
        self.voucher_probing(pdata, hash, None, identity, derivative, rng)
    }

    /// [`DeviceAccount::voucher_as`] with the PDQ hash's per-bit `margins`
    /// (`bulwark_pdq::hash_rgb_confidence`): under a multi-probe profile
    /// (`probes` > 1) each table's probes flip its least confident bits
    /// (`lsh::probe_keys`). Without margins ([`DeviceAccount::voucher`],
    /// [`DeviceAccount::voucher_as`]) every bit counts as equally confident:
    /// the voucher has the same shape but the probes are arbitrary. With one
    /// probe per table the margins are not used.
    pub fn voucher_probing<R: RngCore + CryptoRng>(
        &self,
        pdata: &Pdata,
        hash: &PdqHash,
        margins: Option<&[f32; 256]>,
        identity: &PdqHash,
        derivative: &[u8],
        rng: &mut R,
    ) -> Result<Voucher, VoucherError> {
        let params = pdata.params();
        let max = usize::from(params.derivative_bytes);
        if derivative.len() > max {
            return Err(VoucherError::DerivativeTooLarge {
                got: derivative.len(),
                max,
            });
        }
        let (inner, synthetic) = self.inner(pdata, identity);
        let root = pdata.root();

        // adct = Enc(K_adct, hash ‖ len ‖ derivative padded). A synthetic
        // voucher encrypts under a throw-away key: it never opens, even after
        // the threshold.
        let mut ad = Zeroizing::new(Vec::with_capacity(34 + max));
        ad.extend_from_slice(hash.as_bytes());
        ad.extend_from_slice(&(derivative.len() as u16).to_be_bytes());
        ad.extend_from_slice(derivative);
        ad.resize(34 + max, 0);
        let adct = if synthetic {
            let mut k = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(&mut k[..]);
            seal_random_nonce(&k, INFO_ADCT, &ad, rng)
        } else {
            let k = adct_key(&self.account_key(pdata.release().epoch, params.threshold));
            seal_random_nonce(&k, INFO_ADCT, &ad, rng)
        };

        // payload = Enc_committed(rkey, x ‖ y ‖ z ‖ adct); rkey is a random
        // scalar, Shamir-shared across the tables with threshold m (for m = 1
        // every table carries rkey itself).
        let r = Scalar::random(rng);
        let rkey = Zeroizing::new(r.to_bytes());
        let mut key_shares = key_shares(r, params.tables, params.min_tables, rng);
        let mut plain = Zeroizing::new(Vec::with_capacity(64 + 8 * inner.z.len() + adct.len()));
        plain.extend_from_slice(inner.x.as_bytes());
        plain.extend_from_slice(inner.y.as_bytes());
        for w in &inner.z {
            plain.extend_from_slice(&w.to_be_bytes());
        }
        plain.extend_from_slice(&adct);
        let payload = seal_committed(&rkey, &payload_aad(&root), &plain);

        let l_point = pdata.public;
        let g = RISTRETTO_BASEPOINT_POINT;
        let mut pairs: Vec<Pair> = Vec::with_capacity(params.pairs());
        // The real pairs are always computed, so making a synthetic voucher
        // takes as long as a real one (its timing does not tell).
        let mut blind = Vec::with_capacity(params.pairs());
        let keys = if params.probes > 1 {
            pdata.probe_keys(hash, margins.unwrap_or(&[1.0; 256]))
        } else {
            pdata.sub_keys(hash)
        };
        for key in keys {
            let h = hash_to_group(&[pdata.seed(), &key.to_bytes()]);
            let slots = pdata.slots_of(key);
            for (j, slot) in slots.into_iter().enumerate() {
                // When both cuckoo choices are the same slot, the second
                // pair uses a random point, so a match opens one pair per table.
                let p = match pdata.point(key.table, slot) {
                    Some(p) if j == 0 || slots[0] != slots[1] => p,
                    _ => random_point(rng),
                };
                blind.push((h, p, usize::from(key.table)));
            }
        }
        for (h, p, table) in blind {
            let beta = Scalar::random(rng);
            let gamma = Scalar::random(rng);
            let q = RistrettoPoint::multiscalar_mul([beta, gamma], [h, g]);
            let s = RistrettoPoint::multiscalar_mul([beta, gamma], [p, l_point]);
            pairs.push(seal_pair(&q, &s, &key_shares[table], rng));
        }
        if synthetic {
            pairs.clear();
            let (open, copy_like) = synthetic_open_tables(pdata, rng);
            for (table, &opens) in open.iter().enumerate() {
                let group = 2 * usize::from(params.probes);
                let mut open_pairs = vec![false; group];
                if opens {
                    let n = 1 + if copy_like {
                        synthetic_extra_pairs(params, rng)
                    } else {
                        0
                    };
                    let mut placed = 0;
                    while placed < n {
                        let j = rng.gen_range(0..group);
                        if !open_pairs[j] {
                            open_pairs[j] = true;
                            placed += 1;
                        }
                    }
                }
                for &opens_here in &open_pairs {
                    if opens_here {
                        let beta = Scalar::random(rng);
                        let q = &beta * RISTRETTO_BASEPOINT_TABLE;
                        let s = beta * l_point;
                        pairs.push(seal_pair(&q, &s, &key_shares[table], rng));
                    } else {
                        // What a non-matching pair is to the server: a random
                        // point and 64 random bytes.
                        let q = random_point(rng).compress().to_bytes();
                        let mut ct = [0u8; PAIR_CT];
                        rng.fill_bytes(&mut ct);
                        pairs.push(Pair {
                            x: key_shares[table].0,
                            q,
                            ct,
                        });
                    }
                }
            }
        }
        for (_, y) in key_shares.iter_mut() {
            y.zeroize();
        }
        // Shuffle: the order says nothing about the table or slot.
        for i in (1..pairs.len()).rev() {
            let j = rng.gen_range(0..=i);
            pairs.swap(i, j);
        }
        Ok(Voucher {
            root,
            pairs,
            payload,
        })
    }
}

fn coefficient(k: &[u8; 32], t: u16, i: u16) -> Scalar {
    let mut d = [0u8; 4];
    d[..2].copy_from_slice(&t.to_be_bytes());
    d[2..].copy_from_slice(&i.to_be_bytes());
    prf_scalar(k, b"bulwark-psi-shamir-v1", &d)
}

/// f(x) by Horner's rule.
fn share_y(k: &[u8; 32], t: u16, x: &Scalar) -> Scalar {
    let mut y = Scalar::ZERO;
    for i in (0..=t).rev() {
        y = y * x + coefficient(k, t, i);
    }
    y
}

/// A stream of PRF words for (label, data): blocks of 1000 words, each block
/// one HKDF-Expand with the block number appended to `data`.
fn words(k: &[u8; 32], label: &[u8], data: &[u8], n: usize) -> impl Iterator<Item = u64> {
    // Eight spare words for the (rare, p ≈ 2⁻⁶¹ each) rejections in gf::from_words.
    let total = n + 8;
    let mut out = Vec::with_capacity(total);
    let mut block = 0u32;
    while out.len() < total {
        let len = (total - out.len()).min(1000);
        let mut buf = Zeroizing::new(vec![0u8; 8 * len]);
        let mut d = data.to_vec();
        d.extend_from_slice(&block.to_be_bytes());
        prf(k, label, &d, &mut buf);
        out.extend(
            buf.chunks_exact(8)
                .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
        );
        block += 1;
    }
    out.into_iter()
}

/// z = M·(1, u, …, u^{t−1}) for the real share of `hash`.
fn detection_vector(k: &[u8; 32], t: u16, dim: usize, hash: &PdqHash) -> Vec<u64> {
    let mut w = words(k, b"bulwark-psi-dhf-u-v1", hash.as_bytes(), 1);
    let u = gf::from_words(&mut w);
    let mut powers = Vec::with_capacity(usize::from(t));
    let mut p = 1u64;
    for _ in 0..t {
        powers.push(p);
        p = gf::mul(p, u);
    }
    (0..dim)
        .map(|r| {
            let mut d = Vec::with_capacity(8);
            d.extend_from_slice(&t.to_be_bytes());
            d.extend_from_slice(&(dim as u16).to_be_bytes());
            d.extend_from_slice(&(r as u32).to_be_bytes());
            let mut row = words(k, b"bulwark-psi-dhf-m-v1", &d, usize::from(t));
            powers.iter().fold(0u64, |acc, &pw| {
                gf::add(acc, gf::mul(gf::from_words(&mut row), pw))
            })
        })
        .collect()
}

/// Is `hash` one this account sends synthetic vouchers for (probability p)?
fn is_synthetic(k: &[u8; 32], p: f64, hash: &PdqHash) -> bool {
    let mut b = [0u8; 8];
    prf(k, b"bulwark-psi-synthetic-v1", hash.as_bytes(), &mut b);
    (u64::from_be_bytes(b) as f64) < p * 18_446_744_073_709_551_616.0
}

/// Which tables a synthetic voucher opens (always at least m, so it opens).
/// Once a voucher opens, the server can count its agreeing tables (any m of
/// them give the key, and each further share can be checked against it), so
/// the count should look like a real opened voucher's. Real ones are LSH
/// false candidates, which agree in exactly m tables almost always, exact
/// copies of banked images, which agree in all L, and edited copies in
/// between. A third of synthetic vouchers open exactly m random tables, a
/// third all L, a third the tables a copy at a simulated distance
/// d ∈ 1..=8 would keep (redrawn until at least m): the count of a false
/// candidate or of an exact copy tells it from a synthetic voucher by a
/// likelihood ratio of at most 3 (measured in
/// `opened_vouchers_agreeing_table_counts_bound_the_likelihood_ratio`). With
/// multi-probe the last third opens m + 1 ..= L − 1 random tables instead
/// (measured in docs/PRIVATE-MATCHING.md, "The table-count attack").
///
/// Also returns whether the voucher plays a copy (the last two thirds), whose
/// tables may open more than one pair each (see `synthetic_extra_pairs`).
fn synthetic_open_tables<R: RngCore>(pdata: &Pdata, rng: &mut R) -> (Vec<bool>, bool) {
    let l = usize::from(pdata.params().tables);
    let m = usize::from(pdata.params().min_tables);
    match rng.gen_range(0..3u8) {
        0 => {
            let mut open = vec![false; l];
            let mut n = 0;
            while n < m {
                let t = rng.gen_range(0..l);
                if !open[t] {
                    open[t] = true;
                    n += 1;
                }
            }
            return (open, false);
        }
        1 => return (vec![true; l], true),
        _ => {}
    }
    if pdata.params().probes > 1 && m + 1 < l {
        // Probing copies agree in any number of tables between m and L
        // about evenly (resized copies) or in few (crops) — far more often
        // in L − 1 or L − 2 tables than a probe-free copy 1..8 bits away
        // (measured with `private_eval`): open m + 1 ..= L − 1 random
        // tables, each count equally likely.
        let c = rng.gen_range(m + 1..l);
        let mut open = vec![false; l];
        let mut n = 0;
        while n < c {
            let t = rng.gen_range(0..l);
            if !open[t] {
                open[t] = true;
                n += 1;
            }
        }
        return (open, true);
    }
    loop {
        let d = rng.gen_range(1..=SYNTHETIC_SIM_MAX_DISTANCE);
        let mut flipped = [false; 256];
        let mut n = 0;
        while n < d {
            let b = usize::from(rng.gen_range(0..=255u8));
            if !flipped[b] {
                flipped[b] = true;
                n += 1;
            }
        }
        let open: Vec<bool> = pdata
            .positions()
            .iter()
            .map(|pos| pos.iter().all(|&p| !flipped[usize::from(p)]))
            .collect();
        if open.iter().filter(|&&o| o).count() >= m {
            return (open, true);
        }
    }
}

/// How many more pairs than one an opened table of a synthetic voucher that
/// plays a copy opens. With multi-probe a real table opens one pair per probe
/// that equals a pdata sub-key, and the server sees how many pairs of each
/// agreeing table carry the key's share once the voucher opens. With
/// bank-side variants (the expanded profile) a copy's probes often hit both
/// an image's sub-key and a variant's: on the corpus, exact copies opened two
/// pairs in ≈ 15 % of their tables (`private_eval`). So each further pair
/// opens with probability [`Params::synthetic_extra_pair`] (0 but for the
/// expanded profile), at most `probes` pairs in all.
fn synthetic_extra_pairs<R: RngCore>(params: &crate::Params, rng: &mut R) -> usize {
    let q = params.synthetic_extra_pair();
    let mut n = 0;
    while q > 0.0 && n + 1 < usize::from(params.probes) && rng.gen_bool(q) {
        n += 1;
    }
    n
}

/// A pair: x in the clear, Q, and y's uniform 64-byte encoding under the pad
/// of S = the value only the server's α·Q reproduces on a match.
fn seal_pair<R: RngCore + CryptoRng>(
    q: &RistrettoPoint,
    s: &RistrettoPoint,
    (x, y): &(u16, Scalar),
    rng: &mut R,
) -> Pair {
    let qc = q.compress();
    let pad = slot_pad(s, &qc);
    let enc = wide_encoding(y, rng);
    let mut ct = [0u8; PAIR_CT];
    for (c, (e, p)) in ct.iter_mut().zip(enc.iter().zip(pad.iter())) {
        *c = e ^ p;
    }
    Pair {
        x: *x,
        q: qc.to_bytes(),
        ct,
    }
}

/// One share (x, g(x)) of the voucher key per table, g of degree m − 1 with
/// g(0) = `r`; x random, distinct and nonzero (16 bits, sent in the clear: it
/// groups a table's two pairs but does not say which table).
fn key_shares<R: RngCore + CryptoRng>(
    r: Scalar,
    tables: u16,
    m: u16,
    rng: &mut R,
) -> Vec<(u16, Scalar)> {
    let coefficients: Vec<Scalar> = (1..m).map(|_| Scalar::random(rng)).collect();
    let mut xs: Vec<u16> = Vec::with_capacity(usize::from(tables));
    while xs.len() < usize::from(tables) {
        let x = rng.r#gen::<u16>();
        if x != 0 && !xs.contains(&x) {
            xs.push(x);
        }
    }
    xs.into_iter()
        .map(|x| {
            let xs = Scalar::from(x);
            let mut y = Scalar::ZERO;
            for c in coefficients.iter().rev() {
                y = (y + c) * xs;
            }
            (x, y + r)
        })
        .collect()
}
