//! The index journal in a node's data directory (`index.journal`, beside
//! `index.snapshot`): every change this node applies to its index, appended
//! in the order applied, so that a restart rebuilds the index from the
//! snapshot and the journal instead of re-reading from the store every
//! content item changed since the snapshot (a million-line import between
//! two snapshots took a minute to replay that way). The format and its
//! replay are [`bulwark_index::journal`]'s.
//!
//! What makes it safe to trust at a restart:
//! - Records are encoded as changes are applied (under the catalog's apply
//!   lock, so in the order applied) and written by [`Journal::flush`] after
//!   a synced write to the store: a record on disk never holds a state the
//!   store could still lose (an import batch commits without a sync of its
//!   own). The catalog still drops, at load, any record naming a change the
//!   store does not hold, and everything after it.
//! - A write cut short by a crash ends the journal at the last whole record
//!   (length and CRC-32 per record); the changes after it are replayed from
//!   the store.
//! - A journal names the snapshot it follows (a random id in both); the
//!   one of another snapshot is not used. Writing a snapshot first starts
//!   its journal as `index.journal.new`, written beside the current one
//!   (records go to both), and renames it over the current one once the
//!   snapshot is complete: a crash in between (writing a 10M-entry
//!   snapshot takes seconds) leaves the old snapshot with its whole journal.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bulwark_index::Code;
use bulwark_index::journal::{self, HEADER_LEN};
use bulwark_store::Store;

/// Most bytes of records kept waiting for [`Journal::flush`].
const MAX_PENDING: usize = 256 << 20;

/// Encoded records waiting for [`Journal::flush`].
#[derive(Default)]
struct Pending {
    /// Whether a journal is open (records are kept only then).
    on: bool,
    bytes: Vec<u8>,
}

/// One journal file being appended to.
struct Sink {
    /// Opened for appending.
    file: std::fs::File,
    path: PathBuf,
    snapshot_id: u64,
    /// The file's length after the last whole write.
    len: u64,
}

/// The journals being written: the current snapshot's, and while a new
/// snapshot is written, the new one's too (each record goes to both, so a
/// crash before the new snapshot is complete leaves the old snapshot with
/// its whole journal).
#[derive(Default)]
struct Open {
    current: Option<Sink>,
    next: Option<Sink>,
}

/// This node's journal writer.
#[derive(Default)]
pub(crate) struct Journal {
    pending: std::sync::Mutex<Pending>,
    file: tokio::sync::Mutex<Open>,
}

/// The journal that follows `snapshot` (`index.snapshot`).
pub(crate) fn path_of(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("journal")
}

/// Where a snapshot being written keeps its journal until it is complete.
fn next_path_of(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("journal.new")
}

/// The journal of snapshot `id` beside `snapshot`, if one is there and
/// readable (the settled one, or one whose snapshot's rename was cut short).
pub(crate) fn read(snapshot: &Path, id: u64) -> Option<(PathBuf, journal::Journal)> {
    for path in [path_of(snapshot), next_path_of(snapshot)] {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        match journal::read(&bytes) {
            Ok(j) if j.snapshot_id == id => {
                if j.torn {
                    tracing::warn!(
                        "index journal {} ends in a damaged or cut-off record at byte {}: \
                         the changes after it are read from the store",
                        path.display(),
                        j.valid_len
                    );
                }
                return Some((path, j));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("index journal {} not used: {e}", path.display()),
        }
    }
    None
}

impl Journal {
    /// Encodes an applied change, if a journal is open.
    pub(crate) fn record(&self, seqs: &[i64], removes: &[u64], inserts: &[(u64, Code)]) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !p.on {
            return;
        }
        if p.bytes.len() > MAX_PENDING {
            // Nothing is writing the journal (no flusher, or the store
            // refuses the synced write): stop keeping records rather than
            // memory. The journal on disk ends where it ends; a restart
            // re-reads the rest from the store.
            tracing::warn!(
                "index journal: {} MiB of records were never written; journaling stops until \
                 the next snapshot",
                p.bytes.len() >> 20
            );
            p.bytes = Vec::new();
            p.on = false;
            return;
        }
        journal::encode_record(&mut p.bytes, seqs, removes, inserts);
    }

    /// Whether a journal is open.
    pub(crate) fn is_on(&self) -> bool {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).on
    }

    /// Writes the records encoded so far, after a synced write to the store
    /// (so that the store holds everything they read). Returns the bytes
    /// written.
    pub(crate) async fn flush(&self, store: &Store) -> anyhow::Result<usize> {
        let mut open = self.file.lock().await;
        flush_locked(&self.pending, &mut open, store).await
    }

    /// Starts the journal of a snapshot about to be written (`id`),
    /// `index.journal.new`: every later record goes to it as well as to the
    /// current journal until [`Journal::settle`] (the snapshot is complete:
    /// the new journal replaces the current one) or [`Journal::abandon`].
    pub(crate) async fn rotate(
        &self,
        store: &Store,
        snapshot: &Path,
        id: u64,
    ) -> anyhow::Result<()> {
        let mut open = self.file.lock().await;
        if let Err(e) = flush_locked(&self.pending, &mut open, store).await {
            tracing::warn!("flushing the index journal before a snapshot failed: {e:#}");
        }
        let path = next_path_of(snapshot);
        open.next = Some(Sink {
            file: create(&path, id)?,
            path,
            snapshot_id: id,
            len: HEADER_LEN as u64,
        });
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).on = true;
        Ok(())
    }

    /// After snapshot `id` is complete: its journal becomes `index.journal`,
    /// the only one written.
    pub(crate) async fn settle(&self, snapshot: &Path, id: u64) -> anyhow::Result<()> {
        let mut open = self.file.lock().await;
        if open.next.as_ref().is_some_and(|n| n.snapshot_id == id) {
            let mut next = open.next.take().expect("checked");
            let main = path_of(snapshot);
            std::fs::rename(&next.path, &main)?;
            next.path = main;
            open.current = Some(next);
        }
        Ok(())
    }

    /// Snapshot `id` was not written: its journal is dropped and the
    /// current one goes on alone.
    pub(crate) async fn abandon(&self, id: u64) {
        let mut open = self.file.lock().await;
        if open.next.as_ref().is_some_and(|n| n.snapshot_id == id) {
            let next = open.next.take().expect("checked");
            let _ = std::fs::remove_file(&next.path);
        }
    }

    /// Appends to the journal of snapshot `id` read at load (`path`, its
    /// whole records ending at `valid_len`; anything after is cut off), or
    /// starts an empty one for it when there was none.
    pub(crate) async fn resume(
        &self,
        snapshot: &Path,
        id: u64,
        found: Option<(PathBuf, u64)>,
    ) -> anyhow::Result<()> {
        let main = path_of(snapshot);
        let (file, len) = match found {
            Some((path, valid_len)) => {
                let file = std::fs::OpenOptions::new().append(true).open(&path)?;
                file.set_len(valid_len)?;
                if path != main {
                    std::fs::rename(&path, &main)?;
                }
                (file, valid_len)
            }
            None => (create(&main, id)?, HEADER_LEN as u64),
        };
        let _ = std::fs::remove_file(next_path_of(snapshot));
        let mut open = self.file.lock().await;
        *open = Open {
            current: Some(Sink {
                file,
                path: main,
                snapshot_id: id,
                len,
            }),
            next: None,
        };
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).on = true;
        Ok(())
    }
}

/// A new journal file holding only the header of snapshot `id`, opened
/// for appending.
fn create(path: &Path, id: u64) -> anyhow::Result<std::fs::File> {
    std::fs::write(path, journal::encode_header(id))?;
    Ok(std::fs::OpenOptions::new().append(true).open(path)?)
}

async fn flush_locked(
    pending: &std::sync::Mutex<Pending>,
    open: &mut Open,
    store: &Store,
) -> anyhow::Result<usize> {
    let bytes = {
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut p.bytes)
    };
    if bytes.is_empty() || (open.current.is_none() && open.next.is_none()) {
        return Ok(0);
    }
    let (bytes, written) = match bulwark_store::catalog::sync(store).await {
        // Everything these records read was committed before this returns.
        Ok(()) => append(open, bytes).await,
        Err(e) => (bytes, Err(e.into())),
    };
    for sink in open.current.iter_mut().chain(open.next.iter_mut()) {
        match &written {
            Ok(n) => sink.len += *n as u64,
            // Cut any part written (appends resume at the new end).
            Err(_) => {
                let _ = sink.file.set_len(sink.len);
            }
        }
    }
    if written.is_err() {
        // Kept for the next flush, ahead of what came since.
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        let later = std::mem::replace(&mut p.bytes, bytes);
        p.bytes.extend_from_slice(&later);
    }
    written
}

/// Appends `bytes` to each open journal on a blocking thread (at import
/// speed a flush is megabytes, which a runtime thread should not wait for);
/// hands `bytes` back for a retry when a write failed.
async fn append(open: &Open, bytes: Vec<u8>) -> (Vec<u8>, anyhow::Result<usize>) {
    let files: std::io::Result<Vec<std::fs::File>> = open
        .current
        .iter()
        .chain(open.next.iter())
        .map(|sink| sink.file.try_clone())
        .collect();
    let mut files = match files {
        Ok(files) => files,
        Err(e) => return (bytes, Err(e.into())),
    };
    let n = bytes.len();
    let task = tokio::task::spawn_blocking(move || {
        let written = files.iter_mut().try_for_each(|f| f.write_all(&bytes));
        (bytes, written)
    });
    match task.await {
        Ok((bytes, written)) => (bytes, written.map(|()| n).map_err(Into::into)),
        // The blocking pool is shutting down or the task panicked: the
        // records are lost with the process, and a restart re-reads them
        // from the store.
        Err(e) => (Vec::new(), Err(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &Path) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.join("j.db").display());
        Store::open(&url).await.unwrap()
    }

    fn ids_in(path: &Path) -> Vec<u64> {
        let j = journal::read(&std::fs::read(path).unwrap()).unwrap();
        j.records
            .iter()
            .flat_map(|r| r.inserts.iter().map(|(id, _)| *id))
            .collect()
    }

    /// What a crash while a snapshot is written leaves: the current journal
    /// has every record (also those applied during the write), so the old
    /// snapshot is still whole; the new journal has those since it began.
    #[tokio::test]
    async fn records_go_to_both_journals_while_a_snapshot_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let snapshot = dir.path().join("index.snapshot");
        let j = Journal::default();
        j.resume(&snapshot, 1, None).await.unwrap();
        j.record(&[1], &[], &[(10, [1; 32])]);
        j.rotate(&store, &snapshot, 2).await.unwrap();
        j.record(&[2], &[], &[(20, [2; 32])]);
        j.flush(&store).await.unwrap();
        // No settle: the process died before the snapshot was complete.
        assert_eq!(ids_in(&path_of(&snapshot)), [10, 20]);
        assert_eq!(ids_in(&next_path_of(&snapshot)), [20]);
        assert_eq!(read(&snapshot, 1).unwrap().0, path_of(&snapshot));
        assert_eq!(read(&snapshot, 2).unwrap().0, next_path_of(&snapshot));
        // Completed: the new journal replaces the old and goes on alone.
        j.settle(&snapshot, 2).await.unwrap();
        j.record(&[3], &[], &[(30, [3; 32])]);
        j.flush(&store).await.unwrap();
        assert_eq!(ids_in(&path_of(&snapshot)), [20, 30]);
        assert!(!next_path_of(&snapshot).exists());
        assert!(read(&snapshot, 1).is_none());
        // Abandoned: the current one goes on alone.
        j.rotate(&store, &snapshot, 3).await.unwrap();
        j.record(&[4], &[], &[(40, [4; 32])]);
        j.abandon(3).await;
        j.record(&[5], &[], &[(50, [5; 32])]);
        j.flush(&store).await.unwrap();
        assert_eq!(ids_in(&path_of(&snapshot)), [20, 30, 40, 50]);
        assert!(!next_path_of(&snapshot).exists());
    }
}
