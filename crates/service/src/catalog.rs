//! What this node matches against: the banks, the PDQ index over every banked
//! photo hash and video frame, video frame lists, and which content is
//! disabled. Kept current without a rebuild: local writes are applied as they
//! commit, other replicas' writes by polling the `changes` table.
//!
//! Index ids pack what a match needs, so no per-hash map is kept in memory:
//! bit 62 marks a video frame, bits 40..62 hold the bank id and bits 0..40
//! the content id. Banked extra hashes (crops, content region) have their
//! own layout with bit 63 set ([`crate::extras::entry_id`]).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bulwark_index::{Index, LiveIndex};
use bulwark_pdq::{HashKind, KindHash, Pairing, PdqHash};
use bulwark_store::{self as db, BankRow, Store, now_ms};
use bulwark_vpdq::{FrameExtras, FrameHash, MatchRule};

const FRAME_BIT: u64 = 1 << 62;
const CONTENT_BITS: u32 = 40;
const CONTENT_MASK: u64 = (1 << CONTENT_BITS) - 1;
const BANK_MASK: u64 = (1 << 22) - 1;

/// Packs (frame?, bank, content) into an index id.
pub fn entry_id(frame: bool, bank_id: i64, content_id: i64) -> u64 {
    (if frame { FRAME_BIT } else { 0 })
        | ((bank_id as u64 & BANK_MASK) << CONTENT_BITS)
        | (content_id as u64 & CONTENT_MASK)
}

fn unpack(id: u64) -> (bool, i64, i64) {
    (
        id & FRAME_BIT != 0,
        ((id >> CONTENT_BITS) & BANK_MASK) as i64,
        (id & CONTENT_MASK) as i64,
    )
}

/// A bank as matching sees it.
#[derive(Debug, Clone)]
pub struct BankInfo {
    /// Name.
    pub name: Arc<str>,
    /// Largest matching distance.
    pub threshold: u32,
    /// Matching enabled.
    pub enabled: bool,
    /// Lowest PDQ quality banked or matched.
    pub min_quality: u32,
}

/// The quality floor of a new bank (HMA's recommendation).
pub const DEFAULT_MIN_QUALITY: u32 = 50;

/// Fewest set bits of a PDQ hash whose quality is not known (a hash sent as
/// a signal) before it counts as degenerate. A PDQ hash sets the bits whose
/// DCT coefficient is above the median, so a real image's hash has about
/// 128; a flat (blank) image gives ties and almost none (all zero for a
/// uniform image), and such a hash would match every blank image.
pub const MIN_UNKNOWN_QUALITY_BITS: u32 = 16;

/// Whether a PDQ hash may be banked in, or matched against, a bank with this
/// quality floor: by its quality when known, else by not being degenerate.
pub fn pdq_usable(hash: &PdqHash, quality: Option<u32>, floor: u32) -> bool {
    match quality {
        Some(q) => q >= floor,
        None => {
            hash.as_bytes().iter().map(|b| b.count_ones()).sum::<u32>() >= MIN_UNKNOWN_QUALITY_BITS
                || floor == 0
        }
    }
}

/// A PDQ match.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Bank name.
    pub bank: Arc<str>,
    /// Content id.
    pub content_id: i64,
    /// Hamming distance.
    pub distance: u32,
    /// The banked entry is a frame of a video.
    pub video_frame: bool,
}

/// A match found by [`Catalog::search_multi`]: which hashes met.
#[derive(Debug, Clone)]
pub struct MultiHit {
    /// The item and distance.
    pub hit: Hit,
    /// The query's hash kind.
    pub query: bulwark_pdq::HashKind,
    /// The query's hash of that kind.
    pub query_hash: PdqHash,
    /// The banked hash's kind (`Full`: the plain PDQ signal).
    pub bank_kind: bulwark_pdq::HashKind,
}

/// A video match under the vPDQ rule.
#[derive(Debug, Clone)]
pub struct VideoHit {
    /// Bank name.
    pub bank: Arc<str>,
    /// Content id.
    pub content_id: i64,
    /// Percent of the query's frames found in the banked video.
    pub query_percent: f64,
    /// Percent of the banked video's frames found in the query.
    pub compared_percent: f64,
    /// `None`: the plain frames match. Otherwise the video matches only
    /// through frame extras (the content region inside framing): the
    /// (query kind, banked kind) pair that found most of its frames.
    pub via: Option<(HashKind, HashKind)>,
}

struct State {
    banks: HashMap<i64, BankInfo>,
    /// Content that does not match: `None` disabled, `Some(t)` until `t` (ms).
    disabled: HashMap<i64, Option<i64>>,
    /// Banked videos: content id -> (bank id, frames, each with its banked
    /// extra hashes).
    videos: HashMap<i64, (i64, Arc<Vec<FrameExtras>>)>,
    /// The banked videos' frame extras, each under its video's frame id
    /// (`entry_id(true, ..)`): candidates for [`Catalog::match_video`]
    /// without a scan of every banked video. Rebuilt from the store at every
    /// load (like `videos`), never in the snapshot.
    frame_extras: Arc<LiveIndex>,
}

/// The frame-extras index entries of one banked video.
fn frame_extra_entries(
    bank: i64,
    cid: i64,
    frames: &[FrameExtras],
) -> impl Iterator<Item = (u64, [u8; 32])> + '_ {
    let id = entry_id(true, bank, cid);
    frames
        .iter()
        .flat_map(|f| &f.extras)
        .map(move |e| (id, *e.hash.as_bytes()))
}

/// What the snapshot file's companion `.json` says.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotMeta {
    instance: String,
    generation: String,
    seq: i64,
    entries: u64,
    /// The id its journal names (`index.journal`; absent before journals).
    #[serde(default)]
    journal: Option<u64>,
}

/// A journal as a load uses it: its records up to the first that names a
/// change the store does not hold, folded.
struct JournalRead {
    path: PathBuf,
    /// Records used and dropped.
    records: usize,
    dropped: usize,
    /// Where the records used end.
    valid_len: u64,
    /// The changes they cover, above the snapshot's.
    covered: Seen,
    /// Ids to remove, entries to add ([`bulwark_index::journal::fold`]).
    folded: (Vec<u64>, Vec<(u64, [u8; 32])>),
}

impl JournalRead {
    fn of(
        path: PathBuf,
        j: bulwark_index::journal::Journal,
        latest: i64,
        snapshot_seq: i64,
    ) -> JournalRead {
        let good = j
            .records
            .iter()
            .take_while(|r| r.seqs.iter().all(|s| *s <= latest))
            .count();
        let records = &j.records[..good];
        let mut covered = Seen {
            floor: snapshot_seq,
            ..Seen::default()
        };
        let seqs: Vec<i64> = records
            .iter()
            .flat_map(|r| r.seqs.iter().copied())
            .collect();
        cover(&mut covered, &seqs);
        JournalRead {
            path,
            records: good,
            dropped: j.records.len() - good,
            valid_len: bulwark_index::journal::HEADER_LEN as u64
                + records.iter().map(|r| r.encoded_len()).sum::<u64>(),
            covered,
            folded: bulwark_index::journal::fold(records),
        }
    }
}

/// How the last [`Catalog::load`] went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// The index came from the snapshot (else from the store).
    pub from_snapshot: bool,
    /// Journal records replayed after the snapshot.
    pub journal_records: usize,
    /// Index entries those records left (after later ones replaced earlier).
    pub journal_entries: usize,
    /// Journal records dropped: they name changes the store does not hold.
    pub journal_dropped: usize,
    /// Changes then read back from the store.
    pub replayed: usize,
    /// Seconds the load took.
    pub seconds: f64,
    /// Of which: reading and folding the journal (the snapshot is mapped
    /// and its id table built meanwhile, on another thread).
    pub journal_s: f64,
    /// Then: reading banks and videos, waiting for the snapshot if it is
    /// not ready yet, applying the journal.
    pub index_s: f64,
    /// Replaying changes from the store.
    pub replay_s: f64,
}

/// Banks, videos and disabled content: what is loaded from the store even
/// when the index comes from a snapshot.
struct Side {
    banks: HashMap<i64, BankInfo>,
    videos: HashMap<i64, Vec<FrameHash>>,
    /// Banked frame extras: content id -> (frame number, hash).
    frame_extras: HashMap<i64, Vec<(u64, KindHash)>>,
    video_bank: HashMap<i64, i64>,
    disabled: HashMap<i64, Option<i64>>,
}

/// Which `changes` rows this node has applied.
#[derive(Default)]
struct Seen {
    /// Every sequence number ≤ floor is applied (or was a gap given up on).
    floor: i64,
    above: BTreeSet<i64>,
    /// Applies and loads so far (see [`Catalog::apply_mark`]).
    applies: u64,
    /// The content ids each of the last [`TOUCHED_KEPT`] applies set the
    /// index entries of, by apply number; `None` for a load, which read
    /// everything. [`Catalog::apply_fresh`] falls back to re-reading its
    /// rows only when an apply since its mark touched one of them.
    touched: VecDeque<(u64, Option<Vec<i64>>)>,
    /// Content ids in `touched`, at most [`TOUCHED_IDS`].
    touched_ids: usize,
    /// The oldest open gap: when it was first noticed, and the lowest
    /// sequence number above the floor applied then (the gap is every
    /// number between the floor and it).
    gap: Option<(Instant, i64)>,
}

impl Seen {
    /// Counts an apply (or a load: `ids` `None`) and what it touched.
    fn count_apply(&mut self, ids: Option<Vec<i64>>) {
        self.applies += 1;
        self.touched_ids += ids.as_ref().map_or(0, Vec::len);
        self.touched.push_back((self.applies, ids));
        while self.touched.len() > TOUCHED_KEPT || self.touched_ids > TOUCHED_IDS {
            let Some((_, old)) = self.touched.pop_front() else {
                break;
            };
            self.touched_ids -= old.as_ref().map_or(0, Vec::len);
        }
    }

    /// Whether an apply after `mark` touched one of `ids` (sorted), or was
    /// a load, or is no longer remembered.
    fn touched_since(&self, mark: u64, ids: &[i64]) -> bool {
        if self.applies == mark {
            return false;
        }
        if self.touched.front().is_none_or(|(n, _)| *n > mark + 1) {
            return true;
        }
        self.touched
            .iter()
            .filter(|(n, _)| *n > mark)
            .any(|(_, t)| match t {
                None => true,
                Some(t) => t.iter().any(|id| ids.binary_search(id).is_ok()),
            })
    }
}

/// Applies whose touched content ids [`Seen`] remembers: more applies than
/// this between an import batch's mark and its index update make the batch
/// re-read its rows.
const TOUCHED_KEPT: usize = 256;

/// Most content ids [`Seen`] remembers (8 MiB): a replica's catch-up
/// applies up to 20,000 changes at a time, and a start-up replay more.
const TOUCHED_IDS: usize = 1 << 20;

/// A snapshot further behind the store than this many changes is not
/// replayed: the index is read from the store instead (faster past this).
pub const MAX_REPLAY: i64 = 200_000;

/// How often a journaling node writes the index journal (see
/// [`Catalog::flush_journal`]): a `kill -9` leaves at most about this much
/// of the latest changes to replay from the store.
pub const JOURNAL_FLUSH: Duration = Duration::from_millis(500);

/// A gap in `changes` (a transaction still in flight on another replica, or
/// rolled back) is waited for this long before it is skipped: every
/// missing number below the change that showed the gap at once, since all
/// of them were handed out before that change's (a rolled-back import batch
/// leaves a run of up to 2,048).
pub const GAP_PATIENCE: Duration = Duration::from_secs(30);

/// Content items re-read per query when changes are applied.
const RELOAD_CHUNK: usize = 5_000;

/// The in-memory matching state.
pub struct Catalog {
    index: RwLock<Arc<LiveIndex>>,
    state: RwLock<State>,
    seen: std::sync::Mutex<Seen>,
    loaded: AtomicBool,
    snapshot_path: std::sync::Mutex<Option<PathBuf>>,
    snapshot_seq: AtomicI64,
    max_replay: AtomicI64,
    /// How long a gap is waited for ([`GAP_PATIENCE`]), in ms.
    gap_patience_ms: AtomicI64,
    /// Held while changes are applied (see [`Catalog::lock_apply`]).
    apply_lock: tokio::sync::Mutex<()>,
    /// Whether this catalog keeps the index journal (owns its data directory).
    journaling: AtomicBool,
    journal: crate::journal::Journal,
    /// One snapshot written at a time.
    snapshot_lock: tokio::sync::Mutex<()>,
    last_load: std::sync::Mutex<LoadStats>,
    /// Time (ms) of the last successful poll.
    pub last_refresh_ms: AtomicI64,
    /// Set while a fold into one segment runs ([`Catalog::compact_index`]).
    compacting: Arc<AtomicBool>,
    /// The index's insert count at the last idle check
    /// ([`Catalog::compact_index_when_idle`]).
    idle_mark: AtomicU64,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// An empty, unloaded catalog.
    pub fn new() -> Catalog {
        Catalog {
            index: RwLock::new(Arc::new(LiveIndex::new())),
            state: RwLock::new(State {
                banks: HashMap::new(),
                disabled: HashMap::new(),
                videos: HashMap::new(),
                frame_extras: Arc::new(LiveIndex::new()),
            }),
            seen: std::sync::Mutex::new(Seen::default()),
            loaded: AtomicBool::new(false),
            snapshot_path: std::sync::Mutex::new(None),
            snapshot_seq: AtomicI64::new(0),
            max_replay: AtomicI64::new(MAX_REPLAY),
            gap_patience_ms: AtomicI64::new(GAP_PATIENCE.as_millis() as i64),
            apply_lock: tokio::sync::Mutex::new(()),
            journaling: AtomicBool::new(false),
            journal: crate::journal::Journal::default(),
            snapshot_lock: tokio::sync::Mutex::new(()),
            last_load: std::sync::Mutex::new(LoadStats::default()),
            last_refresh_ms: AtomicI64::new(0),
            compacting: Arc::new(AtomicBool::new(false)),
            idle_mark: AtomicU64::new(0),
        }
    }

    fn index(&self) -> Arc<LiveIndex> {
        Arc::clone(&self.index.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Folds the index's segments, pending inserts and removals into one
    /// segment now, blocking the caller (searches go on). Background builds
    /// fold the newest segments on their own; a benchmark calls this so that
    /// none runs beside what it times.
    pub fn merge_index(&self) {
        self.index().merge();
    }

    /// Folds the index into one segment on a thread of its own, if it is
    /// [fragmented](LiveIndex::fragmented): after a bulk load (an import
    /// job) left several segments, each of which a search probes, holding
    /// at least a sixteenth of the oldest (docs/benchmarks/serve.md, "Index
    /// segments instead of one index rebuilt at each sixteenth").
    /// One fold runs at a time; a call while one runs does nothing.
    pub fn compact_index(&self) {
        let ix = self.index();
        if ix.fragmented() && !self.compacting.swap(true, Ordering::AcqRel) {
            let compacting = Arc::clone(&self.compacting);
            std::thread::spawn(move || {
                ix.merge();
                compacting.store(false, Ordering::Release);
            });
        }
    }

    /// [`Catalog::compact_index`] once the index has taken no insert since
    /// the last call: the refresh loop calls this each poll, so a replica
    /// that applied another node's import, or a node whose single writes
    /// left segments, folds them when the changes stop, not in the middle
    /// of a load (where a fold of the whole index at each poll would cost
    /// more than the segments save).
    pub fn compact_index_when_idle(&self) {
        let mark = self.index().inserted();
        if self.idle_mark.swap(mark, Ordering::AcqRel) == mark {
            self.compact_index();
        }
    }

    /// Indexed segments of the PDQ index (each probed by every search).
    pub fn index_segments(&self) -> usize {
        self.index().segments()
    }

    /// Whether the first full load finished.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Index entries (photo hashes and video frames) and entries not yet merged.
    pub fn index_size(&self) -> (usize, usize) {
        let ix = self.index();
        (ix.len(), ix.pending())
    }

    /// The highest change applied without gaps below it.
    pub fn applied_seq(&self) -> i64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).floor
    }

    /// Whether a change is in this node's index (applied, or a gap given up on).
    pub fn has_applied(&self, seq: i64) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seq <= seen.floor || seen.above.contains(&seq)
    }

    /// Bank info by id.
    pub fn bank(&self, id: i64) -> Option<BankInfo> {
        self.state().banks.get(&id).cloned()
    }

    /// Names of every bank this node knows.
    pub fn bank_names(&self) -> HashSet<String> {
        self.state()
            .banks
            .values()
            .map(|b| b.name.to_string())
            .collect()
    }

    /// Where this node keeps its index snapshot (none: always load from the store).
    pub fn set_snapshot_path(&self, path: PathBuf) {
        *self.snapshot_path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
    }

    /// A snapshot further behind the store than `n` changes is not
    /// replayed at load (default [`MAX_REPLAY`]).
    pub fn set_max_replay(&self, n: i64) {
        self.max_replay.store(n, Ordering::Relaxed);
    }

    /// How long a gap in the change feed is waited for before the numbers
    /// missing in it are skipped (default [`GAP_PATIENCE`], 30 s).
    pub fn set_gap_patience(&self, patience: Duration) {
        self.gap_patience_ms
            .store(patience.as_millis() as i64, Ordering::Relaxed);
    }

    /// Keep the index journal beside the snapshot (see [`crate::journal`]):
    /// for the one catalog that owns the data directory. Any catalog reads
    /// the journal at load.
    pub fn set_journaling(&self, on: bool) {
        self.journaling.store(on, Ordering::Relaxed);
    }

    /// Whether the index journal is being kept (see
    /// [`Catalog::set_journaling`]): after a load from a snapshot of a build
    /// without journals, it starts with the next snapshot.
    pub fn journal_open(&self) -> bool {
        self.journal.is_on()
    }

    /// How the last load went.
    pub fn last_load(&self) -> LoadStats {
        self.last_load
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes the journal records of changes applied since the last flush
    /// (after a synced write to the store); call every [`JOURNAL_FLUSH`].
    /// Returns the bytes written.
    pub async fn flush_journal(&self, store: &Store) -> anyhow::Result<usize> {
        self.journal.flush(store).await
    }

    fn snapshot_path(&self) -> Option<PathBuf> {
        self.snapshot_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the matching state: from the index snapshot plus the changes
    /// since it, when there is a snapshot of this database's current
    /// generation; otherwise everything from the store. Returns whether the
    /// snapshot was used.
    pub async fn load(&self, store: &Store) -> anyhow::Result<bool> {
        let started = Instant::now();
        if let Some(path) = self.snapshot_path() {
            match self.load_snapshot(store, &path).await {
                Ok(Some(mut stats)) => {
                    stats.seconds = started.elapsed().as_secs_f64();
                    *self.last_load.lock().unwrap_or_else(|e| e.into_inner()) = stats;
                    return Ok(true);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("index snapshot {} not used: {e:#}", path.display()),
            }
        }
        self.load_full(store).await?;
        *self.last_load.lock().unwrap_or_else(|e| e.into_inner()) = LoadStats {
            seconds: started.elapsed().as_secs_f64(),
            ..LoadStats::default()
        };
        Ok(false)
    }

    async fn load_side(&self, store: &Store) -> anyhow::Result<Side> {
        let banks: HashMap<i64, BankInfo> = db::banks(store)
            .await?
            .iter()
            .map(|b| (b.id, bank_info(b)))
            .collect();
        let mut videos: HashMap<i64, Vec<FrameHash>> = HashMap::new();
        let mut video_bank: HashMap<i64, i64> = HashMap::new();
        db::catalog::for_each_video_frame(store, |cid, bank, frame| {
            video_bank.insert(cid, bank);
            videos.entry(cid).or_default().push(frame);
        })
        .await?;
        for frames in videos.values_mut() {
            frames.sort_by_key(|f| f.frame);
        }
        let mut frame_extras: HashMap<i64, Vec<(u64, KindHash)>> = HashMap::new();
        db::catalog::for_each_frame_extra(store, |cid, frame, e| {
            frame_extras.entry(cid).or_default().push((frame, e));
        })
        .await?;
        let disabled: HashMap<i64, Option<i64>> = db::catalog::disabled_content(store)
            .await?
            .into_iter()
            .collect();
        Ok(Side {
            banks,
            videos,
            frame_extras,
            video_bank,
            disabled,
        })
    }

    fn install(&self, live: Arc<LiveIndex>, side: Side, floor: i64) {
        let mut extras = side.frame_extras;
        let videos: HashMap<i64, (i64, Arc<Vec<FrameExtras>>)> = side
            .videos
            .into_iter()
            .map(|(k, v)| {
                let x = extras.remove(&k).unwrap_or_default();
                (k, (side.video_bank[&k], Arc::new(with_extras(v, x))))
            })
            .collect();
        let entries: Vec<(u64, [u8; 32])> = videos
            .iter()
            .flat_map(|(cid, (bank, frames))| frame_extra_entries(*bank, *cid, frames))
            .collect();
        let frame_extras = Arc::new(LiveIndex::from_index(Index::build(&entries)));
        {
            let mut st = self.state_mut();
            *self.index.write().unwrap_or_else(|e| e.into_inner()) = live;
            st.banks = side.banks;
            st.disabled = side.disabled;
            st.videos = videos;
            st.frame_extras = frame_extras;
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.floor = floor;
            seen.above.retain(|s| *s > floor);
            seen.count_apply(None);
        }
        self.loaded.store(true, Ordering::Release);
        self.last_refresh_ms.store(now_ms(), Ordering::Release);
    }

    async fn load_snapshot(&self, store: &Store, path: &Path) -> anyhow::Result<Option<LoadStats>> {
        let started = Instant::now();
        let meta_path = path.with_extension("json");
        let Ok(text) = std::fs::read_to_string(&meta_path) else {
            return Ok(None);
        };
        let m: SnapshotMeta = serde_json::from_str(&text)?;
        let (instance, generation) = (
            db::meta(store, "instance").await?,
            db::meta(store, "generation").await?,
        );
        if Some(&m.instance) != instance.as_ref() || Some(&m.generation) != generation.as_ref() {
            tracing::info!(
                "index snapshot is of another database or generation: loading from the store"
            );
            return Ok(None);
        }
        // The journal: what this node applied after the snapshot, as far as
        // it was written, up to the first record of a change the store does
        // not hold (lost with a crash the journal survived).
        let latest = db::catalog::latest_change(store).await?;
        let t = Instant::now();
        let mut stats = LoadStats {
            from_snapshot: true,
            ..LoadStats::default()
        };
        // Read and folded off the runtime: millions of entries after a long
        // import. Meanwhile a second blocking task maps the snapshot and
        // builds its id table (a pass and a sort over every entry): at 10M
        // entries each is a large part of a restart, and a restart has
        // two cores (docs/benchmarks/serve.md).
        let read = {
            let (path, id, seq) = (path.to_path_buf(), m.journal, m.seq);
            tokio::task::spawn_blocking(move || {
                id.and_then(|id| crate::journal::read(&path, id))
                    .map(|(jpath, j)| JournalRead::of(jpath, j, latest, seq))
            })
        };
        let opened = {
            let (p, entries) = (path.to_path_buf(), m.entries);
            tokio::task::spawn_blocking(move || -> anyhow::Result<LiveIndex> {
                let index = Index::open(&p)?;
                anyhow::ensure!(
                    index.len() as u64 == entries,
                    "snapshot has {} entries, its metadata says {entries}",
                    index.len(),
                );
                Ok(LiveIndex::from_index(index))
            })
        };
        let read = read.await?;
        let mut covered = Seen {
            floor: m.seq,
            ..Seen::default()
        };
        let (mut found, mut folded) = (None, (Vec::new(), Vec::new()));
        if let Some(r) = read {
            if r.dropped > 0 {
                tracing::warn!(
                    "index journal: {} records name changes the store does not hold \
                     (lost in a crash?); they are dropped",
                    r.dropped
                );
            }
            stats.journal_records = r.records;
            stats.journal_dropped = r.dropped;
            stats.journal_entries = r.folded.1.len();
            (covered, found, folded) = (r.covered, Some((r.path, r.valid_len)), r.folded);
        }
        stats.journal_s = t.elapsed().as_secs_f64();
        // What is left for the store: the changes after the snapshot that no
        // journal record covers. Replaying a change costs a row read; past a
        // backlog, reading every hash at once is faster. (The snapshot's
        // task then finishes on its own and is dropped.)
        let backlog = db::catalog::changes_since(store, covered.floor).await?;
        if backlog > self.max_replay.load(Ordering::Relaxed) {
            tracing::info!(
                "index snapshot and journal are {backlog} changes behind the store: loading from the store"
            );
            return Ok(None);
        }
        tracing::info!(
            "loading the index snapshot ({} entries), {} journal records, {backlog} changes to replay",
            m.entries,
            stats.journal_records
        );
        let t = Instant::now();
        let side = self.load_side(store).await?;
        let live = opened.await??;
        let live = tokio::task::spawn_blocking(move || {
            live.replace(&folded.0, &folded.1);
            Arc::new(live)
        })
        .await?;
        self.install(live, side, m.seq);
        self.adopt(covered);
        stats.index_s = t.elapsed().as_secs_f64();
        // Changes replayed from the store below are journaled as they apply.
        if self.journaling.load(Ordering::Relaxed)
            && let Some(id) = m.journal
            && let Err(e) = self.journal.resume(path, id, found).await
        {
            tracing::warn!("the index journal cannot be written: {e:#}");
        }
        let t = Instant::now();
        let mut told = Instant::now();
        loop {
            let n = self.refresh(store).await?;
            stats.replayed += n;
            if n == 0 {
                break;
            }
            if told.elapsed() > Duration::from_secs(5) {
                told = Instant::now();
                tracing::info!("replaying changes: {} of about {backlog}", stats.replayed);
            }
        }
        stats.replay_s = t.elapsed().as_secs_f64();
        tracing::info!(
            "index loaded from snapshot: {} entries, {} journal records ({} entries, read in \
             {:.2} s), index ready in {:.2} s, {} changes replayed in {:.2} s; {:.2} s in all",
            m.entries,
            stats.journal_records,
            stats.journal_entries,
            stats.journal_s,
            stats.index_s,
            stats.replayed,
            stats.replay_s,
            started.elapsed().as_secs_f64()
        );
        Ok(Some(stats))
    }

    /// Writes the index snapshot (merged index, then its metadata), if this
    /// node has a snapshot path, and starts the journal that follows it.
    /// Searches go on meanwhile.
    pub async fn save_snapshot(&self, store: &Store) -> anyhow::Result<()> {
        let Some(path) = self.snapshot_path() else {
            return Ok(());
        };
        if !self.is_loaded() {
            return Ok(());
        }
        let _one_at_a_time = self.snapshot_lock.lock().await;
        let started = Instant::now();
        // Changes applied from here on go to the new snapshot's journal (and
        // perhaps into the snapshot too: replaying them again is harmless).
        let journal = if self.journaling.load(Ordering::Relaxed) {
            let id: u64 = rand::random();
            self.journal.rotate(store, &path, id).await?;
            Some(id)
        } else {
            None
        };
        let written = self.write_snapshot(store, &path, journal).await;
        if let Some(id) = journal {
            match &written {
                Ok(_) => self.journal.settle(&path, id).await?,
                Err(_) => self.journal.abandon(id).await,
            }
        }
        let (seq, entries) = written?;
        self.snapshot_seq.store(seq, Ordering::Release);
        tracing::info!(
            "index snapshot written: {entries} entries at change {seq} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Writes the snapshot file and its metadata (naming `journal`); returns
    /// the change sequence it holds and its entries.
    async fn write_snapshot(
        &self,
        store: &Store,
        path: &Path,
        journal: Option<u64>,
    ) -> anyhow::Result<(i64, u64)> {
        // Read before the index: changes after these are replayed at load.
        let seq = self.applied_seq();
        // Import batches commit without a sync of their own (SQLite
        // `synchronous = NORMAL`, `api::imports`): a synced write makes every
        // change up to `seq` durable before the snapshot records it.
        db::catalog::sync(store).await?;
        let instance = db::meta(store, "instance").await?.unwrap_or_default();
        let generation = db::meta(store, "generation").await?.unwrap_or_default();
        let live = self.index();
        let snapshot_path = path.to_path_buf();
        let entries = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let base = live.snapshot();
            base.save(&snapshot_path)?;
            let m = SnapshotMeta {
                instance,
                generation,
                seq,
                entries: base.len() as u64,
                journal,
            };
            let meta_path = snapshot_path.with_extension("json");
            let tmp = meta_path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&m)?)?;
            std::fs::rename(&tmp, &meta_path)?;
            Ok(m.entries)
        })
        .await??;
        Ok((seq, entries))
    }

    /// The change sequence of the last snapshot written (or 0).
    pub fn snapshot_seq(&self) -> i64 {
        self.snapshot_seq.load(Ordering::Acquire)
    }

    /// Reads everything from the store and swaps it in.
    pub async fn load_full(&self, store: &Store) -> anyhow::Result<()> {
        let started = Instant::now();
        // Changes after this point are replayed by `refresh` (idempotently).
        let max_seq = db::catalog::latest_change(store).await?;
        let mut entries: Vec<(u64, [u8; 32])> = Vec::new();
        let mut told = Instant::now();
        // PDQ signal rows, then the hashes content rows carry (store module
        // `carried`): each paged by its own ids.
        for carried in [false, true] {
            let mut after = 0i64;
            loop {
                let page = if carried {
                    db::carried_page(store, after).await?
                } else {
                    db::signal_page(store, "pdq", after).await?
                };
                let Some(page) = page else { break };
                if told.elapsed() > Duration::from_secs(5) {
                    told = Instant::now();
                    tracing::info!(
                        "loading the index from the store: {} hashes read",
                        entries.len()
                    );
                }
                after = page.last;
                for row in page.rows() {
                    let (c, b, v) = row.map_err(|e| anyhow::anyhow!(e))?;
                    let hash: PdqHash = v
                        .parse()
                        .map_err(|e| anyhow::anyhow!("stored PDQ hash {v:?}: {e}"))?;
                    entries.push((entry_id(false, b, c), *hash.as_bytes()));
                }
            }
        }
        entries.extend(crate::extras::load_all(store).await?);
        let side = self.load_side(store).await?;
        for (cid, frames) in &side.videos {
            for h in bulwark_vpdq::prepare(frames, 0) {
                entries.push((entry_id(true, side.video_bank[cid], *cid), *h.as_bytes()));
            }
        }
        let n = entries.len();
        let read_s = started.elapsed().as_secs_f64();
        let live = tokio::task::spawn_blocking(move || {
            Arc::new(LiveIndex::from_index(Index::build(&entries)))
        })
        .await?;
        let floor = self.applied_seq().max(max_seq);
        self.install(live, side, floor);
        tracing::info!(
            "index loaded: {n} entries in {:.2} s ({read_s:.2} s reading the store)",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Serialises applying changes to this node's index. Each apply reads
    /// the database only once the previous apply is done, so when two writers
    /// change the same content the last apply to run reads the state both
    /// left and the index cannot keep the older one. A writer that indexes
    /// what it wrote from memory ([`Catalog::apply_fresh`]) takes this after
    /// its commit and re-reads its rows if a later change to them got here
    /// first.
    async fn lock_apply(&self) -> ApplyGuard<'_> {
        ApplyGuard {
            _held: self.apply_lock.lock().await,
        }
    }

    /// Applies changes (from a local write, or read from the `changes` table).
    /// Idempotent: re-reads the current state of every bank and content named.
    pub async fn apply(
        &self,
        store: &Store,
        changes: &[(i64, Option<i64>, Option<i64>)],
    ) -> anyhow::Result<()> {
        let guard = self.lock_apply().await;
        self.apply_locked(&guard, store, changes).await
    }

    /// Indexes content that the caller has just inserted and committed: new
    /// rows, enabled, with plain signals only (no video frames, no extra
    /// hashes), each with its PDQ hash if it has one. Nothing is re-read from
    /// the database: for a list import this was most of the time per line.
    /// `changes` are the change rows written for them.
    ///
    /// The caller takes `mark` ([`Catalog::apply_mark`]) before its commit
    /// and does not hold the apply lock across the commit (single writes
    /// would wait for it). So that a later change to these rows still wins:
    /// if an apply since `mark` touched one of these content items (a write
    /// to a new row right after the commit, the refresh loop reading these
    /// change rows) or was a load, the rows are re-read as
    /// [`Catalog::apply`] does; otherwise every later change to them is
    /// applied after this one and re-reads them. Whatever was applied
    /// before the commit could not see these rows, and applies of other
    /// content since the mark (single writes beside an import) leave them
    /// alone.
    pub async fn apply_fresh(
        &self,
        store: &Store,
        mark: u64,
        changes: &[(i64, Option<i64>, Option<i64>)],
        fresh: &[(i64, i64, PdqHash)],
    ) -> anyhow::Result<()> {
        let guard = self.lock_apply().await;
        if changes.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<i64> = changes.iter().filter_map(|c| c.2).collect();
        ids.sort_unstable();
        let touched = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .touched_since(mark, &ids);
        if touched {
            return self.apply_locked(&guard, store, changes).await;
        }
        let index = self.index();
        let entries: Vec<(u64, [u8; 32])> = fresh
            .iter()
            .map(|&(bank, cid, h)| (entry_id(false, bank, cid), *h.as_bytes()))
            .collect();
        index.replace(&[], &entries);
        self.journal_record(changes, &[], &entries);
        self.mark_seen(changes);
        Ok(())
    }

    /// Changes how often anything is applied to (or loaded into) the index;
    /// see [`Catalog::apply_fresh`].
    pub fn apply_mark(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).applies
    }

    /// Takes the changes a journal covered as applied (at load, after
    /// [`Catalog::install`]), without counting an apply.
    fn adopt(&self, covered: Seen) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.floor = seen.floor.max(covered.floor);
        seen.above.extend(covered.above);
        let floor = seen.floor;
        seen.above.retain(|s| *s > floor);
        advance(&mut seen);
    }

    fn mark_seen(&self, changes: &[(i64, Option<i64>, Option<i64>)]) {
        let ids: Vec<i64> = changes.iter().filter_map(|c| c.2).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.count_apply(Some(ids));
        for &(seq, _, _) in changes {
            if seq > seen.floor {
                seen.above.insert(seq);
            }
        }
        advance(&mut seen);
    }

    async fn apply_locked(
        &self,
        _guard: &ApplyGuard<'_>,
        store: &Store,
        changes: &[(i64, Option<i64>, Option<i64>)],
    ) -> anyhow::Result<()> {
        let mut bank_ids = HashSet::new();
        let mut contents: Vec<(i64, Option<i64>)> = Vec::new();
        for &(_, bank, content) in changes {
            match (bank, content) {
                (b, Some(c)) => contents.push((c, b)),
                (Some(b), None) => {
                    bank_ids.insert(b);
                }
                (None, None) => {}
            }
        }
        let mut rebuild = false;
        for b in bank_ids {
            let row = db::catalog::bank_by_id(store, b).await?;
            let mut st = self.state_mut();
            match row {
                Some(r) => {
                    st.banks.insert(b, bank_info(&r));
                }
                None => {
                    // Its entries are filtered out from now on (bank ids are
                    // never reused) and dropped by the rebuild below.
                    rebuild |= st.banks.remove(&b).is_some();
                }
            }
        }
        contents.sort_unstable();
        contents.dedup();
        let (mut gone, mut added) = (Vec::new(), Vec::new());
        for chunk in contents.chunks(RELOAD_CHUNK) {
            self.reload_contents(store, chunk, &mut gone, &mut added)
                .await?;
        }
        self.journal_record(changes, &gone, &added);
        self.mark_seen(changes);
        if rebuild {
            self.load_full(store).await?;
        }
        Ok(())
    }

    /// Journals an applied change (see [`crate::journal`]).
    fn journal_record(
        &self,
        changes: &[(i64, Option<i64>, Option<i64>)],
        removes: &[u64],
        inserts: &[(u64, [u8; 32])],
    ) {
        if self.journal.is_on() {
            let seqs: Vec<i64> = changes.iter().map(|c| c.0).collect();
            self.journal.record(&seqs, removes, inserts);
        }
    }

    /// Re-reads `chunk`'s content items and sets their index entries to
    /// what is stored; adds the ids dropped to `gone` and the entries added
    /// to `added` (for the journal).
    async fn reload_contents(
        &self,
        store: &Store,
        chunk: &[(i64, Option<i64>)],
        gone_out: &mut Vec<u64>,
        added: &mut Vec<(u64, [u8; 32])>,
    ) -> anyhow::Result<()> {
        let ids: Vec<i64> = chunk.iter().map(|(c, _)| *c).collect();
        let rows = db::catalog::indexed_content(store, &ids).await?;
        let frame_rows = db::catalog::frames_of_contents(store, &ids).await?;
        let extras = crate::extras::load_of(store, &ids).await?;
        let mut frame_extras: HashMap<i64, Vec<(u64, KindHash)>> = HashMap::new();
        for (cid, frame, e) in db::catalog::frame_extras_of_contents(store, &ids).await? {
            frame_extras.entry(cid).or_default().push((frame, e));
        }
        let mut frames: HashMap<i64, Vec<FrameHash>> = HashMap::new();
        for (cid, f) in frame_rows {
            frames.entry(cid).or_default().push(f);
        }
        let index = self.index();
        let mut st = self.state_mut();
        // Drop what this node holds for each content, then add what is stored
        // now. One removal pass for the chunk: per-id removals each scan the
        // index's append segment, which made imports quadratic.
        let mut gone = Vec::new();
        let mut frames_gone = Vec::new();
        let bank_of: HashMap<i64, i64> = rows.iter().map(|r| (r.id, r.bank_id)).collect();
        for &(cid, bank) in chunk {
            let bank = bank.or_else(|| bank_of.get(&cid).copied());
            if let Some(b) = bank {
                gone.push(entry_id(false, b, cid));
                gone.push(entry_id(true, b, cid));
                gone.extend(crate::extras::all_ids(b, cid));
            }
            st.disabled.remove(&cid);
            if let Some((b, _)) = st.videos.remove(&cid) {
                frames_gone.push(entry_id(true, b, cid));
            }
        }
        st.frame_extras.remove_many(&frames_gone);
        let mut ins: Vec<(u64, [u8; 32])> = Vec::new();
        for r in &rows {
            let (cid, bank) = (r.id, r.bank_id);
            if !r.enabled {
                st.disabled.insert(cid, r.disabled_until);
            }
            if let Some(v) = &r.pdq {
                let h: PdqHash = v
                    .parse()
                    .map_err(|e| anyhow::anyhow!("stored PDQ hash {v:?}: {e}"))?;
                ins.push((entry_id(false, bank, cid), *h.as_bytes()));
            }
            if let Some(f) = frames.remove(&cid) {
                for h in bulwark_vpdq::prepare(&f, 0) {
                    ins.push((entry_id(true, bank, cid), *h.as_bytes()));
                }
                let x = frame_extras.remove(&cid).unwrap_or_default();
                let f = with_extras(f, x);
                for (id, code) in frame_extra_entries(bank, cid, &f) {
                    st.frame_extras.insert(id, code);
                }
                st.videos.insert(cid, (bank, Arc::new(f)));
            }
        }
        ins.extend(extras);
        // Searches see the old entries or the new, never neither.
        index.replace(&gone, &ins);
        gone_out.extend(gone);
        added.extend(ins);
        Ok(())
    }

    /// Reads and applies other replicas' changes.
    pub async fn refresh(&self, store: &Store) -> anyhow::Result<usize> {
        let floor = self.applied_seq();
        let rows = db::catalog::changes_after(store, floor).await?;
        let mut todo = Vec::new();
        let mut present = Vec::new();
        {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            for r in &rows {
                present.push(r.seq);
                if !seen.above.contains(&r.seq) {
                    todo.push((r.seq, r.bank_id, r.content_id));
                }
            }
        }
        let n = todo.len();
        if !todo.is_empty() {
            self.apply(store, &todo).await?;
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            advance(&mut seen);
            // Gaps: something above the floor exists but floor + 1 does not.
            let next = seen.above.first().copied();
            match next {
                Some(next) if next > seen.floor + 1 => {
                    // A gap noticed before has filled, and this is another.
                    if seen.gap.is_some_and(|(_, end)| end <= seen.floor + 1) {
                        seen.gap = None;
                    }
                    let (since, end) = *seen.gap.get_or_insert((Instant::now(), next));
                    let patience = self.gap_patience_ms.load(Ordering::Relaxed);
                    if since.elapsed().as_millis() as i64 >= patience {
                        if end - 1 > seen.floor + 1 {
                            tracing::warn!(
                                "changes {} to {} never appeared; skipping them",
                                seen.floor + 1,
                                end - 1
                            );
                        } else {
                            tracing::warn!("change {} never appeared; skipping it", seen.floor + 1);
                        }
                        seen.floor = end - 1;
                        seen.gap = None;
                        advance(&mut seen);
                    }
                }
                _ => seen.gap = None,
            }
        }
        self.last_refresh_ms.store(now_ms(), Ordering::Release);
        Ok(n)
    }

    fn live(st: &State, content_id: i64, now: i64) -> bool {
        match st.disabled.get(&content_id) {
            None => true,
            Some(None) => false,
            Some(Some(until)) => *until <= now,
        }
    }

    /// Every enabled banked photo hash or video frame within each bank's
    /// threshold of `hash`, one hit per content item (its closest entry).
    /// `banks`: only these bank names.
    pub fn search(&self, hash: &PdqHash, banks: Option<&HashSet<String>>) -> Vec<Hit> {
        let radius = self.radius(banks);
        let Some(radius) = radius else {
            return Vec::new();
        };
        let matches = self.index().search(hash.as_bytes(), radius);
        let st = self.state();
        let now = now_ms();
        let mut best: HashMap<i64, Hit> = HashMap::new();
        for m in matches {
            if m.id & crate::extras::EXTRA_BIT != 0 {
                // Banked extra hashes are searched by `search_multi` only.
                continue;
            }
            let (frame, bank_id, cid) = unpack(m.id);
            let Some(b) = st.banks.get(&bank_id) else {
                continue;
            };
            if !b.enabled || m.distance > b.threshold || !Self::live(&st, cid, now) {
                continue;
            }
            if banks.is_some_and(|set| !set.contains(&*b.name)) {
                continue;
            }
            let e = best.entry(cid).or_insert_with(|| Hit {
                bank: Arc::clone(&b.name),
                content_id: cid,
                distance: m.distance,
                video_frame: frame,
            });
            if m.distance < e.distance {
                e.distance = m.distance;
            }
        }
        let mut out: Vec<Hit> = best.into_values().collect();
        out.sort_by(|a, b| {
            (a.distance, &a.bank, a.content_id).cmp(&(b.distance, &b.bank, b.content_id))
        });
        out
    }

    /// [`Catalog::search`] for a query of known or unknown quality: hits in
    /// banks whose quality floor the query does not reach are dropped.
    pub fn search_usable(
        &self,
        hash: &PdqHash,
        quality: Option<u32>,
        banks: Option<&HashSet<String>>,
    ) -> Vec<Hit> {
        let mut hits = self.search(hash, banks);
        let st = self.state();
        hits.retain(|h| {
            st.banks
                .values()
                .find(|b| b.name == h.bank)
                .is_some_and(|b| pdq_usable(hash, quality, b.min_quality))
        });
        hits
    }

    /// The matches of a query's hashes (full and extras) against banked
    /// photo hashes and banked extras, comparing only the kind pairs
    /// `pairing` allows; one hit per content item, its closest pair (ties go
    /// to the earlier query hash). Each query hash must reach the bank's
    /// quality floor; video frames are not searched.
    pub fn search_multi(
        &self,
        query: &[bulwark_pdq::KindHash],
        pairing: bulwark_pdq::Pairing,
        banks: Option<&HashSet<String>>,
    ) -> Vec<MultiHit> {
        let Some(radius) = self.radius(banks) else {
            return Vec::new();
        };
        let codes: Vec<[u8; 32]> = query.iter().map(|q| *q.hash.as_bytes()).collect();
        let found = self.index().search_batch(&codes, radius);
        let st = self.state();
        let now = now_ms();
        let mut best: HashMap<i64, MultiHit> = HashMap::new();
        for (q, matches) in query.iter().zip(found) {
            for m in matches {
                let (kind, bank_id, cid) = match crate::extras::unpack(m.id) {
                    Some(x) => x,
                    None => match unpack(m.id) {
                        (false, b, c) => (bulwark_pdq::HashKind::Full, b, c),
                        (true, _, _) => continue,
                    },
                };
                if !pairing.allows(q.kind, kind) {
                    continue;
                }
                let Some(b) = st.banks.get(&bank_id) else {
                    continue;
                };
                if !b.enabled
                    || m.distance > b.threshold
                    || !Self::live(&st, cid, now)
                    || banks.is_some_and(|set| !set.contains(&*b.name))
                    || !pdq_usable(&q.hash, Some(q.quality), b.min_quality)
                {
                    continue;
                }
                if best.get(&cid).is_some_and(|h| h.hit.distance <= m.distance) {
                    continue;
                }
                best.insert(
                    cid,
                    MultiHit {
                        hit: Hit {
                            bank: Arc::clone(&b.name),
                            content_id: cid,
                            distance: m.distance,
                            video_frame: false,
                        },
                        query: q.kind,
                        query_hash: q.hash,
                        bank_kind: kind,
                    },
                );
            }
        }
        let mut out: Vec<MultiHit> = best.into_values().collect();
        out.sort_by(|a, b| {
            (a.hit.distance, &a.hit.bank, a.hit.content_id).cmp(&(
                b.hit.distance,
                &b.hit.bank,
                b.hit.content_id,
            ))
        });
        out
    }

    fn radius(&self, banks: Option<&HashSet<String>>) -> Option<u32> {
        self.state()
            .banks
            .values()
            .filter(|b| b.enabled && banks.is_none_or(|s| s.contains(&*b.name)))
            .map(|b| b.threshold)
            .max()
    }

    /// Banked videos that match `query` under the vPDQ rule (each bank's
    /// threshold as the frame distance): plainly, as python-threatexchange
    /// compares them, or else through frame extras on either side under the
    /// "both sides" pairing ([`VideoHit::via`]). Candidates are the banked
    /// videos with a frame in the index near one of the query's plain or
    /// extra frame hashes, and those with a banked frame extra near one of
    /// them (in an index of their own: the main index, which photo searches
    /// share, does not hold them).
    pub fn match_video(
        &self,
        query: &[FrameExtras],
        rule: &MatchRule,
        banks: Option<&HashSet<String>>,
    ) -> Vec<VideoHit> {
        let Some(radius) = self.radius(banks) else {
            return Vec::new();
        };
        let prepared = bulwark_vpdq::prepare_extras(query, rule.quality);
        let mut codes: Vec<[u8; 32]> = prepared
            .iter()
            .flatten()
            .map(|(_, h)| *h.as_bytes())
            .collect();
        codes.sort_unstable();
        codes.dedup();
        let found = self.index().search_batch(&codes, radius);
        let mut candidates: HashSet<(i64, i64)> = HashSet::new();
        for m in found.iter().flatten() {
            if m.id & crate::extras::EXTRA_BIT != 0 {
                continue;
            }
            let (frame, bank, cid) = unpack(m.id);
            if frame {
                candidates.insert((bank, cid));
            }
        }
        let st = self.state();
        // A low-quality banked extra may make a candidate; the rule below
        // leaves its frame out.
        for m in st
            .frame_extras
            .search_batch(&codes, radius)
            .iter()
            .flatten()
        {
            let (_, bank, cid) = unpack(m.id);
            candidates.insert((bank, cid));
        }
        let now = now_ms();
        let query_extras = query.iter().any(|f| !f.extras.is_empty());
        let mut out = Vec::new();
        for (bank_id, cid) in candidates {
            let Some(b) = st.banks.get(&bank_id) else {
                continue;
            };
            if !b.enabled
                || !Self::live(&st, cid, now)
                || banks.is_some_and(|s| !s.contains(&*b.name))
            {
                continue;
            }
            let Some((_, frames)) = st.videos.get(&cid) else {
                continue;
            };
            let rule = MatchRule {
                distance: b.threshold,
                ..*rule
            };
            let banked = bulwark_vpdq::prepare_extras(frames, rule.quality);
            // Plain frames only: equal to `match_videos` on them.
            let plain = bulwark_vpdq::match_prepared(&prepared, &banked, &rule, Pairing::FullOnly);
            let (r, via) = if plain.result.is_match {
                (plain.result, None)
            } else if query_extras || frames.iter().any(|f| !f.extras.is_empty()) {
                let x = bulwark_vpdq::match_prepared(&prepared, &banked, &rule, Pairing::Both);
                (x.result, x.via)
            } else {
                continue;
            };
            if r.is_match {
                out.push(VideoHit {
                    bank: Arc::clone(&b.name),
                    content_id: cid,
                    query_percent: r.query_percent,
                    compared_percent: r.compared_percent,
                    via,
                });
            }
        }
        out.sort_by(|a, b| {
            b.query_percent
                .total_cmp(&a.query_percent)
                .then(a.content_id.cmp(&b.content_id))
        });
        out
    }

    /// Filters exact (MD5/SHA-256) hits from the store by bank state.
    pub fn filter_exact(&self, hits: Vec<(i64, i64)>, banks: Option<&HashSet<String>>) -> Vec<Hit> {
        let st = self.state();
        let now = now_ms();
        hits.into_iter()
            .filter_map(|(bank_id, cid)| {
                let b = st.banks.get(&bank_id)?;
                (b.enabled
                    && Self::live(&st, cid, now)
                    && banks.is_none_or(|s| s.contains(&*b.name)))
                .then(|| Hit {
                    bank: Arc::clone(&b.name),
                    content_id: cid,
                    distance: 0,
                    video_frame: false,
                })
            })
            .collect()
    }
}

/// Proof that [`Catalog::lock_apply`] is held.
struct ApplyGuard<'a> {
    _held: tokio::sync::MutexGuard<'a, ()>,
}

/// Marks `seqs` applied: those next to the floor raise it, the rest wait
/// above it (sorted first, so a journal's millions of changes cost no set
/// insert each).
fn cover(seen: &mut Seen, seqs: &[i64]) {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    for seq in sorted {
        if seq == seen.floor + 1 {
            seen.floor = seq;
        } else if seq > seen.floor {
            seen.above.insert(seq);
        }
    }
    advance(seen);
}

fn advance(seen: &mut Seen) {
    while seen.above.remove(&(seen.floor + 1)) {
        seen.floor += 1;
    }
}

/// A banked video's frames with their stored extras (`extras`: frame
/// number, hash).
fn with_extras(frames: Vec<FrameHash>, extras: Vec<(u64, KindHash)>) -> Vec<FrameExtras> {
    let mut by_frame: HashMap<u64, Vec<KindHash>> = HashMap::new();
    for (f, e) in extras {
        by_frame.entry(f).or_default().push(e);
    }
    frames
        .into_iter()
        .map(|frame| FrameExtras {
            extras: by_frame.remove(&frame.frame).unwrap_or_default(),
            frame,
        })
        .collect()
}

fn bank_info(b: &BankRow) -> BankInfo {
    BankInfo {
        name: Arc::from(b.name.as_str()),
        threshold: b.threshold.clamp(0, 256) as u32,
        enabled: b.enabled,
        min_quality: b.min_quality.clamp(0, 100) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::{Seen, TOUCHED_IDS, TOUCHED_KEPT};

    /// An import batch's rows (sorted ids) are re-read only when an apply
    /// since its mark touched one of them, was a load, or is forgotten.
    #[test]
    fn only_an_apply_of_the_same_rows_or_a_load_since_the_mark_counts() {
        let mut seen = Seen::default();
        seen.count_apply(Some(vec![1, 2]));
        let mark = seen.applies;
        let batch = [10, 11, 12];
        assert!(!seen.touched_since(mark, &batch), "nothing since");
        seen.count_apply(Some(vec![3]));
        seen.count_apply(Some(vec![]));
        assert!(!seen.touched_since(mark, &batch), "other content");
        seen.count_apply(Some(vec![99, 11]));
        assert!(seen.touched_since(mark, &batch), "one of the batch's rows");
        assert!(!seen.touched_since(seen.applies, &batch), "a later mark");
        let mark = seen.applies;
        seen.count_apply(None);
        assert!(seen.touched_since(mark, &batch), "a load");
        // More applies than remembered: no longer known, so re-read.
        let mark = seen.applies;
        for k in 0..TOUCHED_KEPT {
            seen.count_apply(Some(vec![1000 + k as i64]));
        }
        assert!(!seen.touched_since(mark, &batch), "all remembered");
        seen.count_apply(Some(vec![5000]));
        assert!(seen.touched_since(mark, &batch), "the first one forgotten");
        assert_eq!(seen.touched.len(), TOUCHED_KEPT);
        // So many ids that older applies are forgotten, however few.
        let mark = seen.applies;
        seen.count_apply(Some(vec![7]));
        assert!(!seen.touched_since(mark, &batch));
        seen.count_apply(Some((0..TOUCHED_IDS as i64).map(|i| 20_000 + i).collect()));
        assert!(
            seen.touched_since(mark, &batch),
            "the ids' cap forgot the first"
        );
        assert_eq!(seen.touched.len(), 1);
        assert_eq!(seen.touched_ids, TOUCHED_IDS);
    }
}
