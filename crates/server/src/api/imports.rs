//! Import jobs: `POST /v1/banks/{bank}/imports` spools a list to the data
//! directory and answers `202` with a job; a worker imports it in batches.
//! Each batch is committed together with the job's checkpoint (byte offset,
//! line number, counts) in one transaction, so:
//!
//! - the job survives the client going away once the upload is complete;
//! - after a crash or restart the worker resumes from the last commit, and no
//!   line is imported twice or lost;
//! - importing the same list again is idempotent (content already in the bank
//!   is counted as a duplicate), and a client that retries its `POST` with
//!   the same `Idempotency-Key` gets the first job back.
//!
//! A job is run by the server that received it (its spool file is in that
//! server's data directory). `GET /v1/imports/{id}` shows progress,
//! `DELETE /v1/imports/{id}` cancels (what was committed stays).

use std::io::SeekFrom;
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::bank_or_404;
use super::lists::{self, Batch};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, Store, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};

/// Lines per committed batch: large enough for multi-row inserts to pay off,
/// small enough that a batch holds SQLite's write lock for tens of
/// milliseconds, so single writes interleave.
const JOB_BATCH: usize = 2000;

/// Rejected lines kept with the job (all are counted).
const MAX_REJECTED_LISTED: usize = 1000;

/// Wakes the worker when a job is queued.
static WAKE: Notify = Notify::const_new();

/// The job states.
const QUEUED: &str = "queued";
const RUNNING: &str = "running";
const DONE: &str = "done";
const FAILED: &str = "failed";
const CANCELLED: &str = "cancelled";

/// Query of `POST /v1/banks/{bank}/imports`.
#[derive(Deserialize)]
pub struct CreateQuery {
    format: Option<String>,
    source: Option<String>,
}

/// Where spool files go.
fn spool_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("imports")
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

/// A job as its JSON answer; `rejected` lists the first rejected lines.
fn job_json(r: &sqlx::any::AnyRow, with_rejected: bool) -> Result<Value, sqlx::Error> {
    let mut j = json!({
        "id": r.try_get::<String, _>("id")?,
        "bank": r.try_get::<String, _>("bank")?,
        "format": r.try_get::<String, _>("format")?,
        "source": r.try_get::<Option<String>, _>("source")?,
        "status": r.try_get::<String, _>("status")?,
        "bytes_total": r.try_get::<i64, _>("bytes_total")?,
        "bytes_done": r.try_get::<i64, _>("bytes_done")?,
        "lines": r.try_get::<i64, _>("lines")?,
        "added": r.try_get::<i64, _>("added")?,
        "duplicates": r.try_get::<i64, _>("duplicates")?,
        "rejected_count": r.try_get::<i64, _>("rejected_count")?,
        "error": r.try_get::<Option<String>, _>("error")?,
        "created_at": rfc3339(r.try_get::<i64, _>("created_at")?),
        "updated_at": rfc3339(r.try_get::<i64, _>("updated_at")?),
        "finished_at": r.try_get::<Option<i64>, _>("finished_at")?.map(rfc3339),
        "seconds": (r.try_get::<Option<i64>, _>("finished_at")?.unwrap_or_else(now_ms)
            - r.try_get::<i64, _>("created_at")?) as f64
            / 1e3,
    });
    if with_rejected {
        let text: String = r.try_get("rejected")?;
        j["rejected"] = serde_json::from_str(&text).unwrap_or_else(|_| json!([]));
    }
    Ok(j)
}

async fn job_row(state: &AppState, id: &str) -> Result<Option<sqlx::any::AnyRow>, ApiError> {
    let s = &state.store;
    Ok(
        sqlx::query(&s.sql("SELECT * FROM import_jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&s.pool)
            .await?,
    )
}

/// The job a caller created with this `Idempotency-Key`.
async fn job_by_idempotency_key(
    state: &AppState,
    created_by: &str,
    key: &str,
) -> Result<Option<sqlx::any::AnyRow>, ApiError> {
    let s = &state.store;
    Ok(sqlx::query(
        &s.sql("SELECT * FROM import_jobs WHERE created_by = ? AND idempotency_key = ?"),
    )
    .bind(created_by)
    .bind(key)
    .fetch_optional(&s.pool)
    .await?)
}

/// `POST /v1/banks/{bank}/imports`: spools the body and queues a job.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let format = lists::format_of(q.format.as_deref())?;
    if q.source.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::bad_request("source is over 200 characters"));
    }
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .ok()
                .filter(|v| !v.is_empty() && v.len() <= 200)
                .ok_or_else(|| {
                    ApiError::bad_request("Idempotency-Key must be 1 to 200 visible characters")
                })?;
            Some(v.to_string())
        }
    };
    let s = &state.store;
    if let Some(key) = &idem
        && let Some(r) = job_by_idempotency_key(&state, &caller.key_id, key).await?
    {
        // The body of a retried request is not read again.
        return Ok((StatusCode::OK, Json(job_json(&r, false)?)));
    }
    let id = db::random_hex();
    let dir = spool_dir(&state);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    let path = dir.join(format!("{id}.list"));
    let mut guard = SpoolGuard(Some(path.clone()));
    let total = spool(&state, body, &path).await?;
    let now = now_ms();
    let inserted = sqlx::query(&s.sql(
        "INSERT INTO import_jobs (id, bank_id, bank, format, source, status, spool, \
         idempotency_key, created_by, bytes_total, bytes_done, lines, added, duplicates, \
         rejected_count, rejected, error, created_at, updated_at, finished_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, '[]', NULL, ?, ?, NULL) \
         ON CONFLICT (created_by, idempotency_key) DO NOTHING",
    ))
    .bind(&id)
    .bind(bank.id)
    .bind(&bank.name)
    .bind(format.name())
    .bind(&q.source)
    .bind(QUEUED)
    .bind(path.display().to_string())
    .bind(&idem)
    .bind(&caller.key_id)
    .bind(total as i64)
    .bind(now)
    .bind(now)
    .execute(&s.pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        // A concurrent retry with the same key won the race.
        let r = job_by_idempotency_key(&state, &caller.key_id, idem.as_deref().unwrap_or(""))
            .await?
            .ok_or_else(|| ApiError::internal("an import job conflicted with none"))?;
        return Ok((StatusCode::OK, Json(job_json(&r, false)?)));
    }
    guard.0 = None;
    let mut tx = s.begin().await?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "import.create",
        Some(&bank.name),
        None,
        json!({"job": id, "format": format.name(), "source": q.source, "bytes": total}),
    )
    .await?;
    tx.commit().await?;
    WAKE.notify_one();
    let r = job_row(&state, &id)
        .await?
        .ok_or_else(|| ApiError::internal("the new job vanished"))?;
    Ok((StatusCode::ACCEPTED, Json(job_json(&r, false)?)))
}

/// Writes the request body to `path` and syncs it; its length.
async fn spool(state: &AppState, body: Body, path: &FsPath) -> Result<u64, ApiError> {
    let max = state.config.max_import_bytes;
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", path.display())))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(ApiError::too_large(format!(
                "the list is over max_import_bytes ({max} bytes)"
            )));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    out.into_inner()
        .sync_all()
        .await
        .map_err(|e| ApiError::internal(format!("syncing {}: {e}", path.display())))?;
    Ok(total)
}

/// `GET /v1/imports/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let r = job_row(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no import job {id:?}")))?;
    Ok(Json(job_json(&r, true)?))
}

/// Query of `GET /v1/imports`.
#[derive(Deserialize)]
pub struct ListQuery {
    bank: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/imports?bank=&limit=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let s = &state.store;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = match &q.bank {
        Some(b) => {
            sqlx::query(&s.sql(
                "SELECT * FROM import_jobs WHERE bank = ? ORDER BY created_at DESC, id LIMIT ?",
            ))
            .bind(b)
            .bind(limit)
            .fetch_all(&s.pool)
            .await?
        }
        None => {
            sqlx::query(&s.sql("SELECT * FROM import_jobs ORDER BY created_at DESC, id LIMIT ?"))
                .bind(limit)
                .fetch_all(&s.pool)
                .await?
        }
    };
    let jobs = rows
        .iter()
        .map(|r| job_json(r, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "imports": jobs })))
}

/// `DELETE /v1/imports/{id}`: cancels a queued or running job; batches
/// already committed stay.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let s = &state.store;
    let r = job_row(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no import job {id:?}")))?;
    let mut tx = s.begin().await?;
    let n = sqlx::query(&s.sql(
        "UPDATE import_jobs SET status = ?, updated_at = ?, finished_at = ? \
         WHERE id = ? AND status IN (?, ?)",
    ))
    .bind(CANCELLED)
    .bind(now_ms())
    .bind(now_ms())
    .bind(&id)
    .bind(QUEUED)
    .bind(RUNNING)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        let status: String = r.try_get("status")?;
        return Err(ApiError::conflict(format!("the job is already {status}")));
    }
    let bank: String = r.try_get("bank")?;
    db::audit(
        s,
        &mut tx,
        &caller.key_id,
        "import.cancel",
        Some(&bank),
        None,
        json!({"job": id}),
    )
    .await?;
    tx.commit().await?;
    let spool: String = r.try_get("spool")?;
    if r.try_get::<String, _>("status")? == QUEUED {
        let _ = tokio::fs::remove_file(&spool).await;
    }
    let r = job_row(&state, &id)
        .await?
        .ok_or_else(|| ApiError::internal("the job vanished"))?;
    Ok(Json(job_json(&r, true)?))
}

/// Runs queued jobs (and resumes interrupted ones) one at a time, oldest
/// first, forever.
pub fn spawn_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match next_job(&state).await {
                Ok(Some(id)) => {
                    if let Err(e) = run(&state, &id).await {
                        tracing::warn!("import job {id} failed: {}", e.message);
                        let _ = finish(&state, &id, FAILED, Some(&e.message)).await;
                    }
                }
                Ok(None) => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), WAKE.notified()).await;
                }
                Err(e) => {
                    tracing::warn!("looking for import jobs: {}", e.message);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    })
}

/// The oldest queued or interrupted job whose spool file is here.
async fn next_job(state: &AppState) -> Result<Option<String>, ApiError> {
    let s = &state.store;
    let rows = sqlx::query(&s.sql(
        "SELECT id, spool FROM import_jobs WHERE status IN (?, ?) ORDER BY created_at, id LIMIT 100",
    ))
    .bind(RUNNING)
    .bind(QUEUED)
    .fetch_all(&s.pool)
    .await?;
    for r in rows {
        let spool: String = r.try_get("spool")?;
        if tokio::fs::try_exists(&spool).await.unwrap_or(false) {
            return Ok(Some(r.try_get("id")?));
        }
    }
    Ok(None)
}

async fn finish(
    state: &AppState,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<(), ApiError> {
    let s = &state.store;
    let now = now_ms();
    let r = sqlx::query(&s.sql(
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
    .fetch_optional(&s.pool)
    .await?;
    if let Some(r) = r {
        let spool: String = r.try_get("spool")?;
        let _ = tokio::fs::remove_file(spool).await;
    }
    Ok(())
}

/// Imports one job from its checkpoint to the end of its spool file.
async fn run(state: &AppState, id: &str) -> Result<(), ApiError> {
    let s = &state.store;
    let Some(r) = job_row(state, id).await? else {
        return Ok(());
    };
    let status: String = r.try_get("status")?;
    if status != QUEUED && status != RUNNING {
        return Ok(());
    }
    let bank_name: String = r.try_get("bank")?;
    // A bank of the same name made since is not the job's bank.
    let bank_id: i64 = r.try_get("bank_id")?;
    let Some(bank) = db::bank_by_name(s, &bank_name)
        .await?
        .filter(|b| b.id == bank_id)
    else {
        return Err(ApiError::not_found(format!(
            "bank {bank_name:?} was deleted during the import"
        )));
    };
    let format = lists::format_of(Some(&r.try_get::<String, _>("format")?))?;
    let source: Option<String> = r.try_get("source")?;
    let actor: String = r.try_get("created_by")?;
    let spool: String = r.try_get("spool")?;
    let mut offset = r.try_get::<i64, _>("bytes_done")? as u64;
    let mut lines = r.try_get::<i64, _>("lines")? as usize;
    let mut added = r.try_get::<i64, _>("added")?;
    let mut duplicates = r.try_get::<i64, _>("duplicates")?;
    let mut rejected_count = r.try_get::<i64, _>("rejected_count")?;
    let mut rejected: Vec<Value> =
        serde_json::from_str(&r.try_get::<String, _>("rejected")?).unwrap_or_default();
    if status == RUNNING {
        tracing::info!("resuming import job {id} at line {lines} (byte {offset})");
    }
    sqlx::query(
        &s.sql("UPDATE import_jobs SET status = ?, updated_at = ? WHERE id = ? AND status = ?"),
    )
    .bind(RUNNING)
    .bind(now_ms())
    .bind(id)
    .bind(QUEUED)
    .execute(&s.pool)
    .await?;

    let mut conn = import_connection(s).await?;
    // Reading and parsing run on a blocking thread, a batch or two ahead of
    // the writes.
    let (batches, mut parsed) = tokio::sync::mpsc::channel(2);
    {
        let spool = spool.clone();
        tokio::task::spawn_blocking(move || read_batches(&spool, offset, lines, format, batches));
    }
    while let Some(next) = parsed.recv().await {
        let next = next.map_err(ApiError::internal)?;
        offset = next.offset;
        lines = next.lines;
        let new_rejected = !next.rejected.is_empty() && rejected.len() < MAX_REJECTED_LISTED;
        for (n, e) in next.rejected {
            rejected_count += 1;
            if rejected.len() < MAX_REJECTED_LISTED {
                rejected.push(json!({"line": n, "error": e}));
            }
        }
        yield_to_writers(s).await;
        // The batch's transaction, on the job's connection: on SQLite, its
        // `BEGIN IMMEDIATE` is retried every millisecond (see
        // `import_connection`).
        let waited = std::time::Instant::now();
        let mut tx = loop {
            let begun = match s.backend {
                db::Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await,
                db::Backend::Postgres => conn.begin().await,
            };
            match begun {
                Ok(tx) => break tx,
                Err(e) if is_busy(&e) && waited.elapsed() < LOCK_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let written = next
            .batch
            .write(s, &mut tx, &bank, &actor, source.as_deref(), format)
            .await?;
        added += written.added as i64;
        duplicates += written.duplicates as i64;
        let mut q = String::from(
            "UPDATE import_jobs SET bytes_done = ?, lines = ?, added = ?, duplicates = ?, \
             rejected_count = ?, updated_at = ?",
        );
        if new_rejected {
            q.push_str(", rejected = ?");
        }
        q.push_str(" WHERE id = ? AND status = ?");
        let q = s.sql(&q);
        let mut q = sqlx::query(&q)
            .bind(offset as i64)
            .bind(lines as i64)
            .bind(added)
            .bind(duplicates)
            .bind(rejected_count)
            .bind(now_ms());
        if new_rejected {
            q = q.bind(Value::Array(rejected.clone()).to_string());
        }
        let still = q
            .bind(id)
            .bind(RUNNING)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if still == 0 {
            // Cancelled meanwhile: this batch is not committed.
            drop(tx);
            let _ = tokio::fs::remove_file(&spool).await;
            return Ok(());
        }
        written.commit(&state.store, &state.catalog, tx).await?;
        if next.at_end {
            break;
        }
    }
    let _ = conn.close().await;
    finish(state, id, DONE, None).await?;
    tracing::info!(
        "import job {id}: {lines} lines, {added} added, {duplicates} duplicates, {rejected_count} rejected"
    );
    Ok(())
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
}

/// Reads the spool file from `offset` (after line `lines`) and sends it on
/// in batches of [`JOB_BATCH`] records, until the end of the file or until
/// the receiver is gone (the job stopped). Runs on a blocking thread.
fn read_batches(
    spool: &str,
    mut offset: u64,
    mut lines: usize,
    format: bulwark_banks::Format,
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
    loop {
        let mut p = Parsed {
            batch: Batch::default(),
            offset,
            lines,
            rejected: Vec::new(),
            at_end: false,
        };
        while p.batch.len() < JOB_BATCH {
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
        let at_end = p.at_end;
        if out.blocking_send(Ok(p)).is_err() || at_end {
            return;
        }
    }
}

/// Longest an import batch waits for single writes queued before it.
const MAX_YIELD: Duration = Duration::from_millis(200);

/// Lets writers waiting for a transaction ([`Store::writers_waiting`]) start
/// theirs before the next import batch takes SQLite's write lock.
async fn yield_to_writers(s: &Store) {
    let t = std::time::Instant::now();
    while s.writers_waiting() > 0 && t.elapsed() < MAX_YIELD {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The job's own connection, out of the pool (it is closed, not returned,
/// so its settings stay with it). On SQLite:
///
/// - `synchronous = NORMAL`: a batch's commit is not synced on its own; it
///   is on disk at the next synced commit (any single write, the job's end)
///   or WAL checkpoint. A process crash (`kill -9`) loses nothing; a power
///   cut may lose the last batches, and with them their checkpoint, so the
///   job resumes before them (the WAL keeps commits in order). The index
///   snapshot syncs before it records a change sequence
///   ([`crate::catalog::Catalog::save_snapshot`]).
/// - `busy_timeout = 0`: its `BEGIN IMMEDIATE` is retried every millisecond
///   (`run`) instead of SQLite's backing-off sleeps (up to 100 ms
///   each), so that a batch starts as soon as a single write is done.
/// - a 64 MiB page cache: the content and signal indexes take random keys.
async fn import_connection(s: &Store) -> Result<sqlx::AnyConnection, ApiError> {
    let mut conn = s.pool.acquire().await?.detach();
    if s.backend == db::Backend::Sqlite {
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

/// Longest a batch waits for SQLite's write lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(60);

/// Whether SQLite answered "database is locked" (`SQLITE_BUSY`).
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("5"))
}
