//! Near-duplicate hashes of ad text.
//!
//! The text is [folded](crate::normalize) and cut into *shingles*: character
//! n-grams of the folded words (digit-only tokens — prices, phone numbers —
//! left out, since re-posts change them), or word n-grams. Each shingle is
//! hashed to 64 bits (the first 8 bytes of SHA-256, so every implementation
//! and version agrees). Three schemes are built on that set (the choice is
//! made by measurement in docs/SIGNALS.md):
//!
//! - [`MinHash`]: 256 min-wise hashes, one per permutation
//!   `h_k(x) = a_k·x + b_k mod (2^61 − 1)` with `a_k, b_k` from SHA-256 of
//!   `bulwark-minhash-v1 ‖ k`. Two sets collide at slot `k` with probability
//!   equal to their Jaccard similarity `J`.
//!   - [`TextHash`] keeps one bit (the lowest) of each of the 256 minima: a
//!     256-bit code whose bits agree with probability `(1 + J) / 2`, so the
//!     Hamming distance estimates `J = 1 − 2·d/256` and the code goes through
//!     the same exact Hamming index and bit-sampling LSH tables as PDQ
//!     (b-bit minwise hashing, Li & König, WWW 2010). **This is the bank
//!     signal `text_minhash`.**
//! - [`simhash`]: Charikar's SimHash over the same shingles, 256 bits.
//! - TLSH (Trend Micro's locality-sensitive hash, `tlsh2` crate) over the
//!   folded text, measured for comparison only: it needs 50 bytes of input and
//!   its distance has no index, so every query is a scan.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::normalize::Folded;

/// How the folded text is cut into shingles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shingles {
    /// Character n-grams over the word tokens joined by one space.
    Chars(usize),
    /// n-grams of word tokens.
    Words(usize),
}

/// The shingling the bank signal uses (chosen by measurement, docs/SIGNALS.md).
pub const DEFAULT_SHINGLES: Shingles = Shingles::Chars(5);

fn h64(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The sorted, distinct 64-bit hashes of the shingles of `folded`. Empty when
/// the text has no word tokens.
pub fn shingle_hashes(folded: &Folded, shingles: Shingles) -> Vec<u64> {
    let words: Vec<&str> = folded.word_tokens().collect();
    shingle_words(&words, shingles)
}

/// The sorted, distinct 64-bit hashes of the shingles of a word sequence.
pub fn shingle_words(words: &[&str], shingles: Shingles) -> Vec<u64> {
    let mut out = Vec::new();
    match shingles {
        Shingles::Words(n) => {
            let n = n.max(1);
            if words.len() <= n {
                if !words.is_empty() {
                    out.push(h64(words.join(" ").as_bytes()));
                }
            } else {
                for w in words.windows(n) {
                    out.push(h64(w.join(" ").as_bytes()));
                }
            }
        }
        Shingles::Chars(n) => {
            let n = n.max(1);
            let joined: Vec<char> = words.join(" ").chars().collect();
            if joined.is_empty() {
            } else if joined.len() <= n {
                out.push(h64(joined.iter().collect::<String>().as_bytes()));
            } else {
                let mut buf = String::new();
                for w in joined.windows(n) {
                    buf.clear();
                    buf.extend(w);
                    out.push(h64(buf.as_bytes()));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

const P61: u64 = (1 << 61) - 1;

fn mulmod(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) % P61 as u128) as u64
}

/// Number of min-wise hashes.
pub const MINHASH_K: usize = 256;

fn permutations() -> &'static [(u64, u64); MINHASH_K] {
    static P: std::sync::OnceLock<[(u64, u64); MINHASH_K]> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut p = [(0u64, 0u64); MINHASH_K];
        for (k, slot) in p.iter_mut().enumerate() {
            let d = Sha256::new()
                .chain_update(b"bulwark-minhash-v1")
                .chain_update((k as u32).to_be_bytes())
                .finalize();
            let a = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) % P61;
            let b =
                u64::from_le_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]) % P61;
            *slot = (a.max(1), b);
        }
        p
    })
}

/// The 256 min-wise hashes of a shingle set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinHash(pub Vec<u64>);

impl MinHash {
    /// MinHash of a set of shingle hashes; `None` for an empty set.
    pub fn of(hashes: &[u64]) -> Option<MinHash> {
        if hashes.is_empty() {
            return None;
        }
        let perms = permutations();
        let mut mins = vec![u64::MAX; MINHASH_K];
        for &x in hashes {
            let x = x % P61;
            for (m, &(a, b)) in mins.iter_mut().zip(perms.iter()) {
                let v = (mulmod(a, x) + b) % P61;
                if v < *m {
                    *m = v;
                }
            }
        }
        Some(MinHash(mins))
    }

    /// The fraction of equal slots: an unbiased estimate of Jaccard similarity.
    pub fn similarity(&self, other: &MinHash) -> f64 {
        let eq = self.0.iter().zip(&other.0).filter(|(a, b)| a == b).count();
        eq as f64 / self.0.len() as f64
    }

    /// The 1-bit-per-slot code ([`TextHash`]).
    pub fn one_bit(&self) -> TextHash {
        let mut out = [0u8; 32];
        for (k, m) in self.0.iter().enumerate() {
            if m & 1 == 1 {
                out[k / 8] |= 1 << (k % 8);
            }
        }
        TextHash(out)
    }
}

/// The ad text hash: 1-bit MinHash over 256 permutations of the folded
/// text's shingles; compared by Hamming distance (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextHash(pub [u8; 32]);

/// The default match radius for [`TextHash`] (bits of 256), chosen by
/// measurement (docs/SIGNALS.md): about Jaccard ≥ 0.53.
pub const TEXT_HASH_RADIUS: u32 = 60;

impl TextHash {
    /// Hashes a text with the default shingling; `None` when the text has no
    /// words (only numbers, emoji or punctuation).
    pub fn of_text(text: &str) -> Option<TextHash> {
        let folded = crate::normalize::fold(text);
        MinHash::of(&shingle_hashes(&folded, DEFAULT_SHINGLES)).map(|m| m.one_bit())
    }

    /// Hamming distance.
    pub fn distance(&self, other: &TextHash) -> u32 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// The Jaccard similarity this distance estimates, `1 − 2d/256`, clamped to 0.
    pub fn jaccard_estimate(&self, other: &TextHash) -> f64 {
        (1.0 - 2.0 * self.distance(other) as f64 / 256.0).max(0.0)
    }

    /// The raw 32 bytes.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Display for TextHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for TextHash {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(crate::Error::InvalidInput(format!(
                "a text hash is 64 hex digits, got {:?}",
                s.chars().take(80).collect::<String>()
            )));
        }
        Ok(TextHash(out))
    }
}

/// Charikar's SimHash, 256 bits: bit `i` is set when more shingles have bit
/// `i` of SHA-256(shingle hash) set than unset. `None` for an empty set.
pub fn simhash(hashes: &[u64]) -> Option<TextHash> {
    if hashes.is_empty() {
        return None;
    }
    let mut counts = [0i32; 256];
    for &x in hashes {
        let d = Sha256::digest(x.to_le_bytes());
        for (i, c) in counts.iter_mut().enumerate() {
            if d[i / 8] >> (i % 8) & 1 == 1 {
                *c += 1;
            } else {
                *c -= 1;
            }
        }
    }
    let mut out = [0u8; 32];
    for (i, c) in counts.iter().enumerate() {
        if *c > 0 {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    Some(TextHash(out))
}

/// TLSH (128 buckets, 1-byte checksum) of the folded word tokens, and the
/// distance between two; `None` under TLSH's 50-byte minimum or for
/// too-uniform input. For the comparison in the evaluation only.
pub fn tlsh(folded: &Folded) -> Option<tlsh2::TlshDefault> {
    let words: Vec<&str> = folded.word_tokens().collect();
    tlsh2::TlshDefaultBuilder::build_from(words.join(" ").as_bytes())
}

/// Exact Jaccard similarity of two sorted, distinct hash sets (the truth the
/// estimators are checked against).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::fold;
    use proptest::prelude::*;

    #[test]
    fn a_repost_with_a_new_price_and_phone_stays_close() {
        let a = "Two tabby kittens looking for a loving home. Vaccinated, litter trained. \
                 Price 120 EUR. Call 555-0101.";
        let b = "Two tabby k1ttens looking for a loving home 🐱 Vaccinated, litter trained. \
                 Price 90 EUR!! Call 555-0177.";
        let c = "Family car for sale: 2012 hatchback, low mileage, new tyres, one owner.";
        let (ha, hb, hc) = (
            TextHash::of_text(a).unwrap(),
            TextHash::of_text(b).unwrap(),
            TextHash::of_text(c).unwrap(),
        );
        assert!(ha.distance(&hb) <= 20, "{}", ha.distance(&hb));
        assert!(ha.distance(&hc) > TEXT_HASH_RADIUS, "{}", ha.distance(&hc));
        assert!(TextHash::of_text("120 555 🐱 !!").is_none());
    }

    #[test]
    fn hex_round_trip_and_bad_input() {
        let h = TextHash::of_text("a sofa in good condition").unwrap();
        assert_eq!(h.to_string().parse::<TextHash>().unwrap(), h);
        assert!("abc".parse::<TextHash>().is_err());
        assert!("zz".repeat(32).parse::<TextHash>().is_err());
    }

    #[test]
    fn identical_sets_give_identical_hashes_and_disjoint_sets_estimate_near_zero() {
        let x: Vec<u64> = (0..200).map(|i| h64(&[i as u8, 1])).collect();
        let mut x = x;
        x.sort_unstable();
        let y: Vec<u64> = {
            let mut y: Vec<u64> = (0..200).map(|i| h64(&[i as u8, 2])).collect();
            y.sort_unstable();
            y
        };
        let (mx, my) = (MinHash::of(&x).unwrap(), MinHash::of(&y).unwrap());
        assert_eq!(mx.similarity(&mx), 1.0);
        assert!(mx.similarity(&my) < 0.05);
    }

    proptest! {
        // The MinHash estimate is within 4.5 standard deviations of the true
        // Jaccard similarity (sd = sqrt(J(1−J)/256) ≤ 1/32).
        #[test]
        fn minhash_estimates_jaccard(n_common in 1usize..200, n_a in 0usize..200, n_b in 0usize..200, salt in any::<u32>()) {
            let mk = |tag: u8, n: usize| -> Vec<u64> {
                (0..n).map(|i| h64(&[&salt.to_le_bytes()[..], &[tag], &(i as u32).to_le_bytes()].concat())).collect()
            };
            let common = mk(0, n_common);
            let mut a = [common.clone(), mk(1, n_a)].concat();
            let mut b = [common, mk(2, n_b)].concat();
            a.sort_unstable(); a.dedup(); b.sort_unstable(); b.dedup();
            let j = jaccard(&a, &b);
            let est = MinHash::of(&a).unwrap().similarity(&MinHash::of(&b).unwrap());
            prop_assert!((est - j).abs() <= 4.5 / 32.0 + 1e-9, "J={j} est={est}");
        }
    }

    #[test]
    fn word_and_char_shingles() {
        let f = fold("one two three four");
        assert_eq!(shingle_hashes(&f, Shingles::Words(2)).len(), 3);
        assert_eq!(shingle_hashes(&f, Shingles::Words(9)).len(), 1);
        assert_eq!(shingle_hashes(&f, Shingles::Chars(18)).len(), 1);
        assert!(shingle_hashes(&fold("123 456"), Shingles::Chars(5)).is_empty());
    }
}
