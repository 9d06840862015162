//! Import jobs (`import_jobs`): a list spooled to the data directory and
//! imported in batches, each committed together with the job's checkpoint
//! ([`checkpoint`]) so that a job stopped anywhere resumes after its last
//! committed batch. The jobs' own connection and batch transactions
//! ([`job_connection`], [`begin_batch`]) are here too: they set SQLite
//! pragmas and take its write lock.

use sqlx::any::AnyRow;
use sqlx::{Connection, Executor, Row};

use crate::{Backend, Store, TxMarks};

/// Waiting for a worker.
pub const QUEUED: &str = "queued";
/// A worker is importing it, or was when it stopped (it resumes).
pub const RUNNING: &str = "running";
/// Every line was read.
pub const DONE: &str = "done";
/// Stopped by an error (see the job's `error`).
pub const FAILED: &str = "failed";
/// Cancelled by a curator; what was committed stays.
pub const CANCELLED: &str = "cancelled";

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Random hex id.
    pub id: String,
    /// The bank's row id (a bank made later under the same name is not it).
    pub bank_id: i64,
    /// The bank's name.
    pub bank: String,
    /// The list format's name.
    pub format: String,
    /// Which list it is, as the caller named it.
    pub source: Option<String>,
    /// One of [`QUEUED`], [`RUNNING`], [`DONE`], [`FAILED`], [`CANCELLED`].
    pub status: String,
    /// Path of the spooled list.
    pub spool: String,
    /// The creator's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Key id of who created it.
    pub created_by: String,
    /// Size of the list.
    pub bytes_total: i64,
    /// Bytes read up to the checkpoint.
    pub bytes_done: i64,
    /// Lines read up to the checkpoint.
    pub lines: i64,
    /// Records added.
    pub added: i64,
    /// Records the bank already held.
    pub duplicates: i64,
    /// Lines rejected.
    pub rejected_count: i64,
    /// The first rejected lines, as a JSON array.
    pub rejected: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// When it ended (done, failed or cancelled).
    pub finished_at: Option<i64>,
}

impl JobRow {
    /// Reads `SELECT *` of `import_jobs`.
    pub fn from_row(r: &AnyRow) -> Result<JobRow, sqlx::Error> {
        Ok(JobRow {
            id: r.try_get("id")?,
            bank_id: r.try_get("bank_id")?,
            bank: r.try_get("bank")?,
            format: r.try_get("format")?,
            source: r.try_get("source")?,
            status: r.try_get("status")?,
            spool: r.try_get("spool")?,
            idempotency_key: r.try_get("idempotency_key")?,
            created_by: r.try_get("created_by")?,
            bytes_total: r.try_get("bytes_total")?,
            bytes_done: r.try_get("bytes_done")?,
            lines: r.try_get("lines")?,
            added: r.try_get("added")?,
            duplicates: r.try_get("duplicates")?,
            rejected_count: r.try_get("rejected_count")?,
            rejected: r.try_get("rejected")?,
            error: r.try_get("error")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            finished_at: r.try_get("finished_at")?,
        })
    }

    /// Not ended: queued, or running (or stopped while running).
    pub fn is_pending(&self) -> bool {
        self.status == QUEUED || self.status == RUNNING
    }
}

/// A job to queue ([`insert`]).
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Random hex id.
    pub id: &'a str,
    /// The bank's row id.
    pub bank_id: i64,
    /// The bank's name.
    pub bank: &'a str,
    /// The list format's name.
    pub format: &'a str,
    /// Which list it is.
    pub source: Option<&'a str>,
    /// Path of the spooled list.
    pub spool: &'a str,
    /// The creator's `Idempotency-Key`.
    pub idempotency_key: Option<&'a str>,
    /// Key id of the creator.
    pub created_by: &'a str,
    /// Size of the list.
    pub bytes_total: i64,
}

/// Job `id`.
pub async fn get(store: &Store, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM import_jobs WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| JobRow::from_row(&r))
        .transpose()
}

/// The job `created_by` created with this `Idempotency-Key`.
pub async fn by_idempotency_key(
    store: &Store,
    created_by: &str,
    key: &str,
) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT * FROM import_jobs WHERE created_by = ? AND idempotency_key = ?"),
    )
    .bind(created_by)
    .bind(key)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| JobRow::from_row(&r))
    .transpose()
}

/// Queues a job at checkpoint zero; `false` when its creator already has a
/// job with its `Idempotency-Key` (a concurrent retry won).
pub async fn insert(store: &Store, job: &NewJob<'_>) -> Result<bool, sqlx::Error> {
    let now = crate::now_ms();
    let inserted = sqlx::query(&store.sql(
        "INSERT INTO import_jobs (id, bank_id, bank, format, source, status, spool, \
         idempotency_key, created_by, bytes_total, bytes_done, lines, added, duplicates, \
         rejected_count, rejected, error, created_at, updated_at, finished_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, '[]', NULL, ?, ?, NULL) \
         ON CONFLICT (created_by, idempotency_key) DO NOTHING",
    ))
    .bind(job.id)
    .bind(job.bank_id)
    .bind(job.bank)
    .bind(job.format)
    .bind(job.source)
    .bind(QUEUED)
    .bind(job.spool)
    .bind(job.idempotency_key)
    .bind(job.created_by)
    .bind(job.bytes_total)
    .bind(now)
    .bind(now)
    .execute(&store.pool)
    .await?
    .rows_affected();
    Ok(inserted != 0)
}

/// Up to `limit` jobs, of bank `bank` if given, newest first.
pub async fn list(
    store: &Store,
    bank: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    let rows = match bank {
        Some(b) => {
            sqlx::query(&store.sql(
                "SELECT * FROM import_jobs WHERE bank = ? ORDER BY created_at DESC, id LIMIT ?",
            ))
            .bind(b)
            .bind(limit)
            .fetch_all(&store.pool)
            .await?
        }
        None => {
            sqlx::query(
                &store.sql("SELECT * FROM import_jobs ORDER BY created_at DESC, id LIMIT ?"),
            )
            .bind(limit)
            .fetch_all(&store.pool)
            .await?
        }
    };
    rows.iter().map(JobRow::from_row).collect()
}

/// Marks job `id` cancelled if it is queued or running; whether it was.
pub async fn cancel(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let now = crate::now_ms();
    let n = sqlx::query(&store.sql(
        "UPDATE import_jobs SET status = ?, updated_at = ?, finished_at = ? \
         WHERE id = ? AND status IN (?, ?)",
    ))
    .bind(CANCELLED)
    .bind(now)
    .bind(now)
    .bind(id)
    .bind(QUEUED)
    .bind(RUNNING)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(n != 0)
}

/// (id, spool path) of up to 100 queued or running jobs, oldest first.
pub async fn pending(store: &Store) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT id, spool FROM import_jobs WHERE status IN (?, ?) ORDER BY created_at, id LIMIT 100",
    ))
    .bind(RUNNING)
    .bind(QUEUED)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("id")?, r.try_get("spool")?)))
    .collect()
}

/// Marks a queued job running (a running one stays as it is).
pub async fn start(store: &Store, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        &store.sql("UPDATE import_jobs SET status = ?, updated_at = ? WHERE id = ? AND status = ?"),
    )
    .bind(RUNNING)
    .bind(crate::now_ms())
    .bind(id)
    .bind(QUEUED)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Ends job `id` with `status` (and `error`) if it is queued or running;
/// its spool path if it was.
pub async fn finish(
    store: &Store,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let now = crate::now_ms();
    sqlx::query(&store.sql(
        "UPDATE import_jobs SET status = ?, error = ?, updated_at = ?, finished_at = ? \
         WHERE id = ? AND status IN (?, ?) RETURNING spool",
    ))
    .bind(status)
    .bind(error)
    .bind(now)
    .bind(now)
    .bind(id)
    .bind(QUEUED)
    .bind(RUNNING)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| r.try_get("spool"))
    .transpose()
}

/// A running job's counts after a batch ([`checkpoint`]).
#[derive(Debug, Clone)]
pub struct Checkpoint<'a> {
    /// Bytes read.
    pub bytes_done: i64,
    /// Lines read.
    pub lines: i64,
    /// Records added.
    pub added: i64,
    /// Records the bank already held.
    pub duplicates: i64,
    /// Lines rejected.
    pub rejected_count: i64,
    /// The listed rejected lines (a JSON array), when the batch added some.
    pub rejected: Option<&'a str>,
}

/// Records job `id`'s checkpoint in the batch's transaction `tx`; `false`
/// when the job is no longer running (cancelled: the caller drops `tx`).
pub async fn checkpoint(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: &str,
    at: &Checkpoint<'_>,
) -> Result<bool, sqlx::Error> {
    let mut q = String::from(
        "UPDATE import_jobs SET bytes_done = ?, lines = ?, added = ?, duplicates = ?, \
         rejected_count = ?, updated_at = ?",
    );
    if at.rejected.is_some() {
        q.push_str(", rejected = ?");
    }
    q.push_str(" WHERE id = ? AND status = ?");
    let q = store.sql(&q);
    let mut q = sqlx::query(&q)
        .bind(at.bytes_done)
        .bind(at.lines)
        .bind(at.added)
        .bind(at.duplicates)
        .bind(at.rejected_count)
        .bind(crate::now_ms());
    if let Some(r) = at.rejected {
        q = q.bind(r);
    }
    let n = q
        .bind(id)
        .bind(RUNNING)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    Ok(n != 0)
}

/// A job's own connection, out of the pool (close it when done: it is not
/// returned, so its settings stay with it). On SQLite:
///
/// - `synchronous = NORMAL`: a batch's commit is not synced on its own; it
///   is on disk at the next synced commit (any single write, the job's end)
///   or WAL checkpoint. A process crash (`kill -9`) loses nothing; a power
///   cut may lose the last batches, and with them their checkpoint, so the
///   job resumes before them (the WAL keeps commits in order). The index
///   snapshot syncs before it records a change sequence.
/// - `busy_timeout = 0`: [`begin_batch`] fails at once when the write lock
///   is taken, and the job retries every millisecond instead of SQLite's
///   backing-off sleeps (up to 100 ms each), so that a batch starts as soon
///   as a single write is done.
/// - a 64 MiB page cache: the content and signal indexes take random keys.
pub async fn job_connection(store: &Store) -> Result<sqlx::AnyConnection, sqlx::Error> {
    let mut conn = store.pool.acquire().await?.detach();
    if store.backend == Backend::Sqlite {
        for p in [
            "PRAGMA synchronous = NORMAL",
            "PRAGMA busy_timeout = 0",
            "PRAGMA cache_size = -65536",
        ] {
            sqlx::query(p).execute(&mut conn).await?;
        }
    }
    Ok(conn)
}

/// A batch's transaction on a [`job_connection`], with its marks for
/// [`crate::insert_contents`] ([`TxMarks`]: SQLite only). On SQLite, its
/// `BEGIN IMMEDIATE` takes the write lock up front, and fails at once when
/// another connection holds it ([`is_busy`]: retry).
pub async fn begin_batch<'c>(
    store: &Store,
    conn: &'c mut sqlx::AnyConnection,
) -> Result<(sqlx::Transaction<'c, sqlx::Any>, Option<TxMarks>), sqlx::Error> {
    let mut tx = match store.backend {
        Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => conn.begin().await?,
    };
    let marks = TxMarks::read(store, &mut tx).await?;
    Ok((tx, marks))
}

/// Whether SQLite answered "database is locked" (`SQLITE_BUSY`).
pub fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("5"))
}

/// How a batch of a two-connection import job begins ([`begin_apart`]):
/// its insert statements leave the bank's counters to [`add_counts`]
/// (`bulwark.defer_counts`, store module `counts` v3), and it waits at
/// most 2 s for a row lock. Its statements then fail with
/// `lock_not_available` ([`is_lock_conflict`]), and the job goes on one
/// batch at a time. The job waits for one batch to commit before the next
/// may, which PostgreSQL's deadlock detector cannot see: if a write of
/// another transaction waits for a later batch (a key it inserted) while
/// holding a lock the earlier batch needs, the wait ends there.
const BEGIN_APART: &str =
    "BEGIN; SET LOCAL bulwark.defer_counts = on; SET LOCAL lock_timeout = '2s'";

/// Begins a batch of an import job that writes from two connections
/// (PostgreSQL): a batch is written while the one before it is written and
/// committed from the other connection ([`BEGIN_APART`]). Commit or roll
/// back with [`end_apart`].
pub async fn begin_apart(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    // A text without arguments goes as a simple query: several statements.
    conn.execute(BEGIN_APART).await?;
    Ok(())
}

/// Commits (or rolls back) a batch begun by [`begin_apart`].
pub async fn end_apart(conn: &mut sqlx::AnyConnection, commit: bool) -> Result<(), sqlx::Error> {
    conn.execute(if commit { "COMMIT" } else { "ROLLBACK" })
        .await?;
    Ok(())
}

/// Adds a batch begun by [`begin_apart`] to bank `bank_id`'s counters:
/// `content` new content rows (all enabled) and `signals` new signal rows
/// per type. Run just before the commit, after the batch before it has
/// committed, so that batches lock the counter rows in commit order.
pub async fn add_counts(
    conn: &mut sqlx::AnyConnection,
    bank_id: i64,
    content: i64,
    signals: &[(&str, i64)],
) -> Result<(), sqlx::Error> {
    if content == 0 && signals.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH b AS (
           INSERT INTO bank_counts (bank_id, content, disabled) SELECT $1, $2, 0 WHERE $2 <> 0
           ON CONFLICT (bank_id) DO UPDATE SET content = bank_counts.content + excluded.content)
         INSERT INTO signal_counts (bank_id, signal_type, n)
           SELECT $1, t, n FROM unnest($3::text[], $4::bigint[]) AS s (t, n) ORDER BY t
           ON CONFLICT (bank_id, signal_type) DO UPDATE SET n = signal_counts.n + excluded.n",
    )
    .bind(bank_id)
    .bind(content)
    .bind(crate::postgres::text_array(
        signals.iter().map(|(t, _)| Some(*t)),
    ))
    .bind(crate::postgres::int_array(
        signals.iter().map(|(_, n)| Some(*n)),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether PostgreSQL gave up waiting for a lock: `lock_not_available`
/// (the lock timeout of [`BEGIN_APART`] ran out) or `deadlock_detected`.
pub fn is_lock_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if matches!(d.code().as_deref(), Some("55P03") | Some("40P01")))
}

/// Rows a job adds before it refreshes PostgreSQL's statistics at its end
/// ([`analyze_after_import`]).
pub const ANALYZE_AFTER_ADDED: i64 = 10_000;

/// PostgreSQL: refreshes the planner's statistics of the tables an import
/// writes (`ANALYZE`, a sample of each table, not a scan; it does not block
/// writes). Until autovacuum's next analyze (a minute or more after a
/// large import, never with autovacuum off) the planner takes a large new
/// bank for a few thousand rows, and each page of its export or content
/// list read and sorted the whole bank (1M lines exported in 61 s instead
/// of a few; docs/benchmarks/serve.md, "A bank's pages after a large
/// import"). Nothing on SQLite, whose planner needs no statistics here.
pub async fn analyze_after_import(store: &Store) -> Result<(), sqlx::Error> {
    if store.backend != Backend::Postgres {
        return Ok(());
    }
    sqlx::query("ANALYZE content, signals, changes")
        .execute(&store.pool)
        .await?;
    Ok(())
}
