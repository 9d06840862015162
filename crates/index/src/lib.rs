//! Exact Hamming-radius search over 256-bit codes (PDQ hashes).
//!
//! [`Index`] is an immutable multi-index-hashing (MIH) index over flat arrays:
//! each code is cut into `m` substrings; by the pigeonhole principle a code
//! within distance `r` of the query agrees with it to within `⌊r/m⌋` bits on at
//! least one substring, so probing every key within that distance in each
//! substring's table finds every true match, and a full 256-bit popcount
//! verifies each candidate. Nothing is approximate: [`Index::search`] returns
//! every code within the radius. Loose radii and small indexes fall back to a
//! brute-force scan, chosen per query by a cost model.
//!
//! [`LiveIndex`] wraps an `Index` for a server: inserts land in an append
//! segment that is scanned (matchable at once), removals are tombstones, and
//! a background merge folds both into a new base without blocking searches.
//!
//! The on-disk format is the in-memory layout, memory-mapped by
//! [`Index::open`] and validated (magic, version, sizes, CRC-32).
//!
//! ```
//! use bulwark_index::Index;
//! let mut a = [0u8; 32];
//! let b = [0xffu8; 32];
//! a[0] = 0b111; // 3 bits set
//! let ix = Index::build(&[(1, a), (2, b)]);
//! let hits = ix.search(&[0u8; 32], 3);
//! assert_eq!(hits.len(), 1);
//! assert_eq!((hits[0].id, hits[0].distance), (1, 3));
//! ```
#![deny(missing_docs)]

pub mod journal;
mod kernel;
mod live;

use std::path::Path;

use rayon::prelude::*;

pub use crate::kernel::kernel_name;
pub use crate::live::{APPEND_LIMIT, LiveIndex};

/// A 256-bit code (the 32 bytes of a PDQ hash).
pub type Code = [u8; 32];

/// A code within the searched radius: its id and its distance to the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Match {
    /// The id given with the code at build or insert time.
    pub id: u64,
    /// Hamming distance to the query (0..=256).
    pub distance: u32,
}

/// What went wrong loading or saving an index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the file failed.
    #[error("index file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a Bulwark index, or is damaged; says which check failed.
    #[error("not a valid Bulwark index: {0}")]
    Corrupt(String),
    /// The file was written by a newer, incompatible version.
    #[error("index format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
}

pub(crate) type Words = [u64; 4];

pub(crate) fn words(c: &Code) -> Words {
    std::array::from_fn(|i| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&c[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    })
}

fn bytes_of(w: &Words) -> Code {
    let mut c = [0u8; 32];
    for i in 0..4 {
        c[i * 8..i * 8 + 8].copy_from_slice(&w[i].to_le_bytes());
    }
    c
}

const MAGIC: &[u8; 8] = b"BULWKIDX";
const VERSION: u16 = 1;
const HEADER_WORDS: usize = 8;
/// Below this many codes an index is scanned, not hashed.
const MIN_MIH: usize = 4096;
/// Codes in a bucket this much larger than average go to the scan list.
const SKEW_FACTOR: usize = 64;

/// Where the arrays of an index live: built in memory, or memory-mapped.
enum Backing {
    Owned(Vec<u64>),
    Mapped(memmap2::Mmap),
}

impl Backing {
    fn words(&self) -> &[u64] {
        match self {
            Backing::Owned(v) => v,
            // Mapped files are page-aligned and their length was checked to be
            // a multiple of 8 in `open`, so the cast cannot fail.
            Backing::Mapped(m) => bytemuck::cast_slice(&m[..]),
        }
    }
}

/// Positions (in words) of each section, derived from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Layout {
    n: usize,
    n_scan: usize,
    bits: Vec<u8>,
    codes: usize,
    ids: usize,
    /// Per substring: (start of offsets, start of entries), in words.
    tables: Vec<(usize, usize)>,
    total: usize,
}

impl Layout {
    fn new(n: usize, n_scan: usize, bits: &[u8]) -> Layout {
        let codes = HEADER_WORDS;
        let ids = codes + 4 * n;
        let mut at = ids + n;
        let n_mih = n - n_scan;
        let mut tables = Vec::with_capacity(bits.len());
        for &b in bits {
            let offsets = at;
            at += ((1usize << b) + 1).div_ceil(2);
            let entries = at;
            at += n_mih.div_ceil(2);
            tables.push((offsets, entries));
        }
        Layout {
            n,
            n_scan,
            bits: bits.to_vec(),
            codes,
            ids,
            tables,
            total: at,
        }
    }
}

/// An immutable exact Hamming-radius index. See the crate docs.
pub struct Index {
    backing: Backing,
    layout: Layout,
    /// Bit offset of each substring within the 256-bit code.
    starts: Vec<u32>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("len", &self.len())
            .field("substring_bits", &self.layout.bits)
            .field("scan_list", &self.layout.n_scan)
            .finish()
    }
}

/// Statistics about an index, for `bulwark index info`.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    /// Number of codes.
    pub len: usize,
    /// Bits of each substring (empty: the index is scanned).
    pub substring_bits: Vec<u8>,
    /// Codes kept out of the hash tables (skewed buckets) and always scanned.
    pub scan_list: usize,
    /// Largest bucket in any substring table.
    pub max_bucket: usize,
    /// Mean size of non-empty buckets.
    pub mean_nonempty_bucket: f64,
    /// Bytes of the whole index (header, codes, ids, tables).
    pub bytes: usize,
}

/// Chooses the substring widths for `n` codes: about log2(n) bits each, so
/// each bucket holds about one code, covering all 256 bits.
fn choose_bits(n: usize) -> Vec<u8> {
    if n < MIN_MIH {
        return Vec::new();
    }
    let target = (n as f64).log2().ceil().clamp(16.0, 28.0);
    let m = (256.0 / target).ceil() as usize;
    // Spread 256 bits over m substrings as evenly as possible.
    (0..m)
        .map(|i| (256 / m + usize::from(i < 256 % m)) as u8)
        .collect()
}

fn starts_of(bits: &[u8]) -> Vec<u32> {
    let mut s = 0u32;
    bits.iter()
        .map(|&b| {
            let here = s;
            s += u32::from(b);
            here
        })
        .collect()
}

/// Extracts `bits` bits starting at bit `start` (bit i = bit i%64 of word i/64).
#[inline(always)]
pub(crate) fn substring(w: &Words, start: u32, bits: u8) -> u32 {
    let (wi, off) = ((start / 64) as usize, start % 64);
    let mut v = w[wi] >> off;
    if off + u32::from(bits) > 64 && wi + 1 < 4 {
        v |= w[wi + 1] << (64 - off);
    }
    (v & ((1u64 << bits) - 1)) as u32
}

impl Index {
    /// Builds an index over `(id, code)` entries, in parallel. Ids need not be
    /// unique; every entry is returned when it matches.
    pub fn build(entries: &[(u64, Code)]) -> Index {
        let n = entries.len();
        let bits = choose_bits(n);
        let starts = starts_of(&bits);
        let all: Vec<Words> = entries.par_iter().map(|(_, c)| words(c)).collect();
        // Keys per substring, and skew: codes in an oversized bucket of any
        // substring are kept out of every table and scanned instead (exact,
        // and a degenerate hash shared by thousands cannot blow up queries).
        let mut skewed = vec![false; n];
        let keys: Vec<Vec<u32>> = bits
            .par_iter()
            .zip(&starts)
            .map(|(&b, &s)| all.iter().map(|w| substring(w, s, b)).collect())
            .collect();
        for (k, &b) in keys.iter().zip(&bits) {
            let mut counts = vec![0u32; 1 << b];
            for &key in k {
                counts[key as usize] += 1;
            }
            let limit = SKEW_FACTOR * n.div_ceil(1 << b).max(4);
            for (i, &key) in k.iter().enumerate() {
                if counts[key as usize] as usize > limit {
                    skewed[i] = true;
                }
            }
        }
        // MIH entries first, then the scan list.
        let order: Vec<usize> = (0..n)
            .filter(|&i| !skewed[i])
            .chain((0..n).filter(|&i| skewed[i]))
            .collect();
        let n_scan = skewed.iter().filter(|&&s| s).count();
        let n_mih = n - n_scan;
        let layout = Layout::new(n, n_scan, &bits);
        let mut v = vec![0u64; layout.total];
        v[..HEADER_WORDS].copy_from_slice(&header(&layout, 0));
        {
            let (_, rest) = v.split_at_mut(layout.codes);
            let (codes, rest) = rest.split_at_mut(4 * n);
            let (ids, _) = rest.split_at_mut(n);
            codes
                .par_chunks_mut(4)
                .zip(ids.par_iter_mut())
                .zip(order.par_iter())
                .for_each(|((c, id), &src)| {
                    c.copy_from_slice(&all[src]);
                    *id = entries[src].0;
                });
        }
        // Counting sort of positions by key, per substring, in parallel.
        let tables: Vec<(Vec<u32>, Vec<u32>)> = keys
            .par_iter()
            .zip(&bits)
            .map(|(k, &b)| {
                let mut offsets = vec![0u32; (1 << b) + 1];
                for &src in &order[..n_mih] {
                    offsets[k[src] as usize + 1] += 1;
                }
                for i in 1..offsets.len() {
                    offsets[i] += offsets[i - 1];
                }
                let mut fill = offsets.clone();
                let mut ent = vec![0u32; n_mih];
                for (pos, &src) in order[..n_mih].iter().enumerate() {
                    let slot = &mut fill[k[src] as usize];
                    ent[*slot as usize] = pos as u32;
                    *slot += 1;
                }
                (offsets, ent)
            })
            .collect();
        for ((offsets, ent), &(o_at, e_at)) in tables.iter().zip(&layout.tables) {
            let o: &mut [u32] =
                bytemuck::cast_slice_mut(&mut v[o_at..o_at + offsets.len().div_ceil(2)]);
            o[..offsets.len()].copy_from_slice(offsets);
            let e: &mut [u32] =
                bytemuck::cast_slice_mut(&mut v[e_at..e_at + ent.len().div_ceil(2)]);
            e[..ent.len()].copy_from_slice(ent);
        }
        let crc = payload_crc(&v[HEADER_WORDS..]);
        v[..HEADER_WORDS].copy_from_slice(&header(&layout, crc));
        Index {
            backing: Backing::Owned(v),
            layout,
            starts,
        }
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.layout.n
    }

    /// True when the index holds no codes.
    pub fn is_empty(&self) -> bool {
        self.layout.n == 0
    }

    fn codes(&self) -> &[Words] {
        let w = self.backing.words();
        bytemuck::cast_slice(&w[self.layout.codes..self.layout.codes + 4 * self.layout.n])
    }

    fn ids(&self) -> &[u64] {
        &self.backing.words()[self.layout.ids..self.layout.ids + self.layout.n]
    }

    fn table(&self, i: usize) -> (&[u32], &[u32]) {
        let w = self.backing.words();
        let (o_at, e_at) = self.layout.tables[i];
        let b = self.layout.bits[i];
        let n_off = (1usize << b) + 1;
        let n_mih = self.layout.n - self.layout.n_scan;
        let o: &[u32] = bytemuck::cast_slice(&w[o_at..o_at + n_off.div_ceil(2)]);
        let e: &[u32] = bytemuck::cast_slice(&w[e_at..e_at + n_mih.div_ceil(2)]);
        (&o[..n_off], &e[..n_mih])
    }

    /// The code and id stored at a position (0..len), in storage order.
    pub fn entry(&self, pos: usize) -> (u64, Code) {
        (self.ids()[pos], bytes_of(&self.codes()[pos]))
    }

    /// Every code within `radius` of `query`, in storage order.
    pub fn search(&self, query: &Code, radius: u32) -> Vec<Match> {
        let mut pos = Vec::new();
        self.search_positions(&words(query), radius, &mut pos);
        self.to_matches(&words(query), &pos)
    }

    /// [`Index::search`] for several queries; queries answered by scanning are
    /// scanned together, one pass over the codes for the whole batch.
    pub fn search_batch(&self, queries: &[Code], radius: u32) -> Vec<Vec<Match>> {
        let qs: Vec<Words> = queries.iter().map(words).collect();
        let mut positions = vec![Vec::new(); qs.len()];
        if self.use_scan(radius) {
            kernel::scan_batch(self.codes(), 0, &qs, radius, &mut positions);
        } else {
            for (q, p) in qs.iter().zip(positions.iter_mut()) {
                self.search_positions(q, radius, p);
            }
        }
        qs.iter()
            .zip(&positions)
            .map(|(q, p)| self.to_matches(q, p))
            .collect()
    }

    /// Brute force over every code for a batch of queries (one pass over the
    /// codes): the reference the benchmarks measure recall against.
    pub fn scan_batch(&self, queries: &[Code], radius: u32) -> Vec<Vec<Match>> {
        let qs: Vec<Words> = queries.iter().map(words).collect();
        let mut positions = vec![Vec::new(); qs.len()];
        kernel::scan_batch(self.codes(), 0, &qs, radius, &mut positions);
        qs.iter()
            .zip(&positions)
            .map(|(q, p)| self.to_matches(q, p))
            .collect()
    }

    pub(crate) fn to_matches(&self, q: &Words, positions: &[u32]) -> Vec<Match> {
        let (codes, ids) = (self.codes(), self.ids());
        positions
            .iter()
            .map(|&p| Match {
                id: ids[p as usize],
                distance: kernel::distance(&codes[p as usize], q),
            })
            .collect()
    }

    /// Estimated cost of MIH probing versus a scan, in rough code-visits.
    fn use_scan(&self, radius: u32) -> bool {
        let bits = &self.layout.bits;
        if bits.is_empty() {
            return true;
        }
        let b = u32::from(*bits.iter().max().unwrap_or(&16));
        let probes: f64 = (0..bits.len())
            .filter_map(|i| flips_for(i, bits.len(), radius))
            .map(|f| (0..=f.min(b)).map(|k| binomial(b, k)).sum::<f64>())
            .sum();
        let n_mih = (self.layout.n - self.layout.n_scan) as f64;
        let candidates = probes * n_mih / f64::from(1u32 << b.min(31));
        // A probe is a random access; a scanned code is a sequential popcount.
        let mih_cost = probes * 4.0 + candidates * 4.0;
        let scan_cost = n_mih;
        mih_cost >= scan_cost
    }

    /// Positions of every code within `radius` of `q` (sorted, unique).
    pub(crate) fn search_positions(&self, q: &Words, radius: u32, out: &mut Vec<u32>) {
        let n_mih = self.layout.n - self.layout.n_scan;
        let codes = self.codes();
        if self.use_scan(radius) {
            kernel::scan(codes, 0, q, radius, out);
            return;
        }
        let before = out.len();
        let m = self.layout.bits.len();
        for (i, (&b, &s)) in self.layout.bits.iter().zip(&self.starts).enumerate() {
            let Some(flips) = flips_for(i, m, radius) else {
                continue;
            };
            let (offsets, entries) = self.table(i);
            let key = substring(q, s, b);
            kernel::probe(codes, offsets, entries, key, b, flips, q, radius, out);
        }
        // A code can be found through several substrings.
        out[before..].sort_unstable();
        let mut w = before;
        for r in before..out.len() {
            if r == before || out[r] != out[w - 1] {
                out[w] = out[r];
                w += 1;
            }
        }
        out.truncate(w);
        // The scan list (codes from skewed buckets) is always scanned.
        kernel::scan(&codes[n_mih..], n_mih as u32, q, radius, out);
    }

    /// Size and bucket statistics.
    pub fn info(&self) -> Info {
        let mut max_bucket = 0usize;
        let (mut nonempty, mut total) = (0usize, 0usize);
        for i in 0..self.layout.bits.len() {
            let (o, _) = self.table(i);
            for k in 0..o.len() - 1 {
                let s = (o[k + 1] - o[k]) as usize;
                if s > 0 {
                    nonempty += 1;
                    total += s;
                    max_bucket = max_bucket.max(s);
                }
            }
        }
        Info {
            len: self.len(),
            substring_bits: self.layout.bits.clone(),
            scan_list: self.layout.n_scan,
            max_bucket,
            mean_nonempty_bucket: if nonempty > 0 {
                total as f64 / nonempty as f64
            } else {
                0.0
            },
            bytes: self.layout.total * 8,
        }
    }

    /// Writes the index to `path` (atomically: a temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            f.write_all(bytemuck::cast_slice(self.backing.words()))?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Opens an index file by memory map and validates it.
    ///
    /// The file must not be modified while the index is open (it is written
    /// once, by [`Index::save`], and replaced by rename).
    pub fn open(path: &Path) -> Result<Index, Error> {
        let f = std::fs::File::open(path)?;
        // SAFETY: mapping a file is sound as long as no one truncates or
        // rewrites it while mapped; Bulwark writes index files once and
        // replaces them by rename, and the docs above state the contract.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&f)? };
        Index::from_backing(Backing::Mapped(map))
    }

    /// Loads an index from bytes (copied into aligned memory), validating it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Index, Error> {
        if bytes.len() < HEADER_WORDS * 8 {
            return Err(Error::Corrupt(format!(
                "{} bytes is shorter than the {}-byte header",
                bytes.len(),
                HEADER_WORDS * 8
            )));
        }
        if !bytes.len().is_multiple_of(8) {
            return Err(Error::Corrupt(format!(
                "length {} is not a multiple of 8 (truncated?)",
                bytes.len()
            )));
        }
        let v: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Index::from_backing(Backing::Owned(v))
    }

    /// The index as bytes (the file format).
    pub fn to_bytes(&self) -> Vec<u8> {
        bytemuck::cast_slice(self.backing.words()).to_vec()
    }

    fn from_backing(backing: Backing) -> Result<Index, Error> {
        let raw: &[u8] = match &backing {
            Backing::Owned(v) => bytemuck::cast_slice(v),
            Backing::Mapped(m) => &m[..],
        };
        if raw.len() < HEADER_WORDS * 8 {
            return Err(Error::Corrupt(format!(
                "{} bytes is shorter than the {}-byte header",
                raw.len(),
                HEADER_WORDS * 8
            )));
        }
        if &raw[..8] != MAGIC {
            return Err(Error::Corrupt(
                "wrong magic (not a Bulwark index file)".into(),
            ));
        }
        if !raw.len().is_multiple_of(8) {
            return Err(Error::Corrupt(format!(
                "length {} is not a multiple of 8 (truncated?)",
                raw.len()
            )));
        }
        let w = backing.words();
        let version = (w[1] & 0xffff) as u16;
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let m = ((w[1] >> 16) & 0xffff) as usize;
        let n = w[2] as usize;
        let n_scan = w[3] as usize;
        let crc = w[4] as u32;
        let total = w[5] as usize;
        let bits_raw: Vec<u8> = w[6]
            .to_le_bytes()
            .into_iter()
            .chain(w[7].to_le_bytes())
            .collect();
        if m > 16 || n_scan > n || n > u32::MAX as usize {
            return Err(Error::Corrupt("header fields out of range".into()));
        }
        let bits = bits_raw[..m].to_vec();
        if bits.iter().any(|&b| !(1..=28).contains(&b))
            || bits.iter().map(|&b| u32::from(b)).sum::<u32>() != if m == 0 { 0 } else { 256 }
        {
            return Err(Error::Corrupt("substring widths are invalid".into()));
        }
        let layout = Layout::new(n, n_scan, &bits);
        if layout.total != total || w.len() != total {
            return Err(Error::Corrupt(format!(
                "size mismatch: header says {} words, layout needs {}, file has {} (truncated?)",
                total,
                layout.total,
                w.len()
            )));
        }
        if payload_crc(&w[HEADER_WORDS..]) != crc {
            return Err(Error::Corrupt(
                "checksum mismatch (the file is damaged)".into(),
            ));
        }
        let ix = Index {
            starts: starts_of(&bits),
            layout,
            backing,
        };
        // Offsets must be monotone and end at the entry count, entries in range:
        // otherwise a damaged-but-checksummed file could index out of bounds.
        let n_mih = (n - n_scan) as u32;
        for i in 0..m {
            let (o, e) = ix.table(i);
            if o[0] != 0 || o[o.len() - 1] != n_mih || o.windows(2).any(|p| p[0] > p[1]) {
                return Err(Error::Corrupt(format!(
                    "table {i} offsets are inconsistent"
                )));
            }
            if e.iter().any(|&p| p >= n_mih) {
                return Err(Error::Corrupt(format!(
                    "table {i} entries are out of range"
                )));
            }
        }
        Ok(ix)
    }
}

fn header(l: &Layout, crc: u32) -> [u64; HEADER_WORDS] {
    let mut bits = [0u8; 16];
    bits[..l.bits.len()].copy_from_slice(&l.bits);
    [
        u64::from_le_bytes(*MAGIC),
        u64::from(VERSION) | (l.bits.len() as u64) << 16,
        l.n as u64,
        l.n_scan as u64,
        u64::from(crc),
        l.total as u64,
        u64::from_le_bytes(bits[..8].try_into().unwrap_or([0; 8])),
        u64::from_le_bytes(bits[8..].try_into().unwrap_or([0; 8])),
    ]
}

fn payload_crc(words: &[u64]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytemuck::cast_slice(words));
    h.finalize()
}

/// How many bits substring `i` of `m` must be probed within, for radius `r`
/// (None: not at all). With r = m·p + a (0 ≤ a < m), a code within `r` is
/// within `p` bits on one of the first a + 1 substrings or within p − 1 bits
/// on one of the others: were it not, its distance would be at least
/// (a + 1)(p + 1) + (m − a − 1)·p = r + 1 (Norouzi, Punjani, Fleet 2012).
fn flips_for(i: usize, m: usize, r: u32) -> Option<u32> {
    let (p, a) = (r / m as u32, r as usize % m);
    if i <= a { Some(p) } else { p.checked_sub(1) }
}

fn binomial(n: u32, k: u32) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// Brute force, for tests and benchmarks: every entry within `radius`.
pub fn brute_force(entries: &[(u64, Code)], query: &Code, radius: u32) -> Vec<Match> {
    let q = words(query);
    entries
        .iter()
        .filter_map(|(id, c)| {
            let d = kernel::distance(&words(c), &q);
            (d <= radius).then_some(Match {
                id: *id,
                distance: d,
            })
        })
        .collect()
}

/// Entry points for `cargo fuzz` (see fuzz/ at the repository root).
#[doc(hidden)]
pub mod fuzzing {
    /// Loading arbitrary bytes must fail cleanly or yield a searchable index
    /// that round-trips.
    pub fn load(data: &[u8]) {
        if let Ok(ix) = crate::Index::from_bytes(data) {
            let _ = ix.search(&[0u8; 32], 10);
            let again = crate::Index::from_bytes(&ix.to_bytes()).expect("round trip");
            assert_eq!(again.len(), ix.len());
        }
    }
}
