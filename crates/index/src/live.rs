//! [`LiveIndex`]: an [`Index`] that takes inserts and removals while it serves.

use rustc_hash::FxHashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::{Code, Index, Match, Words, kernel, words};

/// A concurrently searchable index that changes without a full rebuild.
///
/// - [`insert`](LiveIndex::insert) appends to a segment that every search
///   scans, so a new code matches as soon as the call returns;
/// - [`remove`](LiveIndex::remove) drops every entry with that id present at
///   the time of the call (tombstones in the indexed segments, removal from
///   the append segment);
/// - when the append segment grows past [`LiveIndex::with_append_limit`]'s
///   limit, a background thread builds an indexed segment from it, minus
///   tombstones, and swaps it in. Searches keep running meanwhile; changes
///   made during the build are carried over.
///
/// The indexed segments are kept the way a binary counter keeps its bits:
/// a build takes in every newest segment no larger than what it has taken
/// so far, so each segment is more than the size of all newer ones together.
/// A code is rebuilt about log2(n / limit) times on the way to n codes, and
/// a search visits at most about that many segments, each through its own
/// hash tables. (Until 2026-12-04 there was one indexed segment, rebuilt
/// whole each time the append segment reached a sixteenth of it: about 17
/// builds of every code, and a linear scan of up to n/16 codes a search.)
pub struct LiveIndex {
    shared: Arc<Shared>,
}

struct Shared {
    state: RwLock<State>,
    merging: AtomicBool,
    merge_lock: Mutex<()>,
    append_limit: usize,
}

/// An immutable indexed segment and its tombstones.
struct Segment {
    index: Arc<Index>,
    /// One bit per position: removed.
    deleted: Vec<u64>,
    /// Positions removed.
    dead: usize,
    /// (id, position), sorted by id, to find tombstone positions.
    ids: Vec<(u64, u32)>,
}

impl Segment {
    fn new(index: Index) -> Segment {
        // The ids alone: `Index::entry` would also copy out each code.
        let mut ids: Vec<(u64, u32)> = index.ids().iter().copied().zip(0u32..).collect();
        ids.sort_unstable();
        Segment {
            deleted: vec![0; index.len().div_ceil(64)],
            dead: 0,
            index: Arc::new(index),
            ids,
        }
    }

    fn live(&self) -> usize {
        self.index.len() - self.dead
    }

    fn is_deleted(&self, p: usize) -> bool {
        self.deleted[p / 64] >> (p % 64) & 1 == 1
    }

    /// Tombstones every live entry of each id in `sorted` (ascending, no
    /// repeats); returns how many. One forward pass that gallops from each
    /// id's place to the next: a binary search per id over the whole id
    /// table costs a cache miss per step, which made replaying millions of
    /// ids take seconds.
    fn tombstone_sorted(&mut self, sorted: &[u64]) -> usize {
        let mut at = 0;
        let mut n = 0;
        for &id in sorted {
            at += gallop(&self.ids[at..], id);
            let (next, k) = self.tombstone_from(at, id);
            at = next;
            n += k;
        }
        n
    }

    /// Tombstones the entries with `id` starting at id-table position
    /// `start`; returns the position after them and how many were live.
    fn tombstone_from(&mut self, start: usize, id: u64) -> (usize, usize) {
        let mut n = 0;
        let mut at = start;
        while let Some(&(i, p)) = self.ids.get(at) {
            if i != id {
                break;
            }
            let (w, b) = (p as usize / 64, p % 64);
            if self.deleted[w] >> b & 1 == 0 {
                self.deleted[w] |= 1 << b;
                n += 1;
            }
            at += 1;
        }
        self.dead += n;
        (at, n)
    }
}

struct State {
    /// Oldest (largest) first; never empty.
    segments: Vec<Segment>,
    tail_codes: Vec<Words>,
    /// (sequence number, id) of each tail entry.
    tail_meta: Vec<(u64, u64)>,
    /// Every id in the tail, and perhaps some removed from it since: a
    /// removal of ids none of which is here skips the scan of the tail
    /// (after a replay put a large journal in the tail, each applied change
    /// would otherwise scan it).
    tail_ids: FxHashSet<u64>,
    next_seq: u64,
    /// While a merge runs: ids removed since its snapshot.
    removed_during_merge: Option<Vec<u64>>,
    live: usize,
}

impl State {
    fn search_into(&self, q: &Words, radius: u32, out: &mut Vec<Match>, scratch: &mut Vec<u32>) {
        for seg in &self.segments {
            if seg.live() == 0 {
                continue;
            }
            scratch.clear();
            seg.index.search_positions(q, radius, scratch);
            if seg.dead > 0 {
                scratch.retain(|&p| !seg.is_deleted(p as usize));
            }
            out.extend(seg.index.to_matches(q, scratch));
        }
        scratch.clear();
        kernel::scan(&self.tail_codes, 0, q, radius, scratch);
        out.extend(scratch.iter().map(|&i| Match {
            id: self.tail_meta[i as usize].1,
            distance: kernel::distance(&self.tail_codes[i as usize], q),
        }));
    }

    /// How many of the newest segments a build of the tail takes in: each
    /// one no larger than the tail and the segments taken before it.
    fn newest_to_fold(&self) -> usize {
        let mut taken = self.tail_codes.len();
        let mut k = 0;
        for seg in self.segments.iter().rev() {
            if seg.live() > taken {
                break;
            }
            taken += seg.live();
            k += 1;
        }
        k
    }
}

/// The append segment's size past which it is built into a segment, by
/// default: a trade between the scan of the append segment that every
/// search pays and how often builds run (`bulwark bench live
/// --append-limit N` measures both; 8,192 to 65,536 gave like results on
/// 2026-12-04).
pub const APPEND_LIMIT: usize = 16_384;

/// How many leading entries of `ids` (sorted by id) are below `id`: an
/// exponential then a binary search, so a run of nearby ids costs a few
/// steps each instead of a search over the whole table.
fn gallop(ids: &[(u64, u32)], id: u64) -> usize {
    let mut hi = 1;
    while hi < ids.len() && ids[hi - 1].0 < id {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(ids.len());
    lo + ids[lo..hi].partition_point(|&(i, _)| i < id)
}

impl Default for LiveIndex {
    fn default() -> Self {
        LiveIndex::new()
    }
}

impl LiveIndex {
    /// An empty index.
    pub fn new() -> LiveIndex {
        LiveIndex::from_index(Index::build(&[]))
    }

    /// Serves an existing index (built or opened from disk).
    pub fn from_index(ix: Index) -> LiveIndex {
        LiveIndex::with_append_limit(ix, APPEND_LIMIT)
    }

    /// [`LiveIndex::from_index`], building the append segment into an
    /// indexed segment once it holds `limit` codes (at least 1) instead of
    /// [`APPEND_LIMIT`]. A lower limit makes searches scan less and builds
    /// run more often.
    pub fn with_append_limit(ix: Index, limit: usize) -> LiveIndex {
        LiveIndex {
            shared: Arc::new(Shared {
                state: RwLock::new(State {
                    live: ix.len(),
                    segments: vec![Segment::new(ix)],
                    tail_codes: Vec::new(),
                    tail_meta: Vec::new(),
                    tail_ids: FxHashSet::default(),
                    next_seq: 0,
                    removed_during_merge: None,
                }),
                merging: AtomicBool::new(false),
                merge_lock: Mutex::new(()),
                append_limit: limit.max(1),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a
        // way searches would misread (each update is a few plain stores), so
        // a poisoned lock is still usable.
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.shared.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a code; it matches as soon as this returns.
    pub fn insert(&self, id: u64, code: Code) {
        let should_merge = {
            let mut s = self.write();
            let seq = s.next_seq;
            s.next_seq += 1;
            s.tail_codes.push(words(&code));
            s.tail_meta.push((seq, id));
            s.tail_ids.insert(id);
            s.live += 1;
            s.tail_codes.len() >= self.shared.append_limit
        };
        if should_merge {
            self.merge_in_background();
        }
    }

    /// Starts a merge on its own thread unless one is running.
    fn merge_in_background(&self) {
        if !self.shared.merging.swap(true, Ordering::AcqRel) {
            let me = LiveIndex {
                shared: Arc::clone(&self.shared),
            };
            std::thread::spawn(move || {
                me.fold(false);
                me.shared.merging.store(false, Ordering::Release);
            });
        }
    }

    /// Removes every entry with `id`; returns whether there was one.
    pub fn remove(&self, id: u64) -> bool {
        self.replace(&[id], &[]) > 0
    }

    /// Removes every entry whose id is in `ids`, with one pass over the
    /// append segment (calling [`LiveIndex::remove`] per id scans it once
    /// per id); returns how many entries went.
    pub fn remove_many(&self, ids: &[u64]) -> usize {
        self.replace(ids, &[])
    }

    /// Removes every entry whose id is in `removes`, then adds `inserts`, as
    /// one change under one lock (what replaying an
    /// [`journal`](crate::journal) does); returns how many entries went.
    pub fn replace(&self, removes: &[u64], inserts: &[(u64, Code)]) -> usize {
        let mut sorted = removes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let (removed, should_merge) = {
            let mut s = self.write();
            let mut n = 0;
            if !sorted.is_empty() {
                let set: FxHashSet<u64> = sorted
                    .iter()
                    .copied()
                    .filter(|id| s.tail_ids.contains(id))
                    .collect();
                let before = s.tail_meta.len();
                if !set.is_empty() {
                    let mut k = 0;
                    for i in 0..before {
                        if !set.contains(&s.tail_meta[i].1) {
                            s.tail_meta[k] = s.tail_meta[i];
                            s.tail_codes[k] = s.tail_codes[i];
                            k += 1;
                        }
                    }
                    s.tail_meta.truncate(k);
                    s.tail_codes.truncate(k);
                    for id in &set {
                        s.tail_ids.remove(id);
                    }
                }
                n = before - s.tail_meta.len();
                for seg in &mut s.segments {
                    n += seg.tombstone_sorted(&sorted);
                }
                if let Some(r) = s.removed_during_merge.as_mut() {
                    r.extend_from_slice(&sorted);
                }
                s.live -= n;
            }
            s.tail_codes.reserve(inserts.len());
            s.tail_meta.reserve(inserts.len());
            s.tail_ids.reserve(inserts.len());
            for (id, code) in inserts {
                let seq = s.next_seq;
                s.next_seq += 1;
                s.tail_codes.push(words(code));
                s.tail_meta.push((seq, *id));
                s.tail_ids.insert(*id);
            }
            s.live += inserts.len();
            (n, s.tail_codes.len() >= self.shared.append_limit)
        };
        if should_merge && !inserts.is_empty() {
            self.merge_in_background();
        }
        removed
    }

    /// Every live entry within `radius` of `query`.
    pub fn search(&self, query: &Code, radius: u32) -> Vec<Match> {
        let mut out = Vec::new();
        self.read()
            .search_into(&words(query), radius, &mut out, &mut Vec::new());
        out
    }

    /// [`LiveIndex::search`] for several queries under one consistent view.
    pub fn search_batch(&self, queries: &[Code], radius: u32) -> Vec<Vec<Match>> {
        let s = self.read();
        let mut scratch = Vec::new();
        queries
            .iter()
            .map(|q| {
                let mut out = Vec::new();
                s.search_into(&words(q), radius, &mut out, &mut scratch);
                out
            })
            .collect()
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.read().live
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries waiting in the append segment (scanned by every search, not
    /// yet in an indexed segment).
    pub fn pending(&self) -> usize {
        self.read().tail_codes.len()
    }

    /// Codes inserted since this index was made: a count that only grows,
    /// so an unchanged count means no insert came in between.
    pub fn inserted(&self) -> u64 {
        self.read().next_seq
    }

    /// Indexed segments a search probes (at least 1).
    pub fn segments(&self) -> usize {
        self.read().segments.len()
    }

    /// Builds the append segment (with the newest segments a background
    /// build would take in) into an indexed segment on this thread now, if
    /// it holds at least the limit; else does nothing. Inserts otherwise
    /// start that build on a thread of its own.
    pub fn build_pending(&self) {
        self.fold(false);
    }

    /// Whether a [`LiveIndex::merge`] is worth its cost now: there is more
    /// than one segment, and the newer segments and the append segment hold
    /// at least a sixteenth as many codes as the oldest. A bulk load ends
    /// with several segments, each of which every search probes; folding
    /// them then costs a build of the whole index, which this rule makes no
    /// more frequent than the rebuild at each sixteenth it replaced.
    pub fn fragmented(&self) -> bool {
        let s = self.read();
        let newer: usize =
            s.segments[1..].iter().map(Segment::live).sum::<usize>() + s.tail_codes.len();
        s.segments.len() > 1 && newer > 0 && newer >= s.segments[0].live() / 16
    }

    /// Folds every segment, pending change and tombstone into one indexed
    /// segment and returns it: an immutable index with every entry live when
    /// the call started (and perhaps later ones), ready to [`Index::save`]
    /// as a snapshot.
    pub fn snapshot(&self) -> Arc<Index> {
        self.merge();
        Arc::clone(&self.read().segments[0].index)
    }

    /// Folds every segment, the append segment and the tombstones into one
    /// indexed segment now (blocking the caller, never the searches).
    pub fn merge(&self) {
        self.fold(true);
    }

    /// Builds the append segment and the newest segments (all of them if
    /// `all`; else those [`State::newest_to_fold`] names) into one segment.
    fn fold(&self, all: bool) {
        let _one_at_a_time = self
            .shared
            .merge_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Only this function, under `merge_lock`, changes `segments`: the k
        // newest are still the ones read here when the build is swapped in.
        let (folded, tail, snapshot_seq) = {
            let mut s = self.write();
            let k = if all {
                let whole = s.segments.len() == 1 && s.segments[0].dead == 0;
                if whole && s.tail_codes.is_empty() {
                    return;
                }
                s.segments.len()
            } else {
                // Another fold took the tail in while this one waited.
                if s.tail_codes.len() < self.shared.append_limit {
                    return;
                }
                s.newest_to_fold()
            };
            s.removed_during_merge = Some(Vec::new());
            let tail: Vec<(u64, Code)> = s
                .tail_meta
                .iter()
                .zip(&s.tail_codes)
                .map(|(&(_, id), w)| (id, crate::bytes_of(w)))
                .collect();
            let at = s.segments.len() - k;
            let folded: Vec<(Arc<Index>, Vec<u64>)> = s.segments[at..]
                .iter()
                .map(|g| (Arc::clone(&g.index), g.deleted.clone()))
                .collect();
            (folded, tail, s.next_seq)
        };
        let mut entries: Vec<(u64, Code)> =
            Vec::with_capacity(folded.iter().map(|(ix, _)| ix.len()).sum::<usize>() + tail.len());
        for (ix, deleted) in &folded {
            entries.extend(
                (0..ix.len())
                    .filter(|&p| deleted[p / 64] >> (p % 64) & 1 == 0)
                    .map(|p| ix.entry(p)),
            );
        }
        entries.extend(tail);
        let mut built = Segment::new(Index::build(&entries));
        drop(entries);
        let mut s = self.write();
        let mut removed = s.removed_during_merge.take().unwrap_or_default();
        removed.sort_unstable();
        removed.dedup();
        built.tombstone_sorted(&removed);
        let keep: Vec<usize> = (0..s.tail_meta.len())
            .filter(|&i| s.tail_meta[i].0 >= snapshot_seq)
            .collect();
        let tail_codes = keep.iter().map(|&i| s.tail_codes[i]).collect();
        let tail_meta: Vec<(u64, u64)> = keep.iter().map(|&i| s.tail_meta[i]).collect();
        s.tail_ids = tail_meta.iter().map(|&(_, id)| id).collect();
        s.tail_codes = tail_codes;
        s.tail_meta = tail_meta;
        let at = s.segments.len() - folded.len();
        s.segments.truncate(at);
        s.segments.push(built);
    }
}
