//! The device side: the account secret and voucher construction.
//!
//! Everything an account derives comes from one 32-byte secret through a PRF
//! (HKDF-SHA256 with a distinct label per use):
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
    INFO_ADCT, adct_key, hash_to_group, prf, prf_scalar, random_point, seal_committed, seal_once,
    seal_random_nonce, slot_key,
};
use crate::gf;
use crate::voucher::{PAIR_CT, SHARE_PT, Voucher, payload_aad, slot_aad};
use crate::{Pdata, VoucherError};

const ACCOUNT_MAGIC: &[u8; 4] = b"BWDA";
const ACCOUNT_VERSION: u16 = 1;

/// A synthetic voucher opens as many tables as a real match at a distance
/// drawn uniformly from 0..=this would (see docs/THREAT-MODEL.md).
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

    /// The account key K = f(0) for threshold `t` (what the server rebuilds).
    pub(crate) fn account_key(&self, t: u16) -> Scalar {
        self.coefficient(t, 0)
    }

    fn coefficient(&self, t: u16, i: u16) -> Scalar {
        let mut d = [0u8; 4];
        d[..2].copy_from_slice(&t.to_be_bytes());
        d[2..].copy_from_slice(&i.to_be_bytes());
        prf_scalar(&self.secret, b"bulwark-psi-shamir-v1", &d)
    }

    /// f(x) by Horner's rule.
    fn share_y(&self, t: u16, x: &Scalar) -> Scalar {
        let mut y = Scalar::ZERO;
        for i in (0..=t).rev() {
            y = y * x + self.coefficient(t, i);
        }
        y
    }

    /// A stream of PRF words for (label, data): blocks of 1000 words, each block
    /// one HKDF-Expand with the block number appended to `data`.
    fn words(&self, label: &[u8], data: &[u8], n: usize) -> impl Iterator<Item = u64> {
        // Eight spare words for the (rare, p ≈ 2⁻⁶¹ each) rejections in gf::from_words.
        let total = n + 8;
        let mut words = Vec::with_capacity(total);
        let mut block = 0u32;
        while words.len() < total {
            let len = (total - words.len()).min(1000);
            let mut buf = Zeroizing::new(vec![0u8; 8 * len]);
            let mut d = data.to_vec();
            d.extend_from_slice(&block.to_be_bytes());
            prf(&self.secret, label, &d, &mut buf);
            words.extend(
                buf.chunks_exact(8)
                    .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            );
            block += 1;
        }
        words.into_iter()
    }

    /// z = M·(1, u, …, u^{t−1}) for the real share of `hash`.
    fn detection_vector(&self, t: u16, dim: usize, hash: &PdqHash) -> Vec<u64> {
        let mut w = self.words(b"bulwark-psi-dhf-u-v1", hash.as_bytes(), 1);
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
                let mut row = self.words(b"bulwark-psi-dhf-m-v1", &d, usize::from(t));
                powers.iter().fold(0u64, |acc, &pw| {
                    gf::add(acc, gf::mul(gf::from_words(&mut row), pw))
                })
            })
            .collect()
    }

    /// Is `hash` one this account sends synthetic vouchers for (probability p)?
    fn is_synthetic(&self, p: f64, hash: &PdqHash) -> bool {
        let mut b = [0u8; 8];
        prf(
            &self.secret,
            b"bulwark-psi-synthetic-v1",
            hash.as_bytes(),
            &mut b,
        );
        (u64::from_be_bytes(b) as f64) < p * 18_446_744_073_709_551_616.0
    }

    /// Whether this account sends a synthetic voucher for `hash` under this
    /// pdata (for tests: a real device never needs to know).
    #[doc(hidden)]
    pub fn sends_synthetic_for(&self, pdata: &Pdata, hash: &PdqHash) -> bool {
        self.is_synthetic(pdata.params().synthetic_probability, hash)
    }

    pub(crate) fn inner(&self, pdata: &Pdata, hash: &PdqHash) -> (Inner, bool) {
        let params = pdata.params();
        let t = params.threshold;
        let dim = params.detection_dim();
        let mut x = prf_scalar(&self.secret, b"bulwark-psi-x-v1", hash.as_bytes());
        if x == Scalar::ZERO {
            x = Scalar::ONE; // probability 2⁻²⁵²
        }
        // The real share and vector are computed either way (equal timing).
        let y = self.share_y(t, &x);
        let z = self.detection_vector(t, dim, hash);
        if self.is_synthetic(params.synthetic_probability, hash) {
            let y = prf_scalar(&self.secret, b"bulwark-psi-dummy-y-v1", hash.as_bytes());
            let mut w = self.words(b"bulwark-psi-dummy-z-v1", hash.as_bytes(), dim);
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
        let params = pdata.params();
        let max = usize::from(params.derivative_bytes);
        if derivative.len() > max {
            return Err(VoucherError::DerivativeTooLarge {
                got: derivative.len(),
                max,
            });
        }
        let (inner, synthetic) = self.inner(pdata, hash);
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
            let k = adct_key(&self.account_key(params.threshold));
            seal_random_nonce(&k, INFO_ADCT, &ad, rng)
        };

        // payload = Enc_committed(rkey, x ‖ y ‖ z ‖ adct); rkey is a random
        // scalar, Shamir-shared across the tables with threshold m (for m = 1
        // every table carries rkey itself).
        let r = Scalar::random(rng);
        let rkey = Zeroizing::new(r.to_bytes());
        let key_shares = key_shares(r, params.tables, params.min_tables, rng);
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
        let tables = usize::from(params.tables);
        let mut pairs: Vec<([u8; 32], [u8; PAIR_CT])> = Vec::with_capacity(2 * tables);
        let sealed =
            |q: &RistrettoPoint, s: &RistrettoPoint, table: usize| -> ([u8; 32], [u8; PAIR_CT]) {
                let qc = q.compress();
                let ct = seal_once(&slot_key(s, &qc), slot_aad(), &key_shares[table][..]);
                let mut a = [0u8; PAIR_CT];
                a.copy_from_slice(&ct);
                (qc.to_bytes(), a)
            };
        // The real pairs are always computed, so making a synthetic voucher
        // takes as long as a real one (its timing does not tell).
        for key in pdata.sub_keys(hash) {
            let h = hash_to_group(&[pdata.seed(), &key.to_bytes()]);
            let slots = pdata.slots_of(key);
            for (j, slot) in slots.into_iter().enumerate() {
                // When both cuckoo choices are the same slot, the second
                // pair uses a random point, so a match opens one pair per table.
                let p = match pdata.point(key.table, slot) {
                    Some(p) if j == 0 || slots[0] != slots[1] => p,
                    _ => random_point(rng),
                };
                let beta = Scalar::random(rng);
                let gamma = Scalar::random(rng);
                let q = RistrettoPoint::multiscalar_mul([beta, gamma], [h, g]);
                let s = RistrettoPoint::multiscalar_mul([beta, gamma], [p, l_point]);
                pairs.push(sealed(&q, &s, usize::from(key.table)));
            }
        }
        if synthetic {
            pairs.clear();
            // Opens the tables a real match at a simulated small distance
            // would open (at least one), each at one random slot; the other
            // pairs are random and open nothing.
            let open = simulated_open_tables(pdata, rng);
            for (table, &opens) in open.iter().enumerate() {
                let j_open = if opens {
                    Some(rng.gen_range(0..2))
                } else {
                    None
                };
                for j in 0..2 {
                    if j_open == Some(j) {
                        let beta = Scalar::random(rng);
                        let q = &beta * RISTRETTO_BASEPOINT_TABLE;
                        let s = beta * l_point;
                        pairs.push(sealed(&q, &s, table));
                    } else {
                        let q = random_point(rng).compress().to_bytes();
                        let mut ct = [0u8; PAIR_CT];
                        rng.fill_bytes(&mut ct);
                        pairs.push((q, ct));
                    }
                }
            }
        }
        // Shuffle: the server learns how many pairs open, not which table or slot.
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

/// Which tables a synthetic voucher opens: those a copy at a simulated
/// distance d ∈ 0..=8 (uniform, random flipped bits) would still agree on;
/// redrawn until at least `min_tables` (so it opens).
fn simulated_open_tables<R: RngCore>(pdata: &Pdata, rng: &mut R) -> Vec<bool> {
    loop {
        let d = rng.gen_range(0..=SYNTHETIC_SIM_MAX_DISTANCE);
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
        if open.iter().filter(|&&o| o).count() >= usize::from(pdata.params().min_tables) {
            return open;
        }
    }
}

/// One share of the voucher key per table: `x (2 bytes, random, distinct,
/// nonzero) ‖ share (32 bytes)` of a degree m − 1 polynomial with constant
/// term `r`. The x values are random so an opened share does not say which
/// table it came from.
fn key_shares<R: RngCore + CryptoRng>(
    r: Scalar,
    tables: u16,
    m: u16,
    rng: &mut R,
) -> Vec<Zeroizing<[u8; SHARE_PT]>> {
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
            y += r;
            let mut b = Zeroizing::new([0u8; SHARE_PT]);
            b[..2].copy_from_slice(&x.to_be_bytes());
            b[2..].copy_from_slice(y.as_bytes());
            b
        })
        .collect()
}
