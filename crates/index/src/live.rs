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
///   the time of the call (tombstones in the base, removal from the segment);
/// - when the segment grows past a threshold, a background thread builds a new
///   base from the old one plus the segment, minus tombstones, and swaps it in.
///   Searches keep running on the old base meanwhile; changes made during the
///   merge are carried over.
pub struct LiveIndex {
    shared: Arc<Shared>,
}

struct Shared {
    state: RwLock<State>,
    merging: AtomicBool,
    merge_lock: Mutex<()>,
}

struct State {
    base: Arc<Index>,
    /// One bit per base position: removed.
    deleted: Vec<u64>,
    /// (id, position) of the base, sorted by id, to find tombstone positions.
    base_ids: Arc<Vec<(u64, u32)>>,
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
    fn new(base: Index) -> State {
        let mut ids: Vec<(u64, u32)> = (0..base.len())
            .map(|p| (base.entry(p).0, p as u32))
            .collect();
        ids.sort_unstable();
        State {
            deleted: vec![0; base.len().div_ceil(64)],
            live: base.len(),
            base: Arc::new(base),
            base_ids: Arc::new(ids),
            tail_codes: Vec::new(),
            tail_meta: Vec::new(),
            tail_ids: FxHashSet::default(),
            next_seq: 0,
            removed_during_merge: None,
        }
    }

    /// Tombstones every live base entry with `id`; returns how many.
    fn tombstone(&mut self, id: u64) -> usize {
        let start = self.base_ids.partition_point(|&(i, _)| i < id);
        self.tombstone_from(start, id).1
    }

    /// Tombstones every live base entry of each id in `sorted` (ascending,
    /// no repeats); returns how many. One forward pass that gallops from
    /// each id's place to the next: a binary search per id over the whole
    /// id table costs a cache miss per step, which made replaying millions
    /// of ids take seconds.
    fn tombstone_sorted(&mut self, sorted: &[u64]) -> usize {
        let mut at = 0;
        let mut n = 0;
        for &id in sorted {
            at += gallop(&self.base_ids[at..], id);
            let (next, k) = self.tombstone_from(at, id);
            at = next;
            n += k;
        }
        n
    }

    /// Tombstones the entries with `id` starting at base-id position
    /// `start`; returns the position after them and how many were live.
    fn tombstone_from(&mut self, start: usize, id: u64) -> (usize, usize) {
        let mut n = 0;
        let mut at = start;
        while let Some(&(i, p)) = self.base_ids.get(at) {
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
        (at, n)
    }

    fn search_into(&self, q: &Words, radius: u32, out: &mut Vec<Match>, scratch: &mut Vec<u32>) {
        scratch.clear();
        self.base.search_positions(q, radius, scratch);
        scratch.retain(|&p| self.deleted[p as usize / 64] >> (p % 64) & 1 == 0);
        out.extend(self.base.to_matches(q, scratch));
        scratch.clear();
        kernel::scan(&self.tail_codes, 0, q, radius, scratch);
        out.extend(scratch.iter().map(|&i| Match {
            id: self.tail_meta[i as usize].1,
            distance: kernel::distance(&self.tail_codes[i as usize], q),
        }));
    }
}

/// The append segment's size past which a merge starts.
fn merge_at(base_len: usize) -> usize {
    (base_len / 16).max(8192)
}

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
        LiveIndex {
            shared: Arc::new(Shared {
                state: RwLock::new(State::new(ix)),
                merging: AtomicBool::new(false),
                merge_lock: Mutex::new(()),
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
            s.tail_codes.len() >= merge_at(s.base.len())
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
                me.merge();
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
                n = (before - s.tail_meta.len()) + s.tombstone_sorted(&sorted);
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
            (n, s.tail_codes.len() >= merge_at(s.base.len()))
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

    /// Entries waiting in the append segment (not yet merged).
    pub fn pending(&self) -> usize {
        self.read().tail_codes.len()
    }

    /// Folds pending changes into the base and returns it: an immutable index
    /// with every entry live when the call started (and perhaps later ones),
    /// ready to [`Index::save`] as a snapshot.
    pub fn snapshot(&self) -> Arc<Index> {
        self.merge();
        Arc::clone(&self.read().base)
    }

    /// Folds the append segment and tombstones into a new base now (blocking
    /// the caller, never the searches). Background merges call this too.
    pub fn merge(&self) {
        let _one_at_a_time = self
            .shared
            .merge_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (base, deleted, tail, snapshot_seq) = {
            let mut s = self.write();
            s.removed_during_merge = Some(Vec::new());
            let tail: Vec<(u64, Code)> = s
                .tail_meta
                .iter()
                .zip(&s.tail_codes)
                .map(|(&(_, id), w)| (id, crate::bytes_of(w)))
                .collect();
            (Arc::clone(&s.base), s.deleted.clone(), tail, s.next_seq)
        };
        let mut entries: Vec<(u64, Code)> = (0..base.len())
            .filter(|&p| deleted[p / 64] >> (p % 64) & 1 == 0)
            .map(|p| base.entry(p))
            .collect();
        entries.extend(tail);
        let fresh = State::new(Index::build(&entries));
        let mut s = self.write();
        let removed = s.removed_during_merge.take().unwrap_or_default();
        let keep: Vec<usize> = (0..s.tail_meta.len())
            .filter(|&i| s.tail_meta[i].0 >= snapshot_seq)
            .collect();
        let tail_codes = keep.iter().map(|&i| s.tail_codes[i]).collect();
        let tail_meta: Vec<(u64, u64)> = keep.iter().map(|&i| s.tail_meta[i]).collect();
        let tail_ids = tail_meta.iter().map(|&(_, id)| id).collect();
        let live = s.live;
        let next_seq = s.next_seq;
        *s = State {
            tail_codes,
            tail_meta,
            tail_ids,
            next_seq,
            live,
            ..fresh
        };
        for id in removed {
            s.tombstone(id);
        }
    }
}
