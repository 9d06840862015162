//! The server side: opening vouchers, per-account state, threshold
//! reconstruction.
//!
//! # Telling real shares from synthetic ones
//!
//! Each payload carries, next to its Shamir share (x, y), a *detection vector*
//! z ∈ GF(p)^D, p = 2⁶¹ − 1, D = t + s + 1 (t the threshold, s
//! `max_synthetic`). A real voucher's z is M·(1, u, …, u^{t−1}) for the
//! account's secret D × t matrix M and a per-hash u; a synthetic voucher's z is
//! uniformly random. (This is the role of the "detectable hash function" of
//! the Apple PSI paper; this construction is ours and simpler.)
//!
//! - With at most t real vouchers, their u are distinct, so the vectors
//!   (1, u, …, u^{t−1}) are linearly independent and M·(…) are independent
//!   uniform vectors: exactly the distribution of synthetic ones. Below the
//!   threshold the stored state is therefore identically distributed whatever
//!   mix of real and synthetic vouchers produced it (the tests check what can
//!   be checked: same size, same layout, full rank either way).
//! - With t + 1 or more real ones, they lie in the t-dimensional column space of
//!   M, so each is in the span of the others; a synthetic vector is not (with
//!   probability ≈ 1 − n/p) as long as there are at most s of them. Gaussian
//!   elimination finds exactly the vectors that take part in a linear
//!   dependency: the real ones. No trial subsets.
//! - t + 1 real shares then give K = f(0) by Lagrange interpolation, and every
//!   real adct decrypts under K; a synthetic one never does (its adct key was
//!   random), so the server's final word on which vouchers are real is the
//!   authenticated decryption.
//!
//! If more than s synthetic vouchers are stored, synthetic vectors become
//! dependent too and reconstruction may fail (`open` returns `None`); see
//! docs/PRIVATE-MATCHING.md for how s and the synthetic probability are chosen.

use bulwark_pdq::PdqHash;
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{
    COMMIT, INFO_ADCT, NONCE, TAG, adct_key, commitment_matches, open_committed, open_random_nonce,
    slot_pad, wide_decoding,
};
use crate::gf;
use crate::pdata::{Candidate, Pdata, ServerKeys, ServerTable};
use crate::voucher::{PAIR_CT, Voucher, payload_aad};
use crate::wire::Reader;
use crate::{Params, Rejection};

/// Most distinct opened vouchers one account state holds.
pub const MAX_ENTRIES: usize = 100_000;
const STATE_MAGIC: &[u8; 4] = b"BWPS";
const STATE_VERSION: u16 = 2;
const MAX_ADCT: usize = 16384 + 64;

/// One opened, distinct voucher as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Entry {
    digest: [u8; 32],
    x: [u8; 32],
    y: [u8; 32],
    z: Vec<u64>,
    adct: Vec<u8>,
}

/// The server's per-account state: the opened vouchers' payloads, one per
/// distinct share, in a canonical order (sorted by share x-coordinate) so the
/// same content always serialises to the same bytes. Store it with
/// [`AccountState::to_bytes`]; nothing in it is readable below the threshold.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AccountState {
    /// The epoch of the stored entries (set by the first stored entry).
    epoch: Option<u64>,
    entries: Vec<Entry>,
}

/// Why stored account-state bytes do not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The bytes are not an account state of this format; says which field.
    #[error("malformed account state: {0}")]
    Malformed(&'static str),
}

/// One voucher the server opened above the threshold and found truly near a
/// bank entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Content id of the nearest bank entry.
    pub content_id: u64,
    /// Distance to it.
    pub distance: u32,
    /// The image's PDQ hash, as the device computed it.
    pub hash: PdqHash,
    /// The visual derivative the device attached (unpadded).
    pub derivative: Vec<u8>,
    /// Every bank entry within the radius, nearest first.
    pub matches: Vec<Candidate>,
}

pub(crate) fn payload_len(p: &Params) -> usize {
    COMMIT + TAG + 64 + 8 * p.detection_dim() + adct_len(p)
}

fn adct_len(p: &Params) -> usize {
    NONCE + 34 + usize::from(p.derivative_bytes) + TAG
}

/// The polynomial through `points` (distinct x), evaluated at `at`.
fn lagrange(points: &[(Scalar, Scalar)], at: Scalar) -> Scalar {
    let mut acc = Scalar::ZERO;
    for (i, (xi, yi)) in points.iter().enumerate() {
        let (mut num, mut den) = (Scalar::ONE, Scalar::ONE);
        for (j, (xj, _)) in points.iter().enumerate() {
            if i != j {
                num *= at - xj;
                den *= xi - xj;
            }
        }
        acc += yi * num * den.invert();
    }
    acc
}

fn lagrange_at_zero(points: &[(Scalar, Scalar)]) -> Scalar {
    lagrange(points, Scalar::ZERO)
}

/// The candidate shares of one voucher under α: for each pair, its x and the
/// y its pad leaves (uniformly random unless the pair matched).
fn candidate_shares(keys: &ServerKeys, v: &Voucher) -> Result<Vec<(u16, Scalar)>, Rejection> {
    v.pairs
        .iter()
        .map(|p| {
            let qc = CompressedRistretto(p.q);
            let qp = qc
                .decompress()
                .ok_or(Rejection::Malformed("Q is not a ristretto255 point"))?;
            let pad = slot_pad(&(keys.alpha() * qp), &qc);
            let mut w = Zeroizing::new([0u8; PAIR_CT]);
            for (o, (c, k)) in w.iter_mut().zip(p.ct.iter().zip(pad.iter())) {
                *o = c ^ k;
            }
            Ok((p.x, wide_decoding(&w)))
        })
        .collect()
}

/// The voucher key, if some m tables (each at either slot) rebuild a key
/// whose commitment is the payload's. Every m-subset of the distinct x and
/// every slot choice is tried — C(L, m)·2ᵐ candidates, no early exit — and the
/// payload's key commitment is the only test: a pair alone never tells
/// whether it matched, so 0 and 1..m−1 agreeing tables look the same.
/// Returns the key and the m shares that rebuilt it.
type Found = (Zeroizing<[u8; 32]>, Vec<(Scalar, Scalar)>);

fn find_key(shares: &[(u16, Scalar)], m: usize, payload: &[u8]) -> Option<Found> {
    let mut xs: Vec<u16> = shares.iter().map(|s| s.0).collect();
    xs.sort_unstable();
    xs.dedup();
    let groups: Vec<Vec<Scalar>> = xs
        .iter()
        .map(|x| shares.iter().filter(|s| s.0 == *x).map(|s| s.1).collect())
        .collect();
    if m == 0 || m > xs.len() {
        return None;
    }
    let mut found: Option<Found> = None;
    let mut subset: Vec<usize> = (0..m).collect();
    loop {
        // Lagrange coefficients at 0 for this subset's x.
        let pts: Vec<Scalar> = subset.iter().map(|&i| Scalar::from(xs[i])).collect();
        let mut dens: Vec<Scalar> = pts
            .iter()
            .enumerate()
            .map(|(i, xi)| {
                pts.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .fold(Scalar::ONE, |acc, (_, xj)| acc * (xj - xi))
            })
            .collect();
        Scalar::batch_invert(&mut dens);
        let lambdas: Vec<Scalar> = pts
            .iter()
            .enumerate()
            .map(|(i, _)| {
                pts.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .fold(dens[i], |acc, (_, xj)| acc * xj)
            })
            .collect();
        // Every slot choice: choice bit k picks the pair of subset[k].
        let choices: usize = subset.iter().map(|&i| groups[i].len()).product();
        for c in 0..choices {
            let mut rest = c;
            let mut r = Scalar::ZERO;
            let mut used = Vec::with_capacity(m);
            for (k, &i) in subset.iter().enumerate() {
                let n = groups[i].len();
                let y = groups[i][rest % n];
                r += lambdas[k] * y;
                used.push((pts[k], y));
                rest /= n;
            }
            let rk = Zeroizing::new(r.to_bytes());
            r.zeroize();
            if commitment_matches(&rk, payload) && found.is_none() {
                found = Some((rk, used));
            }
        }
        // Next m-subset in lexicographic order.
        let n = xs.len();
        let mut k = m;
        while k > 0 && subset[k - 1] == n - m + k - 1 {
            k -= 1;
        }
        if k == 0 {
            return found;
        }
        subset[k - 1] += 1;
        for j in k..m {
            subset[j] = subset[j - 1] + 1;
        }
    }
}

/// What a server holding α can learn from one voucher on its own, at most:
/// 0 if the voucher does not open (whether no table or 1..m−1 tables agree),
/// else the number of tables whose share lies on the rebuilt key polynomial
/// (m..L). For tests and audits; [`AccountState::ingest`] learns only whether
/// it opens.
pub fn agreeing_tables(keys: &ServerKeys, pdata: &Pdata, v: &Voucher) -> usize {
    if !v.root.ct_eq(&pdata.root()) {
        return 0;
    }
    let Ok(shares) = candidate_shares(keys, v) else {
        return 0;
    };
    let m = usize::from(pdata.params().min_tables);
    let Some((_, basis)) = find_key(&shares, m, &v.payload) else {
        return 0;
    };
    let mut xs: Vec<u16> = shares.iter().map(|s| s.0).collect();
    xs.sort_unstable();
    xs.dedup();
    xs.iter()
        .filter(|x| {
            let at = lagrange(&basis, Scalar::from(**x));
            shares.iter().any(|s| s.0 == **x && s.1 == at)
        })
        .count()
}

/// Everything [`agreeing_tables`] sees, and one thing more: for each agreeing
/// table, how many of its pairs carry a share on the rebuilt key polynomial
/// (with multi-probe, several probes of one table can each match a bank
/// sub-key). Counts in descending order; empty if the voucher does not open.
/// For tests and audits of what an opened voucher shows the server.
pub fn opened_pairs_per_table(keys: &ServerKeys, pdata: &Pdata, v: &Voucher) -> Vec<usize> {
    if !v.root.ct_eq(&pdata.root()) {
        return Vec::new();
    }
    let Ok(shares) = candidate_shares(keys, v) else {
        return Vec::new();
    };
    let m = usize::from(pdata.params().min_tables);
    let Some((_, basis)) = find_key(&shares, m, &v.payload) else {
        return Vec::new();
    };
    let mut xs: Vec<u16> = shares.iter().map(|s| s.0).collect();
    xs.sort_unstable();
    xs.dedup();
    let mut out: Vec<usize> = xs
        .iter()
        .map(|x| {
            let at = lagrange(&basis, Scalar::from(*x));
            shares.iter().filter(|s| s.0 == *x && s.1 == at).count()
        })
        .filter(|&n| n > 0)
        .collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

impl AccountState {
    /// An empty state.
    pub fn new() -> AccountState {
        AccountState::default()
    }

    /// An empty state for one epoch: it refuses vouchers made for another.
    pub fn for_epoch(epoch: u64) -> AccountState {
        AccountState {
            epoch: Some(epoch),
            entries: Vec::new(),
        }
    }

    /// The epoch of this state, once known.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Processes one voucher. For each pair, computes α·Q and removes the
    /// pair's pad, giving a candidate share; tries every m tables × slot
    /// choice against the payload's key commitment; if one matches, decrypts
    /// the payload and stores its share, detection vector and adct — once per
    /// distinct share (an exact duplicate image changes nothing).
    ///
    /// Returns `Ok(())` whether or not the voucher opened (the result carries
    /// no hint of a match). A rejected voucher leaves the state unchanged.
    /// Vouchers of another epoch than the state's are refused
    /// (`WrongEpoch`), as are new entries beyond
    /// [`Params::max_entries_per_epoch`] (`LimitExceeded`).
    ///
    /// Cost: 2·L constant-time scalar multiplications by α, 2·L HKDF pads,
    /// and C(L, m)·2ᵐ candidate keys (one HKDF each; 60 at the default).
    pub fn ingest(
        &mut self,
        keys: &ServerKeys,
        pdata: &Pdata,
        v: &Voucher,
    ) -> Result<(), Rejection> {
        let params = pdata.params();
        if !v.root.ct_eq(&pdata.root()) {
            return Err(Rejection::WrongPdata);
        }
        let epoch = pdata.release().epoch;
        if self.epoch.is_some_and(|e| e != epoch) {
            return Err(Rejection::WrongEpoch);
        }
        if v.pairs.len() != params.pairs() || v.group() != 2 * usize::from(params.probes) {
            return Err(Rejection::Malformed("pair count differs from the pdata's"));
        }
        if v.payload.len() != payload_len(params) {
            return Err(Rejection::Malformed(
                "payload length differs from the pdata's",
            ));
        }
        let digest: [u8; 32] = Sha256::digest(v.to_bytes()).into();
        if self.entries.iter().any(|e| e.digest == digest) {
            return Err(Rejection::Replayed);
        }
        let shares = candidate_shares(keys, v)?;
        let m = usize::from(params.min_tables);
        let Some((rk, _)) = find_key(&shares, m, &v.payload) else {
            return Ok(());
        };
        let plain = Zeroizing::new(
            open_committed(&rk, &payload_aad(&v.root), &v.payload).ok_or(Rejection::Forged)?,
        );
        let dim = params.detection_dim();
        let mut r = Reader::new(&plain);
        let f = |_| Rejection::Forged;
        let x: [u8; 32] = r.array("x").map_err(f)?;
        let y: [u8; 32] = r.array("y").map_err(f)?;
        let xs: Option<Scalar> = Scalar::from_canonical_bytes(x).into();
        let ys: Option<Scalar> = Scalar::from_canonical_bytes(y).into();
        match (xs, ys) {
            (Some(xs), Some(_)) if xs != Scalar::ZERO => {}
            _ => return Err(Rejection::Forged),
        }
        let mut z = Vec::with_capacity(dim);
        for _ in 0..dim {
            let w = r.u64("z").map_err(f)?;
            if w >= gf::P {
                return Err(Rejection::Forged);
            }
            z.push(w);
        }
        let adct = r.bytes(adct_len(params), "adct").map_err(f)?.to_vec();
        r.finish().map_err(f)?;
        if let Some(e) = self.entries.first()
            && e.z.len() != dim
        {
            return Err(Rejection::WrongPdata);
        }
        match self.entries.binary_search_by(|e| e.x.cmp(&x)) {
            Ok(_) => Ok(()), // the same share again: nothing new
            Err(_) if self.entries.len() >= params.max_entries_per_epoch().min(MAX_ENTRIES) => Err(
                Rejection::LimitExceeded(params.max_entries_per_epoch().min(MAX_ENTRIES)),
            ),
            Err(at) => {
                self.epoch = Some(epoch);
                self.entries.insert(
                    at,
                    Entry {
                        digest,
                        x,
                        y,
                        z,
                        adct,
                    },
                );
                Ok(())
            }
        }
    }

    /// Above the threshold, the vouchers truly near a bank entry: finds the
    /// real shares (detection vectors), rebuilds the account key, decrypts every
    /// real adct, and keeps those whose hash is within the radius of a bank
    /// entry (LSH false candidates are dropped here). `None` at or below the
    /// threshold — and whenever the key cannot be rebuilt — with no other
    /// output either way.
    ///
    /// Cost: Gaussian elimination on a D × n matrix (n stored entries) over
    /// GF(2⁶¹−1), about a millisecond for D ≈ 70, n ≈ 70; call it when the
    /// state has more than `threshold` entries ([`AccountState::len`]).
    pub fn open(&self, pdata: &Pdata, table: &ServerTable) -> Option<Vec<Opened>> {
        let params = pdata.params();
        let t = usize::from(params.threshold);
        let dim = params.detection_dim();
        if self.entries.len() < t + 1
            || self.entries.iter().any(|e| e.z.len() != dim)
            || self.epoch.is_some_and(|e| e != pdata.release().epoch)
        {
            return None;
        }
        let cols: Vec<Vec<u64>> = self.entries.iter().map(|e| e.z.clone()).collect();
        let real = gf::dependent_columns(&cols);
        if real.len() < t + 1 {
            return None;
        }
        let shares: Vec<(Scalar, Scalar)> = real
            .iter()
            .filter_map(|&i| {
                let e = &self.entries[i];
                let x: Option<Scalar> = Scalar::from_canonical_bytes(e.x).into();
                let y: Option<Scalar> = Scalar::from_canonical_bytes(e.y).into();
                Some((x?, y?))
            })
            .collect();
        if shares.len() != real.len() {
            return None;
        }
        // Normally the first t + 1 found are all real. If more than s
        // synthetic vouchers made spurious dependencies, try a few other
        // windows before giving up.
        let windows = (shares.len() - t).min(8);
        for w in 0..windows {
            let mut k = lagrange_at_zero(&shares[w..w + t + 1]);
            let key = adct_key(&k);
            k.zeroize();
            let mut out = Vec::new();
            let mut any = false;
            for &i in &real {
                let Some(ad) = open_random_nonce(&key, INFO_ADCT, &self.entries[i].adct) else {
                    continue;
                };
                any = true;
                if ad.len() < 34 {
                    continue;
                }
                let mut h = [0u8; 32];
                h.copy_from_slice(&ad[..32]);
                let hash = PdqHash::from_bytes(h);
                let len = usize::from(u16::from_be_bytes([ad[32], ad[33]]));
                let Some(derivative) = ad.get(34..34 + len) else {
                    continue;
                };
                let matches = table.matches(&hash);
                if let Some(best) = matches.first() {
                    out.push(Opened {
                        content_id: best.content_id,
                        distance: best.distance,
                        hash,
                        derivative: derivative.to_vec(),
                        matches,
                    });
                }
            }
            if any {
                return Some(out);
            }
        }
        None
    }

    /// Number of distinct opened vouchers stored (what the server sees anyway:
    /// real matches, LSH false candidates and synthetic vouchers alike).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No opened voucher stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `"BWPS" | u16 version (2) | u8 has epoch | u64 epoch | u32 count |
    /// count × (digest | x | y | u16 D | D × u64 | u32 adct length | adct)`,
    /// entries sorted by x.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(STATE_MAGIC);
        v.extend_from_slice(&STATE_VERSION.to_be_bytes());
        v.push(u8::from(self.epoch.is_some()));
        v.extend_from_slice(&self.epoch.unwrap_or(0).to_be_bytes());
        v.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            v.extend_from_slice(&e.digest);
            v.extend_from_slice(&e.x);
            v.extend_from_slice(&e.y);
            v.extend_from_slice(&(e.z.len() as u16).to_be_bytes());
            for w in &e.z {
                v.extend_from_slice(&w.to_be_bytes());
            }
            v.extend_from_slice(&(e.adct.len() as u32).to_be_bytes());
            v.extend_from_slice(&e.adct);
        }
        v
    }

    /// Reads [`AccountState::to_bytes`]. Never panics; refuses anything
    /// [`AccountState::to_bytes`] would not have written.
    pub fn from_bytes(b: &[u8]) -> Result<AccountState, StateError> {
        let m = |e: crate::wire::Short| StateError::Malformed(e.0);
        let mut r = Reader::new(b);
        if &r.array::<4>("magic").map_err(m)? != STATE_MAGIC {
            return Err(StateError::Malformed(
                "not an account state (magic is not BWPS)",
            ));
        }
        if r.u16("version").map_err(m)? != STATE_VERSION {
            return Err(StateError::Malformed("unsupported account state version"));
        }
        let epoch = match (r.u8("epoch flag").map_err(m)?, r.u64("epoch").map_err(m)?) {
            (0, 0) => None,
            (1, e) => Some(e),
            _ => return Err(StateError::Malformed("epoch flag is not 0 or 1")),
        };
        let n = r.u32("count").map_err(m)? as usize;
        if n > MAX_ENTRIES || n.saturating_mul(100) > r.remaining() {
            return Err(StateError::Malformed(
                "entry count exceeds the data or the limit",
            ));
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(n);
        for _ in 0..n {
            let digest = r.array("digest").map_err(m)?;
            let x: [u8; 32] = r.array("x").map_err(m)?;
            let y = r.array("y").map_err(m)?;
            let d = usize::from(r.u16("dimension").map_err(m)?);
            if d.saturating_mul(8) > r.remaining() {
                return Err(StateError::Malformed("dimension exceeds the data"));
            }
            let mut z = Vec::with_capacity(d);
            for _ in 0..d {
                z.push(r.u64("z").map_err(m)?);
            }
            let alen = r.u32("adct length").map_err(m)? as usize;
            if alen > MAX_ADCT {
                return Err(StateError::Malformed("adct longer than any pdata allows"));
            }
            let adct = r.bytes(alen, "adct").map_err(m)?.to_vec();
            if entries.last().is_some_and(|p| p.x >= x) {
                return Err(StateError::Malformed("entries not sorted by x"));
            }
            entries.push(Entry {
                digest,
                x,
                y,
                z,
                adct,
            });
        }
        r.finish().map_err(m)?;
        Ok(AccountState { epoch, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceAccount, Params};
    use rand::{RngCore, SeedableRng};

    /// Below the threshold no subset of the stored detection vectors is
    /// linearly dependent, whatever mix of real and synthetic vouchers made
    /// them: the one structure that tells real from synthetic is absent.
    #[test]
    fn below_threshold_detection_vectors_are_independent_for_every_mix() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let keys = ServerKeys::generate(&mut rng);
        let params = Params {
            threshold: 4,
            max_synthetic: 6,
            synthetic_probability: 0.5,
            derivative_bytes: 8,
            ..Params::default()
        };
        let bank: Vec<(u64, PdqHash)> = (0..60)
            .map(|i| {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                (i, PdqHash::from_bytes(b))
            })
            .collect();
        let (pdata, _) = Pdata::build(&keys, &params, &bank, &mut rng).expect("builds");
        let a = DeviceAccount::generate(&mut rng);
        let (syn, real): (Vec<_>, Vec<_>) = bank
            .iter()
            .map(|e| e.1)
            .partition(|h| a.sends_synthetic_for(&pdata, h));
        for n_real in 0..=4usize {
            let mut s = AccountState::new();
            for h in real[..n_real].iter().chain(&syn[..6]) {
                let v = a.voucher(&pdata, h, b"", &mut rng).expect("voucher");
                s.ingest(&keys, &pdata, &v).expect("ok");
            }
            let cols: Vec<Vec<u64>> = s.entries.iter().map(|e| e.z.clone()).collect();
            assert!(gf::dependent_columns(&cols).is_empty(), "{n_real} real");
        }
        // One more real share and exactly the real ones become dependent.
        let mut s = AccountState::new();
        for h in real[..5].iter().chain(&syn[..6]) {
            let v = a.voucher(&pdata, h, b"", &mut rng).expect("voucher");
            s.ingest(&keys, &pdata, &v).expect("ok");
        }
        let cols: Vec<Vec<u64>> = s.entries.iter().map(|e| e.z.clone()).collect();
        let dep = gf::dependent_columns(&cols);
        assert_eq!(dep.len(), 5);
        let (x_real, _) = a.inner(&pdata, &real[0]);
        assert!(dep.iter().any(|&i| s.entries[i].x == x_real.x.to_bytes()));
    }
}
