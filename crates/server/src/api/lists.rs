//! List import and export: `/v1/banks/{bank}/import` and `/export`, in
//! python-threatexchange's `pdq HASH` lines, CSV `hash,quality,note`, and JSON lines.
//! Lists may hold text and entity signals too (`text_hash HEX`, `phone +E164`,
//! `url URL`, …; see docs/SIGNALS.md); CSV carries PDQ hashes only.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bulwark_banks::{AnyRecord, AnySignal, Format, Record, Signal};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::bank_or_404;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{self, BankRow, NewContent, SignalRow, now_ms};
use crate::error::{ApiError, ApiResult};

/// Longest accepted line.
const MAX_LINE: usize = 64 << 10;
/// Records per transaction.
const BATCH: usize = 2000;
/// Rejected lines listed in the answer (all are counted).
const MAX_REJECTED_LISTED: usize = 1000;

#[derive(Deserialize)]
pub struct ImportQuery {
    format: Option<String>,
    source: Option<String>,
}

pub(super) fn format_of(f: Option<&str>) -> Result<Format, ApiError> {
    f.unwrap_or("lines")
        .parse::<Format>()
        .map_err(ApiError::bad_request)
}

/// Parsed records of one batch, with their line numbers.
#[derive(Default)]
pub(super) struct Batch {
    records: Vec<(usize, AnyRecord)>,
    lines: Option<(usize, usize)>,
}

impl Batch {
    /// Records held.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Parses line `n` (without its newline) into the batch; why it was
    /// rejected. Blank and comment lines are skipped.
    pub(super) fn line(&mut self, format: Format, n: usize, bytes: &[u8]) -> Result<(), String> {
        let first = self.lines.map_or(n, |(f, _)| f);
        self.lines = Some((first, n));
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if let Some(r) = format.parse_any_line(text)? {
            self.records.push((n, r));
        }
        Ok(())
    }

    /// Writes the batch in `tx` (content, signals, changes and one audit
    /// row); the caller commits it with [`Written::commit`].
    pub(super) async fn write(
        self,
        s: &crate::db::Store,
        tx: &mut sqlx::AnyConnection,
        bank: &BankRow,
        actor: &str,
        source: Option<&str>,
        format: Format,
    ) -> Result<Written, ApiError> {
        let Some((first, last)) = self.lines else {
            return Ok(Written::default());
        };
        let items: Vec<NewContent> = self
            .records
            .iter()
            .map(|(_, r)| {
                let sig = &r.signal;
                NewContent {
                    kind: "signals",
                    dedup_key: format!("{}:{}", sig.type_name(), sig.value()),
                    note: r.note.clone(),
                    metadata: r.metadata.as_ref().map(|m| m.to_string()),
                    source: source.map(str::to_string),
                    signals: vec![SignalRow {
                        signal_type: sig.type_name().to_string(),
                        value: sig.value(),
                        quality: r.quality.map(i64::from),
                    }],
                    frames: Vec::new(),
                }
            })
            .collect();
        let (ids, changes) = db::insert_contents(s, &mut *tx, bank.id, actor, &items).await?;
        let added = ids.iter().filter(|i| i.is_some()).count() as u64;
        let duplicates = ids.len() as u64 - added;
        let fresh = ids
            .iter()
            .zip(&self.records)
            .filter_map(|(id, (_, r))| match (id, &r.signal) {
                (Some(id), AnySignal::Media(Signal::Pdq(h))) => Some((bank.id, *id, *h)),
                _ => None,
            })
            .collect();
        if !items.is_empty() {
            let detail = json!({
                "source": source,
                "format": format.name(),
                "lines": [first, last],
                "added": added,
            });
            db::audit(
                s,
                &mut *tx,
                actor,
                "content.import",
                Some(&bank.name),
                None,
                detail,
            )
            .await?;
        }
        Ok(Written {
            added,
            duplicates,
            changes,
            fresh,
        })
    }
}

/// A batch written in a transaction, not yet committed.
#[derive(Default)]
pub(super) struct Written {
    pub(super) added: u64,
    pub(super) duplicates: u64,
    changes: Vec<(i64, Option<i64>, Option<i64>)>,
    /// (bank, content, hash) of each new content with a PDQ hash.
    fresh: Vec<(i64, i64, bulwark_pdq::PdqHash)>,
}

impl Written {
    /// Commits `tx` and indexes the new content from memory (every row is
    /// new, enabled and has plain signals only: see
    /// [`crate::catalog::Catalog::apply_fresh`], which keeps a later change
    /// to these rows applied after this; on PostgreSQL the catalog's apply
    /// lock is held across the commit).
    pub(super) async fn commit(
        self,
        state: &AppState,
        tx: sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), ApiError> {
        // On PostgreSQL other writers commit during this commit (no write
        // lock), so an apply after it would nearly always find something
        // applied since the mark and re-read the batch: hold the lock across
        // the commit there. On SQLite, writers wait for this commit anyway.
        let held = match state.store.backend {
            crate::db::Backend::Postgres => Some(state.catalog.lock_apply().await),
            crate::db::Backend::Sqlite => None,
        };
        let mark = state.catalog.apply_mark();
        tx.commit().await?;
        state
            .catalog
            .apply_fresh(held, &state.store, mark, &self.changes, &self.fresh)
            .await
            .map_err(ApiError::internal)
    }
}

struct Import<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    bank: &'a BankRow,
    format: Format,
    source: Option<String>,
    batch: Batch,
    lines: usize,
    added: u64,
    duplicates: u64,
    rejected: Vec<Value>,
    rejected_count: u64,
}

impl Import<'_> {
    fn reject(&mut self, line: usize, error: String) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_REJECTED_LISTED {
            self.rejected.push(json!({"line": line, "error": error}));
        }
    }

    async fn line(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.lines += 1;
        let n = self.lines;
        if let Err(e) = self.batch.line(self.format, n, bytes) {
            self.reject(n, e);
        }
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        let batch = std::mem::take(&mut self.batch);
        if batch.len() == 0 {
            return Ok(());
        }
        let s = &self.state.store;
        let mut tx = s.begin().await?;
        let written = batch
            .write(
                s,
                &mut tx,
                self.bank,
                &self.caller.key_id,
                self.source.as_deref(),
                self.format,
            )
            .await?;
        self.added += written.added;
        self.duplicates += written.duplicates;
        written.commit(self.state, tx).await
    }
}

/// Streams a list into a bank. Idempotent: a record already in the bank is
/// counted as a duplicate. Bad lines are reported with their numbers; the
/// rest are imported. Records are committed in batches: if the connection
/// drops, what was committed stays (re-running the import is safe).
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(q): Query<ImportQuery>,
    body: Body,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let format = format_of(q.format.as_deref())?;
    if q.source.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::bad_request("source is over 200 characters"));
    }
    let mut imp = Import {
        state: &state,
        caller: &caller,
        bank: &bank,
        format,
        source: q.source.clone(),
        batch: Batch::default(),
        lines: 0,
        added: 0,
        duplicates: 0,
        rejected: Vec::new(),
        rejected_count: 0,
    };
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut skipping = false; // inside an over-long line
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        let mut rest = &chunk[..];
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(nl);
            rest = &after[1..];
            if skipping {
                skipping = false;
                continue;
            }
            if buf.is_empty() {
                imp.line(line).await?;
            } else {
                buf.extend_from_slice(line);
                let l = std::mem::take(&mut buf);
                imp.line(&l).await?;
            }
        }
        if !skipping {
            buf.extend_from_slice(rest);
            if buf.len() > MAX_LINE {
                imp.lines += 1;
                let n = imp.lines;
                imp.reject(n, format!("line longer than {MAX_LINE} bytes"));
                buf.clear();
                skipping = true;
            }
        }
    }
    if !buf.is_empty() && !skipping {
        imp.line(&std::mem::take(&mut buf)).await?;
    }
    imp.flush().await?;
    Ok(Json(json!({
        "bank": bank.name,
        "format": format.name(),
        "source": imp.source,
        "lines": imp.lines,
        "added": imp.added,
        "duplicates": imp.duplicates,
        "rejected_count": imp.rejected_count,
        "rejected": imp.rejected,
    })))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    include_disabled: Option<bool>,
}

/// Streams a bank's signals as a list (enabled content only unless
/// `include_disabled=true`; the CSV format carries PDQ hashes only).
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(bank_name): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    caller.require(Role::Curator)?;
    let bank = bank_or_404(&state, &bank_name).await?;
    let format = format_of(q.format.as_deref())?;
    let all = q.include_disabled.unwrap_or(false);
    let store = state.store.clone();
    let (bank_id, bank_name) = (bank.id, bank.name.clone());
    let sql = store
        .sql(
            "SELECT s.id, s.signal_type, s.value, s.quality, c.note, c.metadata, c.enabled, c.disabled_until \
             FROM signals s JOIN content c ON c.id = s.content_id \
             WHERE s.bank_id = ? AND s.id > ? ORDER BY s.id LIMIT 5000",
        )
        .into_owned();
    let header = format.header().map(|h| format!("{h}\n").into_bytes());
    let stream =
        futures_util::stream::unfold((0i64, false, header), move |(after, done, header)| {
            let store = store.clone();
            let sql = sql.clone();
            let bank_name = bank_name.clone();
            async move {
                if let Some(h) = header {
                    return Some((
                        Ok::<_, std::io::Error>(bytes::Bytes::from(h)),
                        (after, false, None),
                    ));
                }
                if done {
                    return None;
                }
                let rows = match sqlx::query(&sql)
                    .bind(bank_id)
                    .bind(after)
                    .fetch_all(&store.pool)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("export of {bank_name}: {e}");
                        return Some((Err(std::io::Error::other(e)), (after, true, None)));
                    }
                };
                let mut out = Vec::new();
                let mut last = after;
                let now = now_ms();
                for r in &rows {
                    last = r.try_get("id").unwrap_or(last);
                    let enabled = r.try_get::<i64, _>("enabled").unwrap_or(0) != 0
                        || r.try_get::<Option<i64>, _>("disabled_until")
                            .ok()
                            .flatten()
                            .is_some_and(|t| t <= now);
                    if !enabled && !all {
                        continue;
                    }
                    let (Ok(t), Ok(v)) = (
                        r.try_get::<String, _>("signal_type"),
                        r.try_get::<String, _>("value"),
                    ) else {
                        continue;
                    };
                    let Ok(sig) = AnySignal::parse(&t, &v) else {
                        continue;
                    };
                    if format == Format::Csv && !matches!(sig, AnySignal::Media(Signal::Pdq(_))) {
                        continue;
                    }
                    let rec = Record {
                        signal: sig,
                        quality: r
                            .try_get::<Option<i64>, _>("quality")
                            .ok()
                            .flatten()
                            .map(|q| q as u32),
                        note: r.try_get("note").ok().flatten(),
                        metadata: r
                            .try_get::<Option<String>, _>("metadata")
                            .ok()
                            .flatten()
                            .and_then(|m| serde_json::from_str(&m).ok()),
                    };
                    let _ = format.write_any_record(&rec, &mut out);
                }
                let done = rows.len() < 5000;
                Some((Ok(bytes::Bytes::from(out)), (last, done, None)))
            }
        });
    Ok((
        [(CONTENT_TYPE, format.content_type())],
        Body::from_stream(stream),
    )
        .into_response())
}
