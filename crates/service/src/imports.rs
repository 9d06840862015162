//! Import jobs: [`create`] spools a list to the data directory and queues a
//! job; a worker ([`work`], or [`run_pending`]) imports it in batches. Each
//! batch is committed together with the job's checkpoint (byte offset, line
//! number, counts) in one transaction, so:
//!
//! - the job survives the client going away once the upload is complete;
//! - after a crash or restart the worker resumes from the last commit, and no
//!   line is imported twice or lost;
//! - importing the same list again is idempotent (content already in the bank
//!   is counted as a duplicate), and a client that retries its request with
//!   the same `Idempotency-Key` gets the first job back.
//!
//! A job is run by the service that received it (its spool file is in that
//! service's data directory). [`get`] shows progress, [`cancel`] cancels
//! (what was committed stays). The rows are in [`bulwark_store::imports`].

use std::collections::HashSet;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bulwark_banks::Format;
use bulwark_store::imports::{self as jobs, DONE, FAILED, JobRow, QUEUED, RUNNING};
use bulwark_store::{self as db, Backend, Store};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::banks::by_name;
use crate::catalog::Catalog;
use crate::error::{Error, Kind, Result};
use crate::lists::{Batch, MAX_REJECTED_LISTED, MAX_SOURCE_CHARS, Rejected, Written, format_of};

/// Most records per committed batch (one transaction with the job's
/// checkpoint): large enough that the commit's fixed cost (an fsync, the
/// checkpoint, the index update) is spread thin.
pub const JOB_BATCH: usize = 2048;
/// Records per piece on SQLite: the reader parses the list in pieces of
/// this many records, and a batch is one or more pieces. 512 makes a piece
/// one `VALUES` statement per table (`db::insert_contents`; 500 took six).
/// Between pieces the batch commits early when a single write is waiting
/// for the write lock ([`Store::writers_waiting`]) or [`BATCH_TIME`] has
/// passed, so a single write waits for one piece, not for a whole batch.
pub const JOB_PIECE: usize = 512;

/// Records per piece on `backend`. PostgreSQL has no store-wide write lock
/// for a single write to wait on (a write to another bank never waits for
/// an import; one to the import's own bank waits for the batch's commit,
/// as its counter row is locked from the first piece on), so there a piece
/// is a whole batch: one statement of up to [`JOB_BATCH`] rows, whose
/// fixed cost (planning, the statement triggers) is spread over four times
/// as many rows (docs/benchmarks/serve.md, "Byte-ordered keys and one
/// statement a batch on PostgreSQL").
pub fn piece_records(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => JOB_PIECE,
        Backend::Postgres => JOB_BATCH,
    }
}

/// A batch adds no further piece after this long.
const BATCH_TIME: Duration = Duration::from_millis(40);
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
/// Jobs [`list`] answers unless asked for another number.
pub const DEFAULT_LIST: i64 = 50;
/// Most jobs [`list`] answers.
pub const MAX_LIST: i64 = 500;
/// Longest an import batch waits for single writes queued before it.
const MAX_YIELD: Duration = Duration::from_millis(200);
/// Longest a batch waits for SQLite's write lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(60);
/// How long the worker sleeps when there is nothing to do (a new job wakes
/// it sooner).
const IDLE: Duration = Duration::from_secs(5);

/// Wakes the worker when a job is queued.
static WAKE: Notify = Notify::const_new();

/// Where a service spools the lists of its import jobs, and how large a
/// list may be.
#[derive(Debug, Clone)]
pub struct Spool {
    /// The spool directory (made when needed).
    pub dir: PathBuf,
    /// Longest list, in bytes.
    pub max_bytes: u64,
}

/// A job as the API shows it. Fields are in sorted order, as the `json!`
/// builder this replaced wrote them (serde_json sorts its maps), so the
/// JSON is the same byte for byte.
#[derive(Debug, Clone, Serialize)]
pub struct ImportJob {
    /// Records added.
    pub added: i64,
    /// The bank's name.
    pub bank: String,
    /// Bytes read so far.
    pub bytes_done: i64,
    /// Size of the list.
    pub bytes_total: i64,
    /// RFC 3339.
    pub created_at: String,
    /// Records the bank already held.
    pub duplicates: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// `lines`, `csv` or `jsonl`.
    pub format: String,
    /// Its id.
    pub id: String,
    /// Lines read so far.
    pub lines: i64,
    /// The first [`MAX_REJECTED_LISTED`] rejected lines ([`get`] and
    /// [`cancel`] only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<Rejected>>,
    /// Lines rejected.
    pub rejected_count: i64,
    /// Seconds from its creation to its end (or to now).
    pub seconds: f64,
    /// Which list it is, as the caller named it.
    pub source: Option<String>,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl ImportJob {
    /// The job of row `r`, with its rejected lines if `with_rejected`.
    pub fn new(r: &JobRow, with_rejected: bool) -> ImportJob {
        ImportJob {
            added: r.added,
            bank: r.bank.clone(),
            bytes_done: r.bytes_done,
            bytes_total: r.bytes_total,
            created_at: db::rfc3339(r.created_at),
            duplicates: r.duplicates,
            error: r.error.clone(),
            finished_at: r.finished_at.map(db::rfc3339),
            format: r.format.clone(),
            id: r.id.clone(),
            lines: r.lines,
            rejected: with_rejected.then(|| rejected_of(r)),
            rejected_count: r.rejected_count,
            seconds: (r.finished_at.unwrap_or_else(db::now_ms) - r.created_at) as f64 / 1e3,
            source: r.source.clone(),
            status: r.status.clone(),
            updated_at: db::rfc3339(r.updated_at),
        }
    }
}

/// The rejected lines listed with a job.
fn rejected_of(r: &JobRow) -> Vec<Rejected> {
    serde_json::from_str(&r.rejected).unwrap_or_default()
}

/// Jobs, newest first ([`list`]).
#[derive(Debug, Clone, Serialize)]
pub struct ImportJobs {
    /// The jobs.
    pub imports: Vec<ImportJob>,
}

/// What [`create`] did.
#[derive(Debug, Clone)]
pub struct Created {
    /// The job.
    pub job: ImportJob,
    /// It is new (queued now); `false` when the caller's `Idempotency-Key`
    /// named a job it created before.
    pub new: bool,
}

/// What [`create`] is asked for.
#[derive(Debug, Clone, Default)]
pub struct NewJob<'a> {
    /// The bank's name.
    pub bank: &'a str,
    /// The list format (`lines` when none is named).
    pub format: Option<&'a str>,
    /// Which list it is (at most [`MAX_SOURCE_CHARS`]).
    pub source: Option<String>,
    /// The request's `Idempotency-Key`, as sent: 1 to
    /// [`MAX_IDEMPOTENCY_KEY`] visible ASCII characters.
    pub idempotency_key: Option<&'a [u8]>,
}

/// An `Idempotency-Key` as text, if it is 1 to [`MAX_IDEMPOTENCY_KEY`]
/// visible ASCII characters (tab allowed, as in an HTTP header value).
fn idempotency_key(v: &[u8]) -> Result<&str> {
    let bad = || {
        Error::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible characters"
        ))
    };
    let visible = v.iter().all(|b| (32..127).contains(b) || *b == b'\t');
    if v.is_empty() || v.len() > MAX_IDEMPOTENCY_KEY || !visible {
        return Err(bad());
    }
    std::str::from_utf8(v).map_err(|_| bad())
}

/// Removes a half-written spool file if the upload does not complete (the
/// client went away, the disk filled, the body was too large).
struct SpoolGuard(Option<PathBuf>);

impl Drop for SpoolGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Spools `body` (a list) and queues a job that imports it into
/// `new.bank`, created by `actor`. With an `Idempotency-Key` that `actor`
/// used before, answers that job instead (`new: false`) without reading
/// `body`. Audited as `import.create`.
pub async fn create<S, E>(
    store: &Store,
    spool: &Spool,
    actor: &str,
    new: NewJob<'_>,
    body: S,
) -> Result<Created>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let bank = by_name(store, new.bank).await?;
    let format = format_of(new.format)?;
    if new
        .source
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SOURCE_CHARS)
    {
        return Err(Error::bad_request(format!(
            "source is over {MAX_SOURCE_CHARS} characters"
        )));
    }
    let key = new.idempotency_key.map(idempotency_key).transpose()?;
    if let Some(key) = key
        && let Some(r) = jobs::by_idempotency_key(store, actor, key).await?
    {
        // The body of a retried request is not read again.
        return Ok(Created {
            job: ImportJob::new(&r, false),
            new: false,
        });
    }
    let id = db::random_hex();
    tokio::fs::create_dir_all(&spool.dir)
        .await
        .map_err(|e| Error::internal(format!("creating {}: {e}", spool.dir.display())))?;
    let path = spool.dir.join(format!("{id}.list"));
    let mut guard = SpoolGuard(Some(path.clone()));
    let total = write_spool(body, &path, spool.max_bytes).await?;
    let inserted = jobs::insert(
        store,
        &jobs::NewJob {
            id: &id,
            bank_id: bank.id,
            bank: &bank.name,
            format: format.name(),
            source: new.source.as_deref(),
            spool: &path.display().to_string(),
            idempotency_key: key,
            created_by: actor,
            bytes_total: total as i64,
        },
    )
    .await?;
    if !inserted {
        // A concurrent retry with the same key won the race.
        let r = jobs::by_idempotency_key(store, actor, key.unwrap_or(""))
            .await?
            .ok_or_else(|| Error::internal("an import job conflicted with none"))?;
        return Ok(Created {
            job: ImportJob::new(&r, false),
            new: false,
        });
    }
    guard.0 = None;
    // Unmarked: the job need not make room for its own creation (marked, its
    // first second ran one batch at a time on PostgreSQL).
    let mut tx = store.begin_unmarked().await?;
    db::audit(
        store,
        &mut tx,
        actor,
        "import.create",
        Some(&bank.name),
        None,
        json!({"job": id, "format": format.name(), "source": new.source, "bytes": total}),
    )
    .await?;
    tx.commit().await?;
    WAKE.notify_one();
    let r = jobs::get(store, &id)
        .await?
        .ok_or_else(|| Error::internal("the new job vanished"))?;
    Ok(Created {
        job: ImportJob::new(&r, false),
        new: true,
    })
}

/// Writes `body` to `path` and syncs it; its length. Over `max` bytes:
/// `too_large`.
async fn write_spool<S, E>(mut body: S, path: &Path, max: u64) -> Result<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| Error::internal(format!("creating {}: {e}", path.display())))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut total: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| Error::bad_request(format!("reading the request body: {e}")))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(Error::too_large(format!(
                "the list is over max_import_bytes ({max} bytes)"
            )));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))?;
    out.into_inner()
        .sync_all()
        .await
        .map_err(|e| Error::internal(format!("syncing {}: {e}", path.display())))?;
    Ok(total)
}

/// The job's row, or `not_found`.
async fn row(store: &Store, id: &str) -> Result<JobRow> {
    jobs::get(store, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no import job {id:?}")))
}

/// Job `id` with its progress and rejected lines.
pub async fn get(store: &Store, id: &str) -> Result<ImportJob> {
    Ok(ImportJob::new(&row(store, id).await?, true))
}

/// Up to `limit` jobs ([`DEFAULT_LIST`], at most [`MAX_LIST`]), of the bank
/// named `bank` if given, newest first.
pub async fn list(store: &Store, bank: Option<&str>, limit: Option<i64>) -> Result<ImportJobs> {
    let limit = limit.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    let rows = jobs::list(store, bank, limit).await?;
    Ok(ImportJobs {
        imports: rows.iter().map(|r| ImportJob::new(r, false)).collect(),
    })
}

/// Cancels a queued or running job (`conflict` if it has ended); batches
/// already committed stay. Audited as `import.cancel`.
pub async fn cancel(store: &Store, actor: &str, id: &str) -> Result<ImportJob> {
    let r = row(store, id).await?;
    let mut tx = store.begin().await?;
    if !jobs::cancel(store, &mut tx, id).await? {
        return Err(Error::conflict(format!("the job is already {}", r.status)));
    }
    db::audit(
        store,
        &mut tx,
        actor,
        "import.cancel",
        Some(&r.bank),
        None,
        json!({"job": id}),
    )
    .await?;
    tx.commit().await?;
    // A running job's worker removes its spool file at its next batch.
    if r.status == QUEUED {
        let _ = tokio::fs::remove_file(&r.spool).await;
    }
    let r = jobs::get(store, id)
        .await?
        .ok_or_else(|| Error::internal("the job vanished"))?;
    Ok(ImportJob::new(&r, true))
}

/// Runs queued jobs (and resumes interrupted ones) one at a time, oldest
/// first, forever: the service's import worker.
pub async fn work(store: Store, catalog: Arc<Catalog>) {
    loop {
        match run_pending(&store, &catalog).await {
            Ok(_) => {
                let _ = tokio::time::timeout(IDLE, WAKE.notified()).await;
            }
            Err(e) => {
                tracing::warn!("looking for import jobs: {}", e.message);
                tokio::time::sleep(IDLE).await;
            }
        }
    }
}

/// Runs every queued job and resumes every interrupted one whose spool file
/// is here ([`next_job`]), one at a time, oldest first; how many it ran. A
/// job that fails is marked `failed` with why. A job still pending after
/// its run (its end could not be recorded) is left for a later call.
pub async fn run_pending(store: &Store, catalog: &Catalog) -> Result<usize> {
    let mut ran = HashSet::new();
    while let Some(id) = next_job(store).await? {
        if !ran.insert(id.clone()) {
            break;
        }
        if let Err(e) = run(store, catalog, &id).await {
            tracing::warn!("import job {id} failed: {}", e.message);
            let _ = finish(store, &id, FAILED, Some(&e.message)).await;
        }
    }
    Ok(ran.len())
}

/// The oldest queued or interrupted job whose spool file is here.
pub async fn next_job(store: &Store) -> Result<Option<String>> {
    for (id, spool) in jobs::pending(store).await? {
        if tokio::fs::try_exists(&spool).await.unwrap_or(false) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Ends a pending job and removes its spool file.
async fn finish(store: &Store, id: &str, status: &str, error: Option<&str>) -> Result<()> {
    if let Some(spool) = jobs::finish(store, id, status, error).await? {
        let _ = tokio::fs::remove_file(spool).await;
    }
    Ok(())
}

/// Imports job `id` from its checkpoint to the end of its spool file, and
/// marks it done. An ended (or unknown) job is left as it is.
pub async fn run(store: &Store, catalog: &Catalog, id: &str) -> Result<()> {
    run_for(store, catalog, id, usize::MAX).await
}

/// [`run`], but stops after committing `max_batches` (at least one) batches
/// (of at most [`JOB_BATCH`] records), leaving the job running at its checkpoint as a
/// stopped worker would; a later [`run`] (or [`run_pending`]) resumes it
/// there.
///
/// On PostgreSQL the job writes two batches at once, from two connections
/// ([`two_at_once`]); after a lock conflict there, [`ALONE_AFTER_CONFLICT`]
/// batches one at a time ([`one_at_a_time`], as on SQLite), then two again.
pub async fn run_for(store: &Store, catalog: &Catalog, id: &str, max_batches: usize) -> Result<()> {
    let mut left = max_batches.max(1);
    let mut alone = 0;
    let mut first = true;
    loop {
        let Some((job, progress)) = open(store, id, first).await? else {
            return Ok(());
        };
        first = false;
        let (end, committed) = if store.backend == Backend::Postgres && alone == 0 {
            two_at_once(store, catalog, &job, progress, left).await?
        } else if store.backend == Backend::Postgres {
            one_at_a_time(store, catalog, &job, progress, alone.min(left)).await?
        } else {
            one_at_a_time(store, catalog, &job, progress, left).await?
        };
        left = left.saturating_sub(committed);
        match end {
            End::Done(p) => {
                finish(store, id, DONE, None).await?;
                catalog.compact_index();
                if p.added >= jobs::ANALYZE_AFTER_ADDED
                    && let Err(e) = jobs::analyze_after_import(store).await
                {
                    tracing::warn!("import job {id}: refreshing the statistics: {e}");
                }
                tracing::info!(
                    "import job {id}: {} lines, {} added, {} duplicates, {} rejected",
                    p.lines,
                    p.added,
                    p.duplicates,
                    p.rejected_count
                );
                return Ok(());
            }
            End::Cancelled => return Ok(()),
            End::Limit if left == 0 => return Ok(()),
            End::Limit => alone = 0,
            End::LockConflict => {
                tracing::warn!(
                    "import job {id}: a batch gave up waiting for a lock; the next \
                     {ALONE_AFTER_CONFLICT} batches are written one at a time"
                );
                alone = ALONE_AFTER_CONFLICT;
            }
        }
    }
}

/// Batches a job on PostgreSQL writes one at a time after a lock conflict
/// between two at once ([`run_for`]).
const ALONE_AFTER_CONFLICT: usize = 4;

/// A job being run: its row, bank and format.
struct Job {
    row: JobRow,
    bank: db::BankRow,
    format: Format,
}

/// Where a job stands: what its last committed batch recorded.
struct Progress {
    /// Byte offset after the last line read.
    offset: u64,
    /// Lines read.
    lines: usize,
    added: i64,
    duplicates: i64,
    rejected_count: i64,
    /// The first [`MAX_REJECTED_LISTED`] rejected lines.
    rejected: Vec<Rejected>,
}

impl Progress {
    /// Takes in a piece's reading position and rejected lines.
    fn read(&mut self, piece: &mut Parsed) {
        self.offset = piece.offset;
        self.lines = piece.lines;
        for (line, error) in piece.rejected.drain(..) {
            self.rejected_count += 1;
            if self.rejected.len() < MAX_REJECTED_LISTED {
                self.rejected.push(Rejected { line, error });
            }
        }
    }

    /// Records this progress as the job's checkpoint in `tx`, the batch's
    /// transaction; `listed_before`: rejected lines listed at the last
    /// checkpoint. False if the job was cancelled meanwhile.
    async fn record(
        &self,
        s: &Store,
        tx: &mut sqlx::AnyConnection,
        id: &str,
        listed_before: usize,
    ) -> Result<bool> {
        let rejected = if self.rejected.len() > listed_before {
            Some(serde_json::to_string(&self.rejected).map_err(Error::internal)?)
        } else {
            None
        };
        let at = jobs::Checkpoint {
            bytes_done: self.offset as i64,
            lines: self.lines as i64,
            added: self.added,
            duplicates: self.duplicates,
            rejected_count: self.rejected_count,
            rejected: rejected.as_deref(),
        };
        Ok(jobs::checkpoint(s, tx, id, &at).await?)
    }
}

/// How a run of batches ended.
enum End {
    /// The list was read to its end.
    Done(Progress),
    /// The job was cancelled; its spool file is gone.
    Cancelled,
    /// The number of batches asked for were committed.
    Limit,
    /// Two batches at once met a lock conflict ([`jobs::begin_apart`]);
    /// neither of the two in flight committed.
    LockConflict,
}

/// Job `id` and where it stands, if it is pending and its bank is there;
/// marks it running. `first`: the run's first call (says so when the job
/// resumes).
async fn open(s: &Store, id: &str, first: bool) -> Result<Option<(Job, Progress)>> {
    let Some(r) = jobs::get(s, id).await? else {
        return Ok(None);
    };
    if !r.is_pending() {
        return Ok(None);
    }
    // A bank of the same name made since is not the job's bank.
    let Some(bank) = db::bank_by_name(s, &r.bank)
        .await?
        .filter(|b| b.id == r.bank_id)
    else {
        return Err(Error::not_found(format!(
            "bank {:?} was deleted during the import",
            r.bank
        )));
    };
    let format = format_of(Some(&r.format))?;
    let progress = Progress {
        offset: r.bytes_done as u64,
        lines: r.lines as usize,
        added: r.added,
        duplicates: r.duplicates,
        rejected_count: r.rejected_count,
        rejected: rejected_of(&r),
    };
    if first && r.status == RUNNING {
        tracing::info!(
            "resuming import job {id} at line {} (byte {})",
            progress.lines,
            progress.offset
        );
    }
    jobs::start(s, id).await?;
    Ok(Some((
        Job {
            row: r,
            bank,
            format,
        },
        progress,
    )))
}

/// Reads the job's list from its checkpoint on a blocking thread, a batch
/// or two ahead of the writes, in pieces of `piece` records (`apart`: see
/// [`read_batches`]).
fn reader(
    job: &Job,
    progress: &Progress,
    piece: usize,
    apart: bool,
) -> tokio::sync::mpsc::Receiver<Result<Parsed, String>> {
    let (batches, parsed) = tokio::sync::mpsc::channel(2);
    let spool = job.row.spool.clone();
    let (offset, lines, format) = (progress.offset, progress.lines, job.format);
    tokio::task::spawn_blocking(move || {
        read_batches(&spool, offset, lines, format, piece, apart, batches)
    });
    parsed
}

/// Writes the job's batches one at a time from one connection, at most
/// `max_batches`; how it ended and how many batches it committed.
async fn one_at_a_time(
    s: &Store,
    catalog: &Catalog,
    job: &Job,
    mut progress: Progress,
    max_batches: usize,
) -> Result<(End, usize)> {
    let id = job.row.id.as_str();
    let mut conn = jobs::job_connection(s).await?;
    let per_piece = piece_records(s.backend);
    let mut parsed = reader(job, &progress, per_piece, false);
    let mut committed = 0;
    let Some(mut next) = parsed.recv().await else {
        return Err(Error::internal(
            "the import's reader stopped before the first batch",
        ));
    };
    loop {
        s.yield_to_writers(MAX_YIELD).await;
        // The batch's transaction, on the job's connection: on SQLite, its
        // `BEGIN IMMEDIATE` is retried every millisecond (see
        // `jobs::job_connection`).
        let waited = Instant::now();
        let (mut tx, mut marks) = loop {
            match jobs::begin_batch(s, &mut conn).await {
                Ok(begun) => break begun,
                Err(e) if jobs::is_busy(&e) && waited.elapsed() < LOCK_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let began = Instant::now();
        let listed_before = progress.rejected.len();
        let mut written = Written::default();
        let mut records = 0;
        let mut at_end;
        loop {
            let mut piece = next.map_err(Error::internal)?;
            progress.read(&mut piece);
            at_end = piece.at_end;
            records += piece.batch.len();
            let w = piece
                .batch
                .write(
                    s,
                    &mut tx,
                    marks.as_mut(),
                    &job.bank,
                    &job.row.created_by,
                    job.row.source.as_deref(),
                    job.format,
                )
                .await?;
            written.absorb(w);
            if at_end
                || records + per_piece > JOB_BATCH
                || s.writers_waiting() > 0
                || began.elapsed() >= BATCH_TIME
            {
                break;
            }
            // The next piece if the reader has it ready; else commit now.
            match parsed.try_recv() {
                Ok(p) => next = p,
                Err(_) => break,
            }
        }
        progress.added += written.added as i64;
        progress.duplicates += written.duplicates as i64;
        if !progress.record(s, &mut tx, id, listed_before).await? {
            // Cancelled meanwhile: this batch is not committed.
            drop(tx);
            let _ = tokio::fs::remove_file(&job.row.spool).await;
            return Ok((End::Cancelled, committed));
        }
        written.commit(s, catalog, tx, marks).await?;
        s.count_import_batch(false);
        committed += 1;
        if at_end {
            let _ = conn.close().await;
            return Ok((End::Done(progress), committed));
        }
        if committed >= max_batches {
            let _ = conn.close().await;
            return Ok((End::Limit, committed));
        }
        next = match parsed.recv().await {
            Some(p) => p,
            None => {
                return Err(Error::internal(
                    "the import's reader stopped before the end of the list",
                ));
            }
        };
    }
}

/// Writes the job's batches two at a time (PostgreSQL), at most
/// `max_batches`; how it ended and how many batches it committed.
///
/// Batches go to two connections (lanes) in turn. A lane writes its batch
/// (its statement runs while the other lane's does: the server works on
/// both at once, on two cores), then waits for its turn: the batch before
/// it has committed. Then it records the checkpoint, adds the batch's rows
/// to the bank's counters (which its statements left to it,
/// [`jobs::begin_apart`]) and commits, and hands the turn on. So batches
/// commit in order, and the checkpoint stays a prefix of the list. Two
/// batches in flight never insert the same key ([`read_batches`] takes a
/// batch's keys out of the next one), nor lock a counter row before their
/// turn; a lock wait that would still never end, through another
/// transaction, ends after 2 s ([`End::LockConflict`]).
async fn two_at_once(
    s: &Store,
    catalog: &Catalog,
    job: &Job,
    progress: Progress,
    max_batches: usize,
) -> Result<(End, usize)> {
    use tokio::sync::mpsc::channel;
    let (conn0, conn1) = (
        jobs::job_connection(s).await?,
        jobs::job_connection(s).await?,
    );
    let mut parsed = reader(job, &progress, JOB_BATCH, true);
    let (to0, pieces0) = channel(1);
    let (to1, pieces1) = channel(1);
    let dispatch = async move {
        let lanes = [to0, to1];
        let mut n = 0;
        while let Some(p) = parsed.recv().await {
            if lanes[n % 2].send(p).await.is_err() {
                break;
            }
            n += 1;
        }
    };
    // The turn: the job's progress, from the lane that committed last.
    let (turn0, turn_of0) = channel(1);
    let (turn1, turn_of1) = channel(1);
    turn0
        .try_send(progress)
        .map_err(|_| Error::internal("the first turn"))?;
    let committed = AtomicUsize::new(0);
    let lane = |conn, pieces, turn, next| Lane {
        s,
        catalog,
        job,
        max_batches,
        committed: &committed,
        conn,
        pieces,
        turn,
        next,
    };
    let (lane0, lane1) = (
        lane(conn0, pieces0, turn_of0, turn1),
        lane(conn1, pieces1, turn_of1, turn0),
    );
    // Both lanes run to their end: a lane that fails stops the other at
    // its next wait (its turn, its next batch), never inside its commit and
    // the index update after it.
    let ((), a, b) = tokio::join!(dispatch, lane0.run(), lane1.run());
    let committed = committed.load(Ordering::Relaxed);
    // An end one lane reached stands (the other's batch was not committed);
    // then a lock conflict, then any other failure.
    match (a, b) {
        (Ok(Some(end)), _) | (_, Ok(Some(end))) => Ok((end, committed)),
        (Err(e), _) | (_, Err(e)) if e.kind == Kind::Busy => Ok((End::LockConflict, committed)),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(None), Ok(None)) => Err(Error::internal(
            "the import's reader stopped before the end of the list",
        )),
    }
}

/// One connection of [`two_at_once`].
struct Lane<'a> {
    s: &'a Store,
    catalog: &'a Catalog,
    job: &'a Job,
    max_batches: usize,
    /// Batches committed by both lanes.
    committed: &'a AtomicUsize,
    conn: sqlx::AnyConnection,
    /// This lane's batches.
    pieces: tokio::sync::mpsc::Receiver<Result<Parsed, String>>,
    /// The turn, from the other lane.
    turn: tokio::sync::mpsc::Receiver<Progress>,
    /// The turn, to the other lane.
    next: tokio::sync::mpsc::Sender<Progress>,
}

impl Lane<'_> {
    /// Writes this lane's batches until the job's run ends (`Some`: this
    /// lane ended it) or the other lane stops (`None`).
    async fn run(mut self) -> Result<Option<End>> {
        let end = self.batches().await;
        if end.is_ok() {
            let _ = self.conn.close().await;
        }
        end
    }

    async fn batches(&mut self) -> Result<Option<End>> {
        let (s, job) = (self.s, self.job);
        while let Some(piece) = self.pieces.recv().await {
            let mut piece = piece.map_err(Error::internal)?;
            s.yield_to_writers(MAX_YIELD).await;
            // While single writes come, one batch at a time: the lane takes
            // its turn before it writes, not after.
            let mut turn = None;
            if s.single_writes_recent() {
                match self.turn.recv().await {
                    Some(p) => turn = Some(p),
                    None => return Ok(None),
                }
            }
            // Without its turn, the batch before may still be writing.
            let beside = turn.is_none();
            jobs::begin_apart(&mut self.conn).await?;
            let batch = std::mem::take(&mut piece.batch);
            let mut written = batch
                .write(
                    s,
                    &mut self.conn,
                    None,
                    &job.bank,
                    &job.row.created_by,
                    job.row.source.as_deref(),
                    job.format,
                )
                .await?;
            written.duplicates += piece.skipped as u64;
            // The batch before this one commits first.
            let turn = match turn {
                Some(p) => Some(p),
                None => self.turn.recv().await,
            };
            let Some(mut progress) = turn else {
                jobs::end_apart(&mut self.conn, false).await?;
                return Ok(None);
            };
            let listed_before = progress.rejected.len();
            progress.read(&mut piece);
            progress.added += written.added as i64;
            progress.duplicates += written.duplicates as i64;
            if !progress
                .record(s, &mut self.conn, &job.row.id, listed_before)
                .await?
            {
                jobs::end_apart(&mut self.conn, false).await?;
                let _ = tokio::fs::remove_file(&job.row.spool).await;
                return Ok(Some(End::Cancelled));
            }
            let (content, signals) = written.counts();
            jobs::add_counts(&mut self.conn, job.bank.id, content, signals).await?;
            let mark = self.catalog.apply_mark();
            jobs::end_apart(&mut self.conn, true).await?;
            s.count_import_batch(beside);
            written.committed(s, self.catalog, mark, None).await?;
            let n = self.committed.fetch_add(1, Ordering::Relaxed) + 1;
            if piece.at_end {
                return Ok(Some(End::Done(progress)));
            }
            if n >= self.max_batches {
                return Ok(Some(End::Limit));
            }
            if self.next.send(progress).await.is_err() {
                return Ok(None);
            }
        }
        Ok(None)
    }
}

/// Lines of the spool file parsed into a batch, with where reading stopped.
struct Parsed {
    batch: Batch,
    /// Byte offset just after the batch's last line.
    offset: u64,
    /// Number of the batch's last line (lines read so far).
    lines: usize,
    /// Rejected lines of the batch: (number, why).
    rejected: Vec<(usize, String)>,
    /// The file ends with this batch.
    at_end: bool,
    /// Records taken out as keys of the batch before ([`read_batches`]'s
    /// `apart`): duplicates.
    skipped: usize,
}

/// Reads the spool file from `offset` (after line `lines`) and sends it on
/// in pieces of `piece` records, until the end of the file or until
/// the receiver is gone (the job stopped). Runs on a blocking thread.
/// `apart`: each piece is written beside the one before it
/// ([`two_at_once`]), so the records whose keys that one holds are taken
/// out ([`Batch::drop_keys`]).
#[allow(clippy::too_many_arguments)]
fn read_batches(
    spool: &str,
    mut offset: u64,
    mut lines: usize,
    format: Format,
    piece: usize,
    apart: bool,
    out: tokio::sync::mpsc::Sender<Result<Parsed, String>>,
) {
    use std::io::{BufRead, Seek};
    let opened = std::fs::File::open(spool).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        Ok(f)
    });
    let mut reader = match opened {
        Ok(f) => std::io::BufReader::with_capacity(1 << 20, f),
        Err(e) => {
            let _ = out.blocking_send(Err(format!("reading {spool}: {e}")));
            return;
        }
    };
    let mut line = Vec::with_capacity(256);
    let mut before = HashSet::new();
    loop {
        let mut p = Parsed {
            batch: Batch::default(),
            offset,
            lines,
            rejected: Vec::new(),
            at_end: false,
            skipped: 0,
        };
        while p.batch.len() < piece {
            line.clear();
            let n = match reader.read_until(b'\n', &mut line) {
                Ok(n) => n,
                Err(e) => {
                    let _ = out.blocking_send(Err(format!("reading {spool}: {e}")));
                    return;
                }
            };
            if n == 0 {
                p.at_end = true;
                break;
            }
            offset += n as u64;
            lines += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Err(e) = p.batch.line(format, lines, text) {
                p.rejected.push((lines, e));
            }
        }
        (p.offset, p.lines) = (offset, lines);
        if apart {
            (p.skipped, before) = p.batch.drop_keys(&before);
        }
        let at_end = p.at_end;
        if out.blocking_send(Ok(p)).is_err() || at_end {
            return;
        }
    }
}
