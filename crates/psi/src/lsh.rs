//! Bit-sampling locality-sensitive hashing over the 256-bit PDQ hash.
//!
//! Table ℓ samples `k` bit positions of the hash; two hashes at Hamming
//! distance d agree on all of them with probability C(256−d, k) / C(256, k)
//! ≈ (1 − d/256)^k. The positions come from the pdata's public seed:
//! SHA-256 in counter mode drives a Fisher–Yates shuffle of 0..256, tables take
//! consecutive runs of `k` positions from that permutation (then from a fresh
//! permutation once it is used up), so tables are disjoint while `k·L ≤ 256`.

use bulwark_pdq::PdqHash;
use sha2::{Digest, Sha256};

const DST_POSITIONS: &[u8] = b"bulwark-psi-lsh-positions-v1";

/// The sampled bits of one table: which table, and the bits packed into a u64
/// (first sampled position in the most significant used bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubKey {
    /// Table index ℓ.
    pub table: u16,
    /// The `k` sampled bits.
    pub bits: u64,
}

impl SubKey {
    /// The bytes hashed to the group: table (2 bytes BE) ‖ bits (8 bytes BE).
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..2].copy_from_slice(&self.table.to_be_bytes());
        b[2..].copy_from_slice(&self.bits.to_be_bytes());
        b
    }
}

/// A byte stream: SHA-256(DST ‖ seed ‖ counter) blocks.
struct Stream<'a> {
    seed: &'a [u8; 32],
    counter: u64,
    buf: [u8; 32],
    pos: usize,
}

impl Stream<'_> {
    fn next_byte(&mut self) -> u8 {
        if self.pos == 32 {
            let mut h = Sha256::new();
            h.update(DST_POSITIONS);
            h.update(self.seed);
            h.update(self.counter.to_be_bytes());
            self.buf = h.finalize().into();
            self.counter += 1;
            self.pos = 0;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        b
    }

    /// Uniform in 0..=max (max ≤ 255), by rejection.
    fn below_or_eq(&mut self, max: u8) -> u8 {
        let n = u16::from(max) + 1;
        let limit = 256 - 256 % n; // accept b < limit
        loop {
            let b = u16::from(self.next_byte());
            if b < limit {
                return (b % n) as u8;
            }
        }
    }
}

/// The sampled positions of every table, derived from the public seed.
pub fn positions(seed: &[u8; 32], tables: u16, bits_per_table: u8) -> Vec<Vec<u8>> {
    let mut s = Stream {
        seed,
        counter: 0,
        buf: [0; 32],
        pos: 32,
    };
    let mut perm: Vec<u8> = Vec::new();
    let mut next = 256usize;
    let mut out = Vec::with_capacity(usize::from(tables));
    for _ in 0..tables {
        let mut t = Vec::with_capacity(usize::from(bits_per_table));
        while t.len() < usize::from(bits_per_table) {
            if next == 256 {
                perm = (0..=255u8).collect();
                for i in (1..256usize).rev() {
                    let j = usize::from(s.below_or_eq(i as u8));
                    perm.swap(i, j);
                }
                next = 0;
            }
            let p = perm[next];
            next += 1;
            if !t.contains(&p) {
                t.push(p);
            }
        }
        out.push(t);
    }
    out
}

/// The sub-key of `hash` in table `table` with the given positions.
pub fn sub_key(hash: &PdqHash, table: u16, positions: &[u8]) -> SubKey {
    let bits = positions.iter().fold(0u64, |acc, &p| {
        acc << 1 | u64::from(hash.bit(usize::from(p)))
    });
    SubKey { table, bits }
}

/// How many of a table's least confident bits multi-probe flips among.
pub const PROBE_CANDIDATE_BITS: usize = 10;
/// The most bits one probe flips.
pub const MAX_PROBE_FLIPS: usize = 3;

/// How many distinct probes (besides the exact sub-key) a table of `k` bits
/// can have: the non-empty subsets of at most [`MAX_PROBE_FLIPS`] of its
/// [`PROBE_CANDIDATE_BITS`] least confident bits.
pub fn available_probes(k: u8) -> usize {
    let c = usize::from(k).min(PROBE_CANDIDATE_BITS);
    let choose = |n: usize, r: usize| -> usize { (0..r).fold(1, |acc, i| acc * (n - i) / (i + 1)) };
    (1..=MAX_PROBE_FLIPS.min(c)).map(|r| choose(c, r)).sum()
}

/// Multi-probe: the `probes` sub-keys a device sends for table `table`: the
/// exact sub-key first, then the variants with the likeliest flips. PDQ bit i
/// is "DCT coefficient i > median", and `margins[i]` = |coefficient − median|
/// (`bulwark_pdq::hash_rgb_confidence`): edits flip small-margin bits first.
/// Candidate flip sets are the non-empty subsets of at most
/// [`MAX_PROBE_FLIPS`] of the table's [`PROBE_CANDIDATE_BITS`] smallest-margin
/// bits, ordered by the sum of squared margins of the flipped bits (the
/// log-likelihood of the flips under Gaussian noise on the coefficients), ties
/// by the subset's bit pattern: deterministic for given inputs. Always
/// exactly `probes` distinct keys when `probes − 1 ≤ available_probes(k)`
/// (which `Params::validate` enforces).
pub fn probe_keys(
    hash: &PdqHash,
    margins: &[f32; 256],
    table: u16,
    positions: &[u8],
    probes: usize,
) -> Vec<SubKey> {
    let exact = sub_key(hash, table, positions);
    let mut out = Vec::with_capacity(probes);
    out.push(exact);
    if probes <= 1 {
        return out;
    }
    let k = positions.len();
    let margin = |j: usize| {
        let m = margins[usize::from(positions[j])];
        if m.is_finite() { m.abs() } else { f32::MAX }
    };
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| margin(a).total_cmp(&margin(b)).then(a.cmp(&b)));
    let c = k.min(PROBE_CANDIDATE_BITS);
    let mut sets: Vec<(f64, u32)> = (1u32..(1 << c))
        .filter(|s| s.count_ones() as usize <= MAX_PROBE_FLIPS)
        .map(|s| {
            let score = (0..c)
                .filter(|i| s >> i & 1 == 1)
                .map(|i| f64::from(margin(order[i])).powi(2))
                .sum::<f64>();
            (score, s)
        })
        .collect();
    sets.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (_, s) in sets.into_iter().take(probes - 1) {
        let mut bits = exact.bits;
        for i in (0..c).filter(|i| s >> i & 1 == 1) {
            // Position j is bit (k − 1 − j) of the packed sub-key.
            bits ^= 1u64 << (k - 1 - order[i]);
        }
        out.push(SubKey { table, bits });
    }
    out
}

/// The probability that one table's sampled bits all agree for two hashes at
/// Hamming distance `d` (random positions): C(256−d, k) / C(256, k).
pub fn table_hit_probability(d: u32, k: u32) -> f64 {
    let mut p = 1.0;
    for i in 0..k {
        let num = 256.0 - f64::from(d) - f64::from(i);
        if num <= 0.0 {
            return 0.0;
        }
        p *= num / (256.0 - f64::from(i));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_flip_the_least_confident_bits_first() {
        let hash = PdqHash::from_bytes([0b1010_1010; 32]);
        let positions: Vec<u8> = (0..8).map(|i| i * 3).collect(); // bits 0, 3, …, 21
        let mut margins = [100.0f32; 256];
        margins[9] = 1.0; // position index 3
        margins[18] = 2.0; // position index 6
        margins[0] = 3.0; // position index 0
        let exact = sub_key(&hash, 4, &positions);
        let keys = probe_keys(&hash, &margins, 4, &positions, 5);
        let flip = |js: &[usize]| SubKey {
            table: 4,
            bits: js.iter().fold(exact.bits, |b, &j| b ^ 1 << (7 - j)),
        };
        // Scores: {3}=1, {6}=4, {0}=9, {3,6}=5 → order {3}, {6}, {3,6}, {0}.
        assert_eq!(
            keys,
            vec![exact, flip(&[3]), flip(&[6]), flip(&[3, 6]), flip(&[0])]
        );
        // Independently: the probe {3, 6} is the sub-key of the hash with
        // PDQ bits 9 and 18 flipped.
        let flip_bit = |h: PdqHash, p: usize| -> PdqHash {
            for byte in 0..32 {
                for b in 0..8 {
                    let mut x = *h.as_bytes();
                    x[byte] ^= 1 << b;
                    let g = PdqHash::from_bytes(x);
                    if g.bit(p) != h.bit(p) {
                        return g;
                    }
                }
            }
            unreachable!()
        };
        let edited = flip_bit(flip_bit(hash, 9), 18);
        assert_eq!(sub_key(&edited, 4, &positions), keys[3]);
        assert_eq!(probe_keys(&hash, &margins, 4, &positions, 1), vec![exact]);
        let mut all = probe_keys(&hash, &margins, 4, &positions, 1 + available_probes(8));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!((n, all.len()), (1 + 92, 1 + 92));
        assert_eq!(available_probes(32), 10 + 45 + 120);
    }

    #[test]
    fn positions_are_deterministic_distinct_and_disjoint_when_they_fit() {
        let seed = [7u8; 32];
        let a = positions(&seed, 8, 32);
        assert_eq!(a, positions(&seed, 8, 32));
        let mut all: Vec<u8> = a.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 256);
        let b = positions(&seed, 12, 32);
        for t in &b {
            let mut s = t.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 32);
        }
        assert_ne!(positions(&[8u8; 32], 8, 32), a);
    }
}
