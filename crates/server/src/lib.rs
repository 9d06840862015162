//! `bulwark serve`: the matcher service.
//!
//! Banks of known hashes in SQLite (embedded, the default) or PostgreSQL
//! (shared by stateless replicas); PDQ, MD5, SHA-256 and vPDQ matching over
//! HTTP; API keys with roles; an audit log of every change to banks. See
//! docs/SERVICE.md for the API and `openapi.json` for its exact shape.

pub mod api;
pub mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod listen;

// The layers under HTTP, under the names handlers use: the store (all SQL,
// the schema) and the service's state and operations (no axum).
pub use bulwark_service::{catalog, extras, media, metrics, secrets};
pub use bulwark_store as db;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rand::Rng;

pub use config::{Config, FileConfig};

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: db::Store,
    /// The in-memory matching state.
    pub catalog: Arc<catalog::Catalog>,
    /// Verified API keys.
    pub keys: Arc<auth::KeyCache>,
    /// Decoding and hashing of uploads.
    pub media: media::Pool,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Settings.
    pub config: Arc<Config>,
    /// Private matching: the current pdata release.
    pub releases: Arc<api::vouchers::Releases>,
    /// The index of banked text hashes (issue 18).
    pub text_index: Arc<api::signals::TextIndexCache>,
    /// The key-encryption key for secrets stored in the database.
    pub kek: Arc<secrets::Kek>,
}

/// How often a changed index is snapshotted to the data directory, when the
/// changes since the last snapshot are worth its cost ([`snapshot_due`]).
const SNAPSHOT_EVERY: Duration = Duration::from_secs(600);
/// How often a changed index is snapshotted whatever the changes: it
/// bounds the index journal's length on a node with a trickle of writes.
const SNAPSHOT_AT_LEAST_EVERY: Duration = Duration::from_secs(6 * 3600);
/// Changes since the last snapshot past which [`SNAPSHOT_EVERY`] applies
/// whatever the index's size: a restart whose index journal is missing
/// replays the store's changes since the snapshot, up to
/// [`catalog::MAX_REPLAY`] (200,000), and reads the whole store past that.
const SNAPSHOT_CHANGES: i64 = 100_000;
/// Sooner when this many changes are not in the snapshot (an import). A
/// restart reads the changes since the snapshot from the index journal
/// (`catalog::JOURNAL_FLUSH`); a snapshot keeps the journal, and the
/// restart's replay of it, short. Without the journal (it failed to write),
/// a restart reads the store when it is further behind than
/// [`catalog::MAX_REPLAY`].
const CHECKPOINT_CHANGES: i64 = 2_000_000;
/// But not more often than this (writing a 10M-entry snapshot takes seconds).
const CHECKPOINT_MIN: Duration = Duration::from_secs(30);

/// Whether the refresh loop writes a snapshot of the index now: `behind`
/// changes are not in the last one, written `since` ago, and the index
/// holds `entries` codes; `journal`: the index journal is being kept.
///
/// Writing a snapshot folds the whole index into one segment, so each costs
/// a rebuild of every entry (about 10 s of one core at 10M). Every
/// [`SNAPSHOT_EVERY`] with any change, a node with a trickle of writes
/// rebuilt 10M entries every ten minutes for a handful of changes. The
/// index journal holds those changes for a restart, so the ten-minute
/// snapshot now waits until the changes are a sixteenth of the index or
/// [`SNAPSHOT_CHANGES`], or until [`SNAPSHOT_AT_LEAST_EVERY`]; without a
/// journal (it failed to write, or a snapshot has yet to start it) it
/// comes every ten minutes as before. An import checkpoints sooner
/// ([`CHECKPOINT_CHANGES`]).
fn snapshot_due(behind: i64, since: Duration, entries: usize, journal: bool) -> bool {
    if behind <= 0 {
        return false;
    }
    if behind > CHECKPOINT_CHANGES && since > CHECKPOINT_MIN {
        return true;
    }
    let worth_it =
        !journal || behind >= SNAPSHOT_CHANGES || behind.saturating_mul(16) >= entries as i64;
    (since > SNAPSHOT_EVERY && worth_it) || since > SNAPSHOT_AT_LEAST_EVERY
}

/// A service opened on its store, not yet listening.
pub struct Service {
    /// Shared state.
    pub state: AppState,
    /// Where the first admin key was written, on a first start.
    pub admin_key_file: Option<std::path::PathBuf>,
}

impl Service {
    /// Opens the store (running migrations), creates the first admin key on an
    /// empty store, and loads the index.
    pub async fn open(config: Config) -> anyhow::Result<Service> {
        create_private_dir(&config.data_dir)?;
        let kek = Arc::new(secrets::Kek::load(
            config.kek_file.as_deref(),
            &config.data_dir,
        )?);
        let store = db::Store::open(&config.database_url()).await?;
        store.set_single_write_window(config.import_share_after_write);
        if config.database.is_none() {
            restrict_database_files(&config.data_dir.join("bulwark.db"))?;
        }
        let admin_key_file = if config.bootstrap_admin {
            auth::bootstrap_admin(&store, &config.data_dir).await?
        } else {
            None
        };
        let catalog = Arc::new(catalog::Catalog::new());
        catalog.set_snapshot_path(config.data_dir.join("index.snapshot"));
        // This process owns the data directory: it keeps the index journal.
        catalog.set_journaling(true);
        if !catalog.load(&store).await? || !catalog.journal_open() {
            // Next start reads the snapshot (and its journal) instead of
            // every row.
            let (c, s) = (Arc::clone(&catalog), store.clone());
            tokio::spawn(async move {
                if let Err(e) = c.save_snapshot(&s).await {
                    tracing::warn!("writing the index snapshot failed: {e:#}");
                }
            });
        }
        let state = AppState {
            media: media::Pool::new(&config.pool_options()),
            store,
            catalog,
            keys: Arc::new(auth::KeyCache::new()),
            metrics: Arc::new(metrics::Metrics::default()),
            config: Arc::new(config),
            releases: Arc::new(api::vouchers::Releases::default()),
            text_index: Arc::default(),
            kek,
        };
        // The text-hash index's one full read, off the request path.
        let warm = state.clone();
        tokio::spawn(async move {
            warm.text_index.warm(&warm.store, &warm.catalog).await;
        });
        // On SQLite, what the first write would build under the write lock.
        let warm = state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = warm.warm().await {
                tracing::warn!("filling the content de-duplication map at start failed: {e:#}");
            }
        });
        Ok(Service {
            state,
            admin_key_file,
        })
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
    }

    /// Polls the store for other replicas' writes, forever, every
    /// `refresh_interval` ± 50 % so that replicas do not poll in step.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut last_snapshot = std::time::Instant::now();
            loop {
                let base = state.config.refresh_interval.as_secs_f64();
                let wait = base * rand::thread_rng().gen_range(0.5..1.5);
                tokio::time::sleep(Duration::from_secs_f64(wait.max(0.01))).await;
                match state.catalog.refresh(&state.store).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!("applied {n} changes from other replicas"),
                    Err(e) => tracing::warn!("refreshing from the database failed: {e:#}"),
                }
                state.text_index.compact().await;
                let c = &state.catalog;
                c.compact_index_when_idle();
                let behind = c.applied_seq() - c.snapshot_seq();
                let (entries, _) = c.index_size();
                let journal = c.journal_open();
                if snapshot_due(behind, last_snapshot.elapsed(), entries, journal) {
                    last_snapshot = std::time::Instant::now();
                    if let Err(e) = c.save_snapshot(&state.store).await {
                        tracing::warn!("writing the index snapshot failed: {e:#}");
                    }
                }
            }
        })
    }

    /// Writes the index journal every [`catalog::JOURNAL_FLUSH`], forever.
    pub fn spawn_journal(&self) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(catalog::JOURNAL_FLUSH).await;
                if let Err(e) = state.catalog.flush_journal(&state.store).await {
                    tracing::warn!("writing the index journal failed: {e:#}");
                }
            }
        })
    }

    /// Listens until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        let addr = self.state.config.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
        let refresh = self.spawn_refresh();
        let journal = self.spawn_journal();
        let vouchers = api::vouchers::spawn_worker(self.state.clone());
        let exchanges = api::hma::exchanges::spawn_scheduler(self.state.clone());
        let imports = api::imports::spawn_worker(self.state.clone());
        let c = &self.state.config;
        let limits = listen::Limits {
            header_read_timeout: c.header_read_timeout,
            max_connections: listen::fit_connections(c.max_connections),
            drain_timeout: c.request_timeout,
        };
        let console = console::spawn_worker(self.state.clone());
        tracing::info!("bulwark listening on http://{}", listener.local_addr()?);
        listen::serve(listener, self.router(), limits, shutdown_signal()).await;
        refresh.abort();
        journal.abort();
        vouchers.abort();
        exchanges.abort();
        imports.abort();
        console.abort();
        if let Err(e) = self.state.catalog.save_snapshot(&self.state.store).await {
            tracing::warn!("writing the index snapshot failed: {e:#}");
        }
        Ok(())
    }
}

/// Creates the data directory readable by its owner only (0700 on Unix); an
/// existing directory is left as it is.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(|e| anyhow::anyhow!("creating data directory {}: {e}", dir.display()))
}

/// The embedded database and its WAL files: owner read/write only (0600).
fn restrict_database_files(db: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| anyhow::anyhow!("restricting {}: {e}", p.display()))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// A 10M-entry index with a trickle of changes is not rebuilt every ten
    /// minutes for them, but within [`SNAPSHOT_AT_LEAST_EVERY`]; a small
    /// index, many changes, or no journal keep the ten-minute snapshot; an
    /// import's checkpoint and an unchanged index are as before.
    #[test]
    fn snapshots_wait_while_the_changes_are_few_beside_a_large_index() {
        let (big, small) = (10_000_000, 50_000);
        // A trickle beside a large index, journal kept: not at ten minutes.
        assert!(!snapshot_due(300, 11 * MIN, big, true));
        assert!(!snapshot_due(99_999, 5 * 60 * MIN, big, true));
        // But at six hours, and past SNAPSHOT_CHANGES or a sixteenth.
        assert!(snapshot_due(1, 6 * 60 * MIN + MIN, big, true));
        assert!(snapshot_due(100_000, 11 * MIN, big, true));
        assert!(snapshot_due(3_125, 11 * MIN, small, true));
        assert!(!snapshot_due(3_124, 11 * MIN, small, true));
        // Without a journal, every ten minutes as before.
        assert!(snapshot_due(1, 11 * MIN, big, false));
        // Never before ten minutes, save an import's checkpoint.
        assert!(!snapshot_due(1_999_999, 9 * MIN, big, true));
        assert!(!snapshot_due(2_000_001, Duration::from_secs(29), big, true));
        assert!(snapshot_due(2_000_001, Duration::from_secs(31), big, true));
        // Nothing changed: no snapshot, however long.
        assert!(!snapshot_due(0, 100 * 60 * MIN, small, false));
    }
}
