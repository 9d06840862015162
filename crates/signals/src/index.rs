//! An index of banked [`TextHash`]es: which banked ads are within a Hamming
//! radius of a query, without comparing the query with every one.
//!
//! The text hash is a 1-bit MinHash, so two hashes agree at each bit with
//! probability `(1 + J) / 2` independently of the other bits: *bit-sampling
//! LSH* (Indyk & Motwani 1998) fits it exactly. Each of `tables` tables keys
//! every banked hash by `bits` bit positions drawn at random (fixed seed) from
//! the 256; a query looks up the bucket of its own key in each table and, with
//! `probe = 1`, the `bits` buckets whose key differs from it in one bit
//! (multi-probe LSH, Lv et al. 2007). Every candidate is then compared in
//! full, so the index never reports a hash beyond the radius and never
//! reports a wrong distance: what it can do is *miss* one, with the
//! probability [`IndexParams::miss_probability`] gives for its distance.
//!
//! For a banked hash at distance `d` from the query, a table finds it when at
//! most `probe` of its `bits` sampled positions fall among the `d` differing
//! ones: a hypergeometric probability `p(d)`; the tables sample independently,
//! so the index misses it with probability `(1 − p(d))^tables`. Distinct ads
//! sit near distance 128, where `p` is about `(1 + bits·probe) / 2^bits`: that
//! is the expected share of the bank each table hands back as candidates.
//! The parameters are chosen by measurement (docs/SIGNALS.md, "Text-hash
//! index"; `examples/text_index_bench.rs` compares with a linear scan in the
//! same run).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::TextHash;

/// The shape of a [`TextHashIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexParams {
    /// Sampled bit positions per table (1..=24).
    pub bits: u32,
    /// Number of tables.
    pub tables: u32,
    /// 0: the query's own bucket per table; 1: also the buckets one bit away.
    pub probe: u32,
}

impl IndexParams {
    /// The shape the service uses (chosen by measurement, docs/SIGNALS.md):
    /// 19 bits, 48 tables, one-bit multi-probe. A banked hash 60 bits away
    /// (the default radius) is missed with probability 0.16, 50 bits away
    /// 0.016, 45 bits away 0.0023, 40 bits away 1.4e-4; about 1,000
    /// unrelated candidates are compared per query at 10^6 banked hashes.
    pub const DEFAULT: IndexParams = IndexParams {
        bits: 19,
        tables: 48,
        probe: 1,
    };

    /// The probability that one table finds a banked hash `d` bits away:
    /// at most `probe` of its `bits` sampled positions (drawn without
    /// replacement from 256) are among the `d` differing ones.
    pub fn table_probability(&self, d: u32) -> f64 {
        let (n, k) = (256u32, self.bits);
        let d = d.min(n);
        (0..=self.probe.min(k))
            .map(|x| hypergeometric(n, d, k, x))
            .sum()
    }

    /// The probability that the index misses a banked hash `d` bits away.
    pub fn miss_probability(&self, d: u32) -> f64 {
        (1.0 - self.table_probability(d)).powi(self.tables as i32)
    }

    /// Buckets looked up per query.
    pub fn probes_per_query(&self) -> u32 {
        self.tables * (1 + if self.probe >= 1 { self.bits } else { 0 })
    }
}

/// The probability that a voucher-style m-of-L bit-sampling match opens for
/// two hashes `d` bits apart: each of `tables` tables samples `bits` of the
/// 256 positions (independently; exact equality, no probing) and at least
/// `min_tables` must agree — the rule of the private-matching vouchers
/// (`bulwark-psi` `Params`), here for the text hash's distances.
pub fn voucher_open_probability(d: u32, bits: u32, tables: u32, min_tables: u32) -> f64 {
    let p = IndexParams {
        bits,
        tables: 1,
        probe: 0,
    }
    .table_probability(d);
    if p >= 1.0 || min_tables == 0 {
        return 1.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    // P(Binomial(tables, p) ≥ min_tables).
    (min_tables..=tables)
        .map(|j| {
            (ln_choose(tables, j) + f64::from(j) * p.ln() + f64::from(tables - j) * (1.0 - p).ln())
                .exp()
        })
        .sum::<f64>()
        .min(1.0)
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams::DEFAULT
    }
}

fn ln_choose(n: u32, k: u32) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    let k = k.min(n - k);
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// P(X = x) for X the number of marked items among `k` drawn without
/// replacement from `n` of which `m` are marked.
fn hypergeometric(n: u32, m: u32, k: u32, x: u32) -> f64 {
    if x > m || x > k || k - x > n - m {
        return 0.0;
    }
    (ln_choose(m, x) + ln_choose(n - m, k - x) - ln_choose(n, k)).exp()
}

/// A text hash as four words (fast Hamming distance).
type Words = [u64; 4];

fn words(h: &TextHash) -> Words {
    let b = &h.0;
    std::array::from_fn(|i| {
        u64::from_le_bytes([
            b[8 * i],
            b[8 * i + 1],
            b[8 * i + 2],
            b[8 * i + 3],
            b[8 * i + 4],
            b[8 * i + 5],
            b[8 * i + 6],
            b[8 * i + 7],
        ])
    })
}

fn unwords(w: &Words) -> TextHash {
    let mut b = [0u8; 32];
    for (i, x) in w.iter().enumerate() {
        b[8 * i..8 * i + 8].copy_from_slice(&x.to_le_bytes());
    }
    TextHash(b)
}

fn dist(a: &Words, b: &Words) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

/// Fewest entries put into tables; below, searches scan.
pub const MIN_TABLED: usize = 4096;

/// One table: entries grouped by key (counting sort), `offsets[k]..offsets[k + 1]`.
#[derive(Debug, Clone, Default)]
struct Table {
    offsets: Vec<u32>,
    entries: Vec<u32>,
}

/// Banked text hashes, each with a caller's id, searchable by Hamming radius.
///
/// Entries added since the last [`rebuild`](Self::rebuild) sit in a tail
/// that searches scan linearly; [`insert`](Self::insert) rebuilds the tables
/// when the tail grows past an eighth of the indexed entries (at least 4,096),
/// so inserts cost amortised `O(tables)` each.
#[derive(Debug, Clone)]
pub struct TextHashIndex {
    params: IndexParams,
    /// Per table, its sampled bit positions.
    positions: Vec<Vec<u8>>,
    hashes: Vec<Words>,
    ids: Vec<u64>,
    /// Entries `0..indexed` are in the tables; the rest are the tail.
    indexed: usize,
    tables: Vec<Table>,
}

impl TextHashIndex {
    /// An empty index of the given shape.
    ///
    /// # Panics
    /// When `bits` is not in 1..=24 or `tables` is 0.
    pub fn new(params: IndexParams) -> TextHashIndex {
        assert!((1..=24).contains(&params.bits) && params.tables > 0);
        // Fixed seed: the same positions in every process, so an index can
        // be rebuilt or compared anywhere.
        let mut rng = ChaCha8Rng::seed_from_u64(0x6275_6c77_6172_6b31);
        let positions = (0..params.tables)
            .map(|_| {
                let mut all: Vec<u8> = (0..=255).collect();
                all.shuffle(&mut rng);
                all.truncate(params.bits as usize);
                all
            })
            .collect();
        TextHashIndex {
            params,
            positions,
            hashes: Vec::new(),
            ids: Vec::new(),
            indexed: 0,
            tables: vec![Table::default(); params.tables as usize],
        }
    }

    /// An index of the given shape holding `entries`, built at once.
    pub fn build(
        params: IndexParams,
        entries: impl IntoIterator<Item = (TextHash, u64)>,
    ) -> TextHashIndex {
        let mut idx = TextHashIndex::new(params);
        for (h, id) in entries {
            idx.hashes.push(words(&h));
            idx.ids.push(id);
        }
        idx.rebuild();
        idx
    }

    /// The index's shape.
    pub fn params(&self) -> IndexParams {
        self.params
    }

    /// Number of banked hashes.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether nothing is banked.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn key(&self, table: usize, w: &Words) -> usize {
        let mut k = 0usize;
        for (j, &p) in self.positions[table].iter().enumerate() {
            k |= ((w[usize::from(p >> 6)] >> (p & 63)) as usize & 1) << j;
        }
        k
    }

    /// Adds a hash with the caller's `id` (ids need not be distinct).
    ///
    /// # Panics
    /// Beyond 2^32 − 1 entries.
    pub fn insert(&mut self, hash: &TextHash, id: u64) {
        assert!(
            self.hashes.len() < u32::MAX as usize,
            "at most 2^32 − 1 entries"
        );
        self.hashes.push(words(hash));
        self.ids.push(id);
        if self.hashes.len() - self.indexed > (self.indexed / 8).max(MIN_TABLED) {
            self.rebuild();
        }
    }

    /// Puts every entry into the tables (the tail becomes empty) — unless
    /// there are at most [`MIN_TABLED`] entries: those stay in the tail (a
    /// scan of 4,096 hashes is faster than allocating the tables' offsets,
    /// 2^bits × 4 bytes each).
    pub fn rebuild(&mut self) {
        let n = self.hashes.len();
        if n <= MIN_TABLED {
            self.tables = vec![Table::default(); self.params.tables as usize];
            self.indexed = 0;
            return;
        }
        let buckets = 1usize << self.params.bits;
        let mut keys = vec![0u32; n];
        for t in 0..self.tables.len() {
            let mut offsets = vec![0u32; buckets + 1];
            for (e, w) in self.hashes.iter().enumerate() {
                let k = self.key(t, w);
                keys[e] = k as u32;
                offsets[k + 1] += 1;
            }
            for k in 0..buckets {
                offsets[k + 1] += offsets[k];
            }
            let mut fill = offsets.clone();
            let mut entries = vec![0u32; n];
            for (e, &k) in keys.iter().enumerate() {
                entries[fill[k as usize] as usize] = e as u32;
                fill[k as usize] += 1;
            }
            self.tables[t] = Table { offsets, entries };
        }
        self.indexed = n;
    }

    /// The entries within `radius` of `query`: `(id, distance)`, each entry
    /// once, nearest first (then by id). Distances are exact; an entry is
    /// missed with [`IndexParams::miss_probability`] of its distance.
    pub fn search(&self, query: &TextHash, radius: u32) -> Vec<(u64, u32)> {
        let (hits, _) = self.search_counted(query, radius);
        hits
    }

    /// [`search`](Self::search), also returning how many candidates were
    /// compared in full (with repeats: an entry found by several tables is
    /// compared each time, which costs less than remembering it).
    pub fn search_counted(&self, query: &TextHash, radius: u32) -> (Vec<(u64, u32)>, usize) {
        let w = words(query);
        let mut found: Vec<u32> = Vec::new();
        let mut compared = 0usize;
        if self.indexed > 0 {
            for (t, table) in self.tables.iter().enumerate() {
                let k = self.key(t, &w);
                let probes = if self.params.probe >= 1 {
                    self.params.bits as usize
                } else {
                    0
                };
                for j in 0..=probes {
                    let kk = if j == 0 { k } else { k ^ (1 << (j - 1)) };
                    let (a, b) = (table.offsets[kk] as usize, table.offsets[kk + 1] as usize);
                    compared += b - a;
                    for &e in &table.entries[a..b] {
                        if dist(&w, &self.hashes[e as usize]) <= radius {
                            found.push(e);
                        }
                    }
                }
            }
        }
        for e in self.indexed..self.hashes.len() {
            compared += 1;
            if dist(&w, &self.hashes[e]) <= radius {
                found.push(e as u32);
            }
        }
        found.sort_unstable();
        found.dedup();
        (self.finish(&w, found), compared)
    }

    fn finish(&self, w: &Words, found: Vec<u32>) -> Vec<(u64, u32)> {
        let mut out: Vec<(u64, u32)> = found
            .into_iter()
            .map(|e| (self.ids[e as usize], dist(w, &self.hashes[e as usize])))
            .collect();
        out.sort_unstable_by_key(|&(id, d)| (d, id));
        out
    }

    /// The exact answer by comparing with every entry (the reference the
    /// index is tested and benchmarked against), in the same order.
    pub fn search_linear(&self, query: &TextHash, radius: u32) -> Vec<(u64, u32)> {
        let w = words(query);
        let found = (0..self.hashes.len() as u32)
            .filter(|&e| dist(&w, &self.hashes[e as usize]) <= radius)
            .collect();
        self.finish(&w, found)
    }

    /// Every banked `(hash, id)`, in insertion order.
    pub fn entries(&self) -> impl Iterator<Item = (TextHash, u64)> + '_ {
        self.hashes
            .iter()
            .map(unwords)
            .zip(self.ids.iter().copied())
    }

    /// Keeps only the entries whose id `keep` accepts, and rebuilds the
    /// tables (a full rebuild: seconds at 10^6 entries; callers that remove
    /// often mark entries dead and call this rarely).
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let mut j = 0;
        for i in 0..self.hashes.len() {
            if keep(self.ids[i]) {
                self.hashes[j] = self.hashes[i];
                self.ids[j] = self.ids[i];
                j += 1;
            }
        }
        self.hashes.truncate(j);
        self.ids.truncate(j);
        self.rebuild();
    }

    /// Heap bytes: hashes, ids and tables.
    pub fn memory_bytes(&self) -> usize {
        let tables: usize = self
            .tables
            .iter()
            .map(|t| (t.offsets.capacity() + t.entries.capacity()) * 4)
            .sum();
        self.hashes.capacity() * 32 + self.ids.capacity() * 8 + tables
    }
}

impl Default for TextHashIndex {
    fn default() -> Self {
        TextHashIndex::new(IndexParams::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `retain` keeps exactly the accepted entries, and searches after it
    /// agree with the linear scan of what is left; `entries` round-trips.
    #[test]
    fn retain_keeps_what_it_is_told_and_still_agrees_with_the_scan() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let all: Vec<(TextHash, u64)> = (0..(MIN_TABLED as u64 * 2))
            .map(|i| {
                let mut b = [0u8; 32];
                rng.fill(&mut b);
                (TextHash(b), i)
            })
            .collect();
        let mut idx = TextHashIndex::build(IndexParams::DEFAULT, all.iter().copied());
        assert_eq!(idx.entries().collect::<Vec<_>>(), all);
        idx.retain(|id| id % 3 != 0);
        let kept: Vec<(TextHash, u64)> =
            all.iter().copied().filter(|(_, id)| id % 3 != 0).collect();
        assert_eq!(idx.entries().collect::<Vec<_>>(), kept);
        for (h, id) in all.iter().step_by(97) {
            let hits = idx.search(h, 0);
            assert_eq!(hits.iter().any(|&(i, _)| i == *id), id % 3 != 0, "id {id}");
            let r = crate::TEXT_HASH_RADIUS;
            assert_eq!(idx.search(h, r), idx.search_linear(h, r));
        }
    }
    use rand::Rng;

    fn random_hash(rng: &mut ChaCha8Rng) -> TextHash {
        let mut b = [0u8; 32];
        rng.fill(&mut b);
        TextHash(b)
    }

    /// `h` with `d` distinct random bits flipped.
    fn flip(h: &TextHash, d: u32, rng: &mut ChaCha8Rng) -> TextHash {
        let mut pos: Vec<u32> = (0..256).collect();
        pos.shuffle(rng);
        let mut out = *h;
        for &p in &pos[..d as usize] {
            out.0[(p / 8) as usize] ^= 1 << (p % 8);
        }
        out
    }

    #[test]
    fn voucher_open_probability_is_a_binomial_tail() {
        let p = |d| {
            IndexParams {
                bits: 32,
                tables: 1,
                probe: 0,
            }
            .table_probability(d)
        };
        for d in [0, 10, 31, 60, 128] {
            let one = voucher_open_probability(d, 32, 6, 1);
            assert!((one - (1.0 - (1.0 - p(d)).powi(6))).abs() < 1e-12, "d={d}");
            let all = voucher_open_probability(d, 32, 6, 6);
            assert!((all - p(d).powi(6)).abs() < 1e-12, "d={d}");
            let two = voucher_open_probability(d, 32, 6, 2);
            let q = p(d);
            let want = 1.0 - (1.0 - q).powi(6) - 6.0 * q * (1.0 - q).powi(5);
            assert!((two - want).abs() < 1e-9, "d={d}: {two} vs {want}");
        }
        assert_eq!(voucher_open_probability(0, 32, 6, 2), 1.0);
        // C(256 − d, k) / C(256, k) by hand for d = 1, k = 32: 224/256.
        assert!((p(1) - 224.0 / 256.0).abs() < 1e-12);
    }

    #[test]
    fn hypergeometric_sums_to_one_and_matches_a_hand_value() {
        for d in [0, 1, 30, 60, 128, 256] {
            let s: f64 = (0..=16).map(|x| hypergeometric(256, d, 16, x)).sum();
            assert!((s - 1.0).abs() < 1e-9, "d={d} sum={s}");
        }
        // P(no sampled bit among d = 1 differing) = 240/256.
        let p = IndexParams {
            bits: 16,
            tables: 1,
            probe: 0,
        };
        assert!((p.table_probability(1) - 240.0 / 256.0).abs() < 1e-12);
        assert_eq!(p.table_probability(0), 1.0);
        // With one-bit probing a single differing bit is always found.
        let p1 = IndexParams { probe: 1, ..p };
        assert!((p1.table_probability(1) - 1.0).abs() < 1e-12);
    }

    /// Against brute force: 30,000 random banked hashes and, for each
    /// distance 0..=70 in steps of 5, 200 planted neighbours of queries.
    /// The index never reports anything the linear scan does not (same
    /// distances, same order), and finds each distance's planted neighbours
    /// as often as `miss_probability` predicts (within 5 standard
    /// deviations).
    #[test]
    fn agrees_with_brute_force_and_misses_as_predicted() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let params = IndexParams::DEFAULT;
        let mut idx = TextHashIndex::new(params);
        for i in 0..30_000u64 {
            idx.insert(&random_hash(&mut rng), i);
        }
        let radius = 60;
        let mut next_id = 1_000_000u64;
        for d in (0..=70).step_by(5) {
            let trials = 200;
            let mut found = 0;
            for _ in 0..trials {
                let q = random_hash(&mut rng);
                let planted = flip(&q, d, &mut rng);
                idx.insert(&planted, next_id);
                let got = idx.search(&q, radius);
                let truth = idx.search_linear(&q, radius);
                // A subset of the truth, with the truth's distances and order.
                let mut ti = truth.iter();
                for g in &got {
                    assert!(ti.any(|t| t == g), "d={d}: {g:?} not in {truth:?}");
                }
                if got.iter().any(|&(id, dd)| id == next_id && dd == d) {
                    found += 1;
                }
                if d > radius {
                    assert!(got.iter().all(|&(id, _)| id != next_id));
                }
                next_id += 1;
            }
            if d <= radius {
                let p = 1.0 - params.miss_probability(d);
                let sd = (trials as f64 * p * (1.0 - p)).sqrt();
                let expect = trials as f64 * p;
                assert!(
                    (found as f64) >= expect - 5.0 * sd - 1.0,
                    "d={d}: found {found}/{trials}, expected {expect:.1}"
                );
                if d <= 40 {
                    assert_eq!(found, trials, "d={d}");
                }
            }
        }
    }

    #[test]
    fn finds_a_reposted_ad_and_duplicate_ids() {
        let a = TextHash::of_text(
            "Two tabby kittens looking for a loving home. Vaccinated, litter trained. 120 EUR",
        )
        .unwrap();
        let b = TextHash::of_text(
            "Two tabby k1ttens looking for a loving home 🐱 Vaccinated, litter trained!! 90 EUR",
        )
        .unwrap();
        let c = TextHash::of_text("Family car for sale: 2012 hatchback, low mileage, new tyres")
            .unwrap();
        let mut idx = TextHashIndex::default();
        assert!(idx.is_empty());
        idx.insert(&a, 1);
        idx.insert(&a, 2);
        idx.insert(&c, 3);
        assert_eq!(idx.len(), 3);
        let d = a.distance(&b);
        assert_eq!(
            idx.search(&b, crate::TEXT_HASH_RADIUS),
            vec![(1, d), (2, d)]
        );
        assert_eq!(
            idx.search(&b, crate::TEXT_HASH_RADIUS),
            idx.search_linear(&b, 60)
        );
        assert!(idx.memory_bytes() > 0);
    }
}
