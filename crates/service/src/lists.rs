//! List import and export: python-threatexchange's `pdq HASH` lines, CSV
//! `hash,quality,note`, and JSON lines. Lists may hold text and entity
//! signals too (`text_hash HEX`, `phone +E164`, `url URL`, …; see
//! docs/SIGNALS.md); CSV carries PDQ hashes only.
//!
//! - [`import`]: a list streamed into a bank, committed in batches of
//!   [`BATCH`] records ([`Batch`], also the import jobs' unit);
//! - [`export`]: a bank's signals streamed as a list.

use std::collections::HashSet;

use bulwark_banks::{AnyRecord, AnySignal, Format, Record, Signal};
use bulwark_store::{self as db, BankRow, NewContent, SignalRow, Store};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::banks::by_name;
use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// Longest accepted line.
pub const MAX_LINE: usize = 64 << 10;
/// Records per transaction.
pub const BATCH: usize = 2000;
/// Rejected lines listed in the answer (all are counted).
pub const MAX_REJECTED_LISTED: usize = 1000;
/// Longest `source` of an import.
pub const MAX_SOURCE_CHARS: usize = 200;

/// The list format named `f` (`lines` when none is).
pub fn format_of(f: Option<&str>) -> Result<Format> {
    f.unwrap_or("lines")
        .parse::<Format>()
        .map_err(Error::bad_request)
}

/// Parsed records of one batch, with their line numbers.
#[derive(Default)]
pub struct Batch {
    records: Vec<(usize, AnyRecord)>,
    lines: Option<(usize, usize)>,
}

impl Batch {
    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No records held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Parses line `n` (without its newline) into the batch; why it was
    /// rejected. Blank and comment lines are skipped.
    pub fn line(&mut self, format: Format, n: usize, bytes: &[u8]) -> Result<(), String> {
        let first = self.lines.map_or(n, |(f, _)| f);
        self.lines = Some((first, n));
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if let Some(r) = format.parse_any_line(text)? {
            self.records.push((n, r));
        }
        Ok(())
    }

    /// The content key of `r`, as [`Batch::write`] writes it: one content
    /// row per key in a bank.
    fn key(r: &AnyRecord) -> String {
        format!("{}:{}", r.signal.type_name(), r.signal.value())
    }

    /// Takes out the records whose key is in `before`, the keys of the
    /// batch of the same list just before this one: once that batch is in
    /// the bank they are duplicates. How many it took out, and the keys of
    /// the records left. An import job that writes two batches at once
    /// does so, so that the two never insert the same key (the earlier
    /// could wait for the later's row while the job waits for the earlier:
    /// `imports::run_for`).
    pub fn drop_keys(&mut self, before: &HashSet<String>) -> (usize, HashSet<String>) {
        let n = self.records.len();
        let mut keys = HashSet::with_capacity(n);
        self.records.retain(|(_, r)| {
            let key = Batch::key(r);
            let keep = !before.contains(&key);
            if keep {
                keys.insert(key);
            }
            keep
        });
        (n - self.records.len(), keys)
    }

    /// Writes the batch in `tx` (content, signals, changes and one audit
    /// row); the caller commits it with [`Written::commit`]. `marks`: the
    /// transaction's, when it has them (`db::insert_contents`).
    #[allow(clippy::too_many_arguments)]
    pub async fn write(
        self,
        s: &Store,
        tx: &mut sqlx::AnyConnection,
        marks: Option<&mut db::TxMarks>,
        bank: &BankRow,
        actor: &str,
        source: Option<&str>,
        format: Format,
    ) -> Result<Written> {
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
                    dedup_key: Batch::key(r),
                    note: r.note.clone(),
                    metadata: r.metadata.as_ref().map(|m| m.to_string()),
                    source: source.map(str::to_string),
                    signals: vec![SignalRow {
                        signal_type: sig.type_name().to_string(),
                        value: sig.value(),
                        quality: r.quality.map(i64::from),
                    }],
                    frames: Vec::new(),
                    frame_extras: Vec::new(),
                }
            })
            .collect();
        let (ids, changes) =
            db::insert_contents(s, &mut *tx, marks, bank.id, actor, &items).await?;
        let added = ids.iter().filter(|i| i.is_some()).count() as u64;
        let duplicates = ids.len() as u64 - added;
        // New signal rows per type (one a record), for the counters of a
        // batch that keeps them itself (`Written::counts`).
        let mut signals: Vec<(&'static str, i64)> = Vec::new();
        for ((_, r), _) in self.records.iter().zip(&ids).filter(|(_, id)| id.is_some()) {
            add_count(&mut signals, r.signal.type_name(), 1);
        }
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
            signals,
        })
    }
}

/// A batch written in a transaction, not yet committed.
#[derive(Default)]
pub struct Written {
    /// Records added.
    pub added: u64,
    /// Records the bank already held.
    pub duplicates: u64,
    changes: Vec<(i64, Option<i64>, Option<i64>)>,
    /// (bank, content, hash) of each new content with a PDQ hash.
    fresh: Vec<(i64, i64, bulwark_pdq::PdqHash)>,
    /// New signal rows per type.
    signals: Vec<(&'static str, i64)>,
}

impl Written {
    /// Adds a later batch written in the same transaction.
    pub fn absorb(&mut self, later: Written) {
        self.added += later.added;
        self.duplicates += later.duplicates;
        self.changes.extend(later.changes);
        self.fresh.extend(later.fresh);
        for (t, n) in later.signals {
            add_count(&mut self.signals, t, n);
        }
    }

    /// What the batch adds to its bank's counters: content rows (all
    /// enabled) and signal rows per type. A batch whose statements left
    /// the counters to it adds them before it commits
    /// (`bulwark_store::imports::add_counts`).
    pub fn counts(&self) -> (i64, &[(&'static str, i64)]) {
        (self.added as i64, &self.signals)
    }

    /// Commits `tx` and indexes the new content from memory (every row is
    /// new, enabled and has plain signals only: see
    /// [`Catalog::apply_fresh`], which keeps a later change to these rows
    /// applied after this). `marks`, the transaction's if it had them, are
    /// then told of the commit (`db::TxMarks::committed`).
    pub async fn commit(
        self,
        store: &Store,
        catalog: &Catalog,
        tx: sqlx::Transaction<'_, sqlx::Any>,
        marks: Option<db::TxMarks>,
    ) -> Result<()> {
        // Not holding the apply lock across the commit: single writes beside
        // the import apply meanwhile, and only an apply that touched these
        // rows (or a load) makes the batch re-read them. Until 2026-12-03 any
        // apply did, so PostgreSQL held the lock across its commit and every
        // single write waited for the batch's commit.
        let mark = catalog.apply_mark();
        tx.commit().await?;
        self.committed(store, catalog, mark, marks).await
    }

    /// What follows the commit of a batch: `marks` are told, and the new
    /// content is indexed from memory. `mark` is the catalog's
    /// [`Catalog::apply_mark`] from before the commit. For a batch the
    /// caller committed itself; [`Written::commit`] commits and calls it.
    pub async fn committed(
        self,
        store: &Store,
        catalog: &Catalog,
        mark: u64,
        marks: Option<db::TxMarks>,
    ) -> Result<()> {
        if let Some(m) = marks {
            m.committed(store).await;
        }
        catalog
            .apply_fresh(store, mark, &self.changes, &self.fresh)
            .await
            .map_err(Error::internal)
    }
}

/// Adds `n` to type `t`'s count in `counts` (a handful of types at most).
fn add_count(counts: &mut Vec<(&'static str, i64)>, t: &'static str, n: i64) {
    match counts.iter_mut().find(|(have, _)| *have == t) {
        Some((_, m)) => *m += n,
        None => counts.push((t, n)),
    }
}

/// A line an import rejected. Fields in sorted order, as the `json!`
/// builders this replaced wrote them (and as import jobs store them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Why.
    pub error: String,
    /// Its number, from 1.
    pub line: usize,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The bank.
    pub bank: String,
    /// The list format.
    pub format: &'static str,
    /// Which list it was, as the caller named it.
    pub source: Option<String>,
    /// Lines read.
    pub lines: usize,
    /// Records added.
    pub added: u64,
    /// Records the bank already held.
    pub duplicates: u64,
    /// Lines rejected.
    pub rejected_count: u64,
    /// The first [`MAX_REJECTED_LISTED`] of them.
    pub rejected: Vec<Rejected>,
}

struct Import<'a> {
    store: &'a Store,
    catalog: &'a Catalog,
    actor: &'a str,
    bank: &'a BankRow,
    format: Format,
    source: Option<String>,
    batch: Batch,
    lines: usize,
    added: u64,
    duplicates: u64,
    rejected: Vec<Rejected>,
    rejected_count: u64,
}

impl Import<'_> {
    fn reject(&mut self, line: usize, error: String) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_REJECTED_LISTED {
            self.rejected.push(Rejected { line, error });
        }
    }

    async fn line(&mut self, bytes: &[u8]) -> Result<()> {
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

    async fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        let s = self.store;
        let mut tx = s.begin().await?;
        // Read before the batch writes anything (`db::TxMarks`), so that
        // the next batch's de-dup check need not read this one back.
        let mut marks = db::TxMarks::read(s, &mut tx).await?;
        let written = batch
            .write(
                s,
                &mut tx,
                marks.as_mut(),
                self.bank,
                self.actor,
                self.source.as_deref(),
                self.format,
            )
            .await?;
        self.added += written.added;
        self.duplicates += written.duplicates;
        written.commit(s, self.catalog, tx, marks).await
    }
}

/// Streams a list (`body`'s chunks) into the bank named `bank`, in
/// `format` (default `lines`). Idempotent: a record already in the bank is
/// counted as a duplicate. Bad lines are reported with their numbers; the
/// rest are imported. Records are committed in batches: if the stream
/// fails, what was committed stays (re-running the import is safe).
pub async fn import<S, E>(
    store: &Store,
    catalog: &Catalog,
    actor: &str,
    bank: &str,
    format: Option<&str>,
    source: Option<String>,
    mut body: S,
) -> Result<ImportReport>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let bank = by_name(store, bank).await?;
    let format = format_of(format)?;
    if source.as_ref().is_some_and(|s| s.len() > MAX_SOURCE_CHARS) {
        return Err(Error::bad_request(format!(
            "source is over {MAX_SOURCE_CHARS} characters"
        )));
    }
    let mut imp = Import {
        store,
        catalog,
        actor,
        bank: &bank,
        format,
        source,
        batch: Batch::default(),
        lines: 0,
        added: 0,
        duplicates: 0,
        rejected: Vec::new(),
        rejected_count: 0,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut skipping = false; // inside an over-long line
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| Error::bad_request(format!("reading the request body: {e}")))?;
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
    Ok(ImportReport {
        bank: bank.name.clone(),
        format: format.name(),
        source: imp.source,
        lines: imp.lines,
        added: imp.added,
        duplicates: imp.duplicates,
        rejected_count: imp.rejected_count,
        rejected: imp.rejected,
    })
}

/// The list lines of one page of exported signals.
fn export_lines(rows: &[db::content::ExportRow], format: Format, all: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let now = db::now_ms();
    for r in rows {
        let enabled = r.enabled || r.disabled_until.is_some_and(|t| t <= now);
        if !enabled && !all {
            continue;
        }
        let Ok(sig) = AnySignal::parse(&r.signal_type, &r.value) else {
            continue;
        };
        if format == Format::Csv && !matches!(sig, AnySignal::Media(Signal::Pdq(_))) {
            continue;
        }
        let rec = Record {
            signal: sig,
            quality: r.quality.map(|q| q as u32),
            note: r.note.clone(),
            metadata: r
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
        };
        let _ = format.write_any_record(&rec, &mut out);
    }
    out
}

/// A bank's signals as a list in `format` (default `lines`): enabled
/// content only unless `include_disabled`; the CSV format carries PDQ
/// hashes only. The stream reads the store a page at a time.
pub async fn export(
    store: &Store,
    bank: &str,
    format: Option<&str>,
    include_disabled: bool,
) -> Result<(
    Format,
    impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
)> {
    let bank = by_name(store, bank).await?;
    let format = format_of(format)?;
    let store = store.clone();
    let (bank_id, bank_name) = (bank.id, bank.name);
    let header = format.header().map(|h| format!("{h}\n").into_bytes());
    let stream =
        futures_util::stream::unfold((0i64, false, header), move |(after, done, header)| {
            let store = store.clone();
            let bank_name = bank_name.clone();
            async move {
                if let Some(h) = header {
                    return Some((Ok(Bytes::from(h)), (after, false, None)));
                }
                if done {
                    return None;
                }
                let page = match db::content::export_page(&store, bank_id, after).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!("export of {bank_name}: {e}");
                        return Some((Err(std::io::Error::other(e)), (after, true, None)));
                    }
                };
                let out = export_lines(&page.rows, format, include_disabled);
                let last = page.last.unwrap_or(after);
                Some((Ok(Bytes::from(out)), (last, page.done, None)))
            }
        });
    Ok((format, stream))
}
