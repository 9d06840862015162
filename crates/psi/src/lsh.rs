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
