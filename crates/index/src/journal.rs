//! An append-only journal of changes to a [`LiveIndex`](crate::LiveIndex),
//! so that a restart can rebuild the index as the snapshot ([`Index::save`](crate::Index::save))
//! plus the journal, without re-reading from its source every row changed
//! since the snapshot.
//!
//! Each [`Record`] *sets* the ids it names: every entry with one of its
//! `removes` ids goes, then its `inserts` are added (a record's inserted ids
//! are always among its removed ids, which [`encode_record`] ensures). So
//! replaying a record over an index that already holds its effect changes
//! nothing, and [`fold`] can reduce any run of records to one removal set
//! and the inserts that survive: the last record to name an id decides its
//! entries. A record also carries the caller's sequence numbers (which
//! source changes it applied), opaque here.
//!
//! The file: a 24-byte header (magic `BWJOURNL`, version, the id of the
//! snapshot it follows), then records, each `len: u32, crc32: u32` and
//! `len` bytes of payload (`u32` counts of sequence numbers, removals and
//! inserts, then the `i64` sequence numbers, the `u64` removed ids and the
//! `(u64 id, 32-byte code)` inserts), all little-endian. [`read`] stops at
//! the first record that is short or fails its CRC (a write cut off by a
//! crash) and says where the good part ends, so the writer can truncate there
//! and append.

use rustc_hash::FxHashSet;

use crate::{Code, Error};

/// The journal file's magic bytes.
pub const MAGIC: &[u8; 8] = b"BWJOURNL";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 24;
/// The largest record payload [`read`] accepts (a record per applied batch
/// is far smaller).
pub const MAX_RECORD: usize = 1 << 30;

/// One applied change to the index; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The source's sequence numbers this record applied.
    pub seqs: Vec<i64>,
    /// Ids whose entries are dropped (including every inserted id).
    pub removes: Vec<u64>,
    /// Entries added after the removals.
    pub inserts: Vec<(u64, Code)>,
}

/// A record's payload length: the counts, then each part (see the module
/// docs). Wide enough that no count read from a file overflows it.
fn payload_len(seqs: usize, removes: usize, inserts: usize) -> u128 {
    12 + (seqs as u128 + removes as u128) * 8 + inserts as u128 * 40
}

impl Record {
    /// The bytes this record takes in the file, framing included.
    pub fn encoded_len(&self) -> u64 {
        8 + payload_len(self.seqs.len(), self.removes.len(), self.inserts.len()) as u64
    }
}

/// A journal's header: which snapshot it follows.
pub fn encode_header(snapshot_id: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&snapshot_id.to_le_bytes());
    h
}

/// Appends one record to `out`. Inserted ids missing from `removes` are
/// added to it, so the record sets each id it names (see the module docs).
pub fn encode_record(out: &mut Vec<u8>, seqs: &[i64], removes: &[u64], inserts: &[(u64, Code)]) {
    let mut removes: Vec<u64> = removes.to_vec();
    let named: FxHashSet<u64> = removes.iter().copied().collect();
    let mut extra: Vec<u64> = inserts
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !named.contains(id))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    removes.extend(extra);
    encode_raw(out, seqs, &removes, inserts);
}

/// Appends a record as given (its inserted ids must be among its removals).
fn encode_raw(out: &mut Vec<u8>, seqs: &[i64], removes: &[u64], inserts: &[(u64, Code)]) {
    let len = payload_len(seqs.len(), removes.len(), inserts.len()) as usize;
    out.reserve(8 + len);
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
    out.extend_from_slice(&(removes.len() as u32).to_le_bytes());
    out.extend_from_slice(&(inserts.len() as u32).to_le_bytes());
    for s in seqs {
        out.extend_from_slice(&s.to_le_bytes());
    }
    for id in removes {
        out.extend_from_slice(&id.to_le_bytes());
    }
    for (id, code) in inserts {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(code);
    }
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A journal as read: its snapshot id, its whole records, and where they end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The snapshot this journal follows.
    pub snapshot_id: u64,
    /// Every whole record, in the order written.
    pub records: Vec<Record>,
    /// The byte offset just past the last whole record (where to append).
    pub valid_len: u64,
    /// Whether bytes after `valid_len` were ignored (a torn or damaged write).
    pub torn: bool,
}

/// Parses a journal. Fails only on a bad header; a bad record ends the
/// journal there (see [`Journal::torn`]).
pub fn read(bytes: &[u8]) -> Result<Journal, Error> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::Corrupt(format!(
            "journal of {} bytes is shorter than its {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(Error::Corrupt(
            "wrong magic (not a Bulwark index journal)".into(),
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(Error::Corrupt(format!(
            "journal version {version} is not supported (this build reads version {VERSION})"
        )));
    }
    let snapshot_id = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    while let Some((r, next)) = record_at(bytes, at) {
        records.push(r);
        at = next;
    }
    Ok(Journal {
        snapshot_id,
        records,
        valid_len: at as u64,
        torn: at < bytes.len(),
    })
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The whole, intact record at `at` and the offset after it.
fn record_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let len = u32_at(bytes, at)?;
    let crc = u32_at(bytes, at + 4)? as u32;
    if !(12..=MAX_RECORD).contains(&len) {
        return None;
    }
    let p = bytes.get(at + 8..at + 8 + len)?;
    if crc32fast::hash(p) != crc {
        return None;
    }
    let (ns, nr, ni) = (u32_at(p, 0)?, u32_at(p, 4)?, u32_at(p, 8)?);
    if payload_len(ns, nr, ni) != len as u128 {
        return None;
    }
    let mut o = 12;
    let seqs = (0..ns)
        .map(|i| u64_at(p, o + i * 8) as i64)
        .collect::<Vec<_>>();
    o += ns * 8;
    let removes = (0..nr).map(|i| u64_at(p, o + i * 8)).collect::<Vec<_>>();
    o += nr * 8;
    let inserts = (0..ni)
        .map(|i| {
            let q = o + i * 40;
            let code: Code = p[q + 8..q + 40].try_into().expect("32 bytes");
            (u64_at(p, q), code)
        })
        .collect::<Vec<_>>();
    // A record sets the ids it names: one inserting an id it does not remove
    // was not written by `encode_record`.
    if !inserts.is_empty() {
        let named: FxHashSet<u64> = removes.iter().copied().collect();
        if inserts.iter().any(|(id, _)| !named.contains(id)) {
            return None;
        }
    }
    Some((
        Record {
            seqs,
            removes,
            inserts,
        },
        at + 8 + len,
    ))
}

/// Reduces records (as [`read`] returns them), in the order written, to what replaying them one by one
/// does: every id any of them names (to remove first; ascending, once
/// each), and the inserts of the last record naming each id (to add after;
/// by id, in record order within an id).
///
/// By sorting, not hashing: a restart folds millions of entries, and a hash
/// table of that size misses the cache on nearly every probe (the fold grew
/// faster than the journal). The ids of a journal written during an import
/// ascend from record to record, so the sorts mostly find one long run.
pub fn fold<'a>(records: impl IntoIterator<Item = &'a Record>) -> (Vec<u64>, Vec<(u64, Code)>) {
    let records: Vec<&Record> = records.into_iter().collect();
    // (id, record) for every removal, sorted: each id's last record is the
    // last of its run.
    let mut named: Vec<(u64, u32)> =
        Vec::with_capacity(records.iter().map(|r| r.removes.len()).sum());
    for (n, r) in records.iter().enumerate() {
        named.extend(r.removes.iter().map(|&id| (id, n as u32)));
    }
    named.sort();
    let mut ids: Vec<u64> = Vec::with_capacity(named.len());
    let mut last: Vec<u32> = Vec::with_capacity(named.len());
    for &(id, n) in &named {
        if ids.last() == Some(&id) {
            *last.last_mut().expect("pushed with its id") = n;
        } else {
            ids.push(id);
            last.push(n);
        }
    }
    drop(named);
    // (id, record, position) for every insert, sorted the same way, then
    // walked beside the ids: each inserted id is among its record's
    // removals ([`read`] checks it), so it is found.
    let mut added: Vec<(u64, u32, u32)> =
        Vec::with_capacity(records.iter().map(|r| r.inserts.len()).sum());
    for (n, r) in records.iter().enumerate() {
        added.extend(
            r.inserts
                .iter()
                .enumerate()
                .map(|(i, &(id, _))| (id, n as u32, i as u32)),
        );
    }
    added.sort();
    let mut survivors = Vec::new();
    let mut at = 0;
    for (id, n, i) in added {
        while ids.get(at).is_some_and(|&x| x < id) {
            at += 1;
        }
        if ids.get(at) == Some(&id) && last[at] == n {
            survivors.push(records[n as usize].inserts[i as usize]);
        }
    }
    (ids, survivors)
}

/// For `cargo fuzz` (fuzz/fuzz_targets/journal_read.rs).
#[doc(hidden)]
pub mod fuzzing {
    /// Reading arbitrary bytes must fail cleanly or yield records that
    /// re-encode to the bytes read.
    pub fn read(data: &[u8]) {
        if let Ok(j) = super::read(data) {
            let mut again = super::encode_header(j.snapshot_id).to_vec();
            for r in &j.records {
                super::encode_raw(&mut again, &r.seqs, &r.removes, &r.inserts);
            }
            assert_eq!(again.len() as u64, j.valid_len);
            assert_eq!(super::read(&again).expect("re-read").records, j.records);
            let _ = super::fold(&j.records);
        }
    }
}
