//! Storage: one schema on SQLite (embedded, WAL) and PostgreSQL, through
//! sqlx's `Any` driver. Queries are written once with `?` placeholders and
//! numbered for PostgreSQL. Every write that changes what matches appends a
//! row to `changes`, in the same transaction, so other replicas can follow.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Arguments, Row};

pub mod banks;
pub mod catalog;
pub mod console;
pub mod content;
mod dedup;
pub mod devices;
pub mod hma;
pub mod imports;
pub mod keys;
mod postgres;
pub mod providers;
pub mod psi;
pub mod reports;
mod schema;
pub mod signals;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// How long after a single write ([`Store::single_writes_recent`]) an import
/// job on PostgreSQL writes one batch at a time, by default. Two at once
/// keep both cores of a 2-core machine busy, and single writes beside them
/// took twice as long (docs/benchmarks/serve.md, "Two batches at once on
/// PostgreSQL").
pub const SINGLE_WRITE_WINDOW: Duration = Duration::from_secs(1);

/// The shared store.
#[derive(Clone)]
pub struct Store {
    /// The connection pool.
    pub pool: AnyPool,
    /// The backend.
    pub backend: Backend,
    /// Callers of [`Store::begin`] waiting for their transaction to start:
    /// background bulk writers (import jobs) let them go first
    /// ([`Store::writers_waiting`]).
    waiting: Arc<AtomicUsize>,
    /// When the last [`Store::begin`] was called ([`now_ms`]; 0 for never):
    /// [`Store::wrote_within`].
    last_begin: Arc<AtomicI64>,
    /// [`Store::single_writes_recent`]'s window, in milliseconds.
    single_write_window_ms: Arc<AtomicI64>,
    /// Import batches committed: written alone, and beside the batch before
    /// ([`Store::count_import_batch`]).
    import_batches: Arc<[AtomicU64; 2]>,
    /// On SQLite, which content each bank holds (the table has no unique
    /// index on its dedup key: [`dedup`]).
    dedup: Arc<dedup::Dedup>,
    /// On PostgreSQL, import calls left that go straight to the import
    /// statement with `ON CONFLICT` ([`postgres::insert_fresh`]).
    conflict_calls: Arc<AtomicUsize>,
}

/// 16 random bytes, hex.
pub fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A value of the `meta` table.
pub async fn meta(store: &Store, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT value FROM meta WHERE key = ?"))
        .bind(key)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("value"))
        .transpose()
}

/// Stores a value of the `meta` table unless one is stored: replicas racing
/// to create the same value agree on the first (read it back with [`meta`]).
pub async fn insert_meta_once(store: &Store, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        &store.sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"),
    )
    .bind(key)
    .bind(value)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 (UTC, seconds) for a time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses RFC 3339 into milliseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

/// Splits a migration into statements at `;`, keeping PostgreSQL `$$`
/// bodies and SQLite trigger bodies (`BEGIN ... END`) whole.
fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for piece in sql.split(';') {
        cur.push_str(piece);
        let t = cur.trim();
        let open_dollar = t.matches("$$").count() % 2 == 1;
        let open_trigger = t.to_ascii_uppercase().starts_with("CREATE TRIGGER")
            && t.contains("BEGIN")
            && !t.ends_with("END");
        if open_dollar || open_trigger {
            cur.push(';');
            continue;
        }
        if !t.is_empty() {
            out.push(t.to_string());
        }
        cur.clear();
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A bank's content count and how many of them are disabled, from the
/// counters (no scan); `on` is the pool or an open transaction.
pub async fn bank_counts<'c>(
    store: &Store,
    on: impl sqlx::Executor<'c, Database = sqlx::Any>,
    bank_id: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let row =
        sqlx::query(&store.sql("SELECT content, disabled FROM bank_counts WHERE bank_id = ?"))
            .bind(bank_id)
            .fetch_optional(on)
            .await?;
    match row {
        Some(r) => Ok((r.try_get("content")?, r.try_get("disabled")?)),
        None => Ok((0, 0)),
    }
}

impl Store {
    /// Connects and runs pending migrations.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        Store::open_with(url, schema::MODULES).await
    }

    /// [`Store::open`] with the feature modules before the one named `key`
    /// only: a database as an older binary left it (migration tests).
    #[cfg(test)]
    pub(crate) async fn open_before_module(url: &str, key: &str) -> anyhow::Result<Store> {
        let at = schema::MODULES
            .iter()
            .position(|m| m.key == key)
            .ok_or_else(|| anyhow::anyhow!("no module {key}"))?;
        Store::open_with(url, &schema::MODULES[..at]).await
    }

    async fn open_with(url: &str, modules: &[schema::Module]) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!(
                "unsupported database URL {url:?} (expected sqlite://... or postgres://...)"
            );
        };
        let opts = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; FULL: a
                        // commit is on disk before it is acknowledged.
                        for p in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            sqlx::query(p).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            });
        let pool = opts
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to the database: {e}"))?;
        let store = Store {
            pool,
            backend,
            waiting: Arc::new(AtomicUsize::new(0)),
            last_begin: Arc::new(AtomicI64::new(0)),
            single_write_window_ms: Arc::new(
                AtomicI64::new(SINGLE_WRITE_WINDOW.as_millis() as i64),
            ),
            import_batches: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
            dedup: Arc::new(dedup::Dedup::new(url)),
            conflict_calls: Arc::new(AtomicUsize::new(0)),
        };
        store.migrate().await?;
        for module in modules {
            let versions = (module.versions)(store.backend);
            let versions: Vec<&str> = versions.iter().map(|v| v.as_ref()).collect();
            store
                .migrate_module(module.key, module.what, &versions)
                .await?;
        }
        // This database's identity, and the generation of its bulk loads: an
        // index snapshot is only reused on the same database and generation.
        for key in ["instance", "generation"] {
            insert_meta_once(&store, key, &random_hex()).await?;
        }
        Ok(store)
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`, waiting up to the busy timeout): a
    /// deferred transaction that reads and then writes fails at once with
    /// "database is locked" when another connection committed in between,
    /// which an import committing every 2,000 lines makes common.
    ///
    /// The BEGIN runs in a task of its own, so that a caller cancelled while
    /// waiting (a client that went away, an aborted job) cannot cancel it
    /// half-way: a BEGIN that the connection ran but whose `Transaction` was
    /// never handed out has no one to roll it back, and the pooled
    /// connection kept SQLite's write lock until the process ended — every
    /// later write failed with "database is locked"
    /// (`begin_survives_a_cancelled_caller`). Here the task finishes, and
    /// dropping its `Transaction` rolls back.
    ///
    /// While it waits it counts in [`Store::writers_waiting`], and it marks
    /// [`Store::wrote_within`].
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        self.last_begin.store(now_ms(), Ordering::Relaxed);
        self.begin_unmarked().await
    }

    /// [`Store::begin`] for writes that an import job need not make room
    /// for: the service's own housekeeping (the index journal's sync, twice a
    /// second while changes come) and the audit of a job's own creation. It
    /// waits as other writers do, counting in [`Store::writers_waiting`], but
    /// does not mark [`Store::wrote_within`]. Marked, the journal's sync made
    /// every import job on PostgreSQL under `bulwark serve` write one batch
    /// at a time, as if single writes were coming
    /// (`an_import_job_writes_two_at_once_beside_the_journal_sync_on_postgres`).
    pub async fn begin_unmarked(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let (pool, backend) = (self.pool.clone(), self.backend);
        let waiting = Arc::clone(&self.waiting);
        waiting.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            let tx = match backend {
                Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => pool.begin().await,
            };
            waiting.fetch_sub(1, Ordering::AcqRel);
            tx
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("beginning a transaction: {e}")))?
    }

    /// Fills what the first write would otherwise build under SQLite's
    /// write lock (the de-duplication map, [`dedup`]), reading committed
    /// rows outside any transaction; writes may run meanwhile. For a task
    /// spawned at start. Nothing to do on PostgreSQL.
    pub async fn warm(&self) -> Result<(), sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.dedup.prefill().await,
            Backend::Postgres => Ok(()),
        }
    }

    /// How many [`Store::begin`] callers are waiting for their transaction
    /// (on SQLite: for the write lock). A bulk writer checks this between its
    /// transactions and lets them go first.
    pub fn writers_waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Whether a write transaction ([`Store::begin`]: single writes, not
    /// import batches) began in the last `d`. An import job on PostgreSQL
    /// writes one batch at a time then instead of two at once, leaving a
    /// core to the writes.
    pub fn wrote_within(&self, d: Duration) -> bool {
        let last = self.last_begin.load(Ordering::Relaxed);
        last != 0 && now_ms().saturating_sub(last) < d.as_millis() as i64
    }

    /// Whether a single write began within the window
    /// ([`Store::set_single_write_window`], default [`SINGLE_WRITE_WINDOW`]):
    /// an import job on PostgreSQL then writes one batch at a time instead
    /// of two at once. Never with a zero window.
    pub fn single_writes_recent(&self) -> bool {
        let ms = self.single_write_window_ms.load(Ordering::Relaxed);
        ms > 0 && self.wrote_within(Duration::from_millis(ms as u64))
    }

    /// Counts an import batch committed: `beside` when it was written
    /// without waiting for the batch before it to commit (two at once,
    /// PostgreSQL), else alone. `/metrics` reports them (`bulwark_import_batches_total`),
    /// so an operator can see which way imports run.
    pub fn count_import_batch(&self, beside: bool) {
        self.import_batches[usize::from(beside)].fetch_add(1, Ordering::Relaxed);
    }

    /// Import batches committed through this store: (alone, beside).
    pub fn import_batches(&self) -> (u64, u64) {
        let [alone, beside] = &*self.import_batches;
        (
            alone.load(Ordering::Relaxed),
            beside.load(Ordering::Relaxed),
        )
    }

    /// Sets [`Store::single_writes_recent`]'s window (`bulwark serve`'s
    /// `import_share_after_write_seconds`). Zero: import jobs on PostgreSQL
    /// always write two batches at once, faster, at the cost of single
    /// writes beside them (docs/benchmarks/serve.md, "Two batches at once
    /// on PostgreSQL": their p99 61–69 ms against 37 ms).
    pub fn set_single_write_window(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.single_write_window_ms.store(ms, Ordering::Relaxed);
    }

    /// Lets writers waiting for a transaction ([`Store::writers_waiting`])
    /// start theirs before the caller's next one takes SQLite's write lock,
    /// waiting at most `max` for them.
    pub async fn yield_to_writers(&self, max: Duration) {
        let t = std::time::Instant::now();
        while self.writers_waiting() > 0 && t.elapsed() < max {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// `sql` with `?` numbered `$1, $2, ...` for PostgreSQL.
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if self.backend == Backend::Sqlite {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        self.run_migrations(
            7305542,
            Versions::Schema,
            "the database schema",
            schema::CORE,
        )
        .await
    }

    /// Applies the pending `migrations` in order, each in its own
    /// transaction together with the version it reaches, recorded where
    /// `at` says. PostgreSQL replicas starting together take advisory lock
    /// `lock` and migrate one at a time. A store at a version newer than
    /// `migrations` knows is refused: an older binary does not run on it.
    async fn run_migrations(
        &self,
        lock: i64,
        at: Versions<'_>,
        what: &str,
        migrations: &[&str],
    ) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(lock)
                .execute(&mut *conn)
                .await?;
        }
        let result = async {
            let current: i64 = match at {
                Versions::Schema => {
                    sqlx::query(
                        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
                    )
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get("v")?
                }
                Versions::Meta(key) => {
                    sqlx::query(&self.sql("SELECT value FROM meta WHERE key = ?"))
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await?
                        .map(|r| r.try_get::<String, _>("value"))
                        .transpose()?
                        .map_or(Ok(0), |v| v.parse::<i64>())
                        .map_err(|e| anyhow::anyhow!("meta.{key}: {e}"))?
                }
            };
            anyhow::ensure!(
                current as usize <= migrations.len(),
                "{what} is at version {current}, newer than this binary knows ({}); \
                 run a newer bulwark",
                migrations.len()
            );
            for (i, m) in migrations.iter().enumerate().skip(current as usize) {
                let version = i as i64 + 1;
                let fk_off =
                    self.backend == Backend::Sqlite && m.contains(schema::FOREIGN_KEYS_OFF);
                if fk_off {
                    sqlx::query("PRAGMA foreign_keys = OFF")
                        .execute(&mut *conn)
                        .await?;
                }
                let applied = self.apply_version(&mut conn, at, m, version, fk_off).await;
                if fk_off {
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                }
                applied?;
                tracing::info!("{what} migrated to version {version}");
            }
            Ok(())
        }
        .await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(lock)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    /// One migration `m`, reaching `version`, in a transaction on `conn`;
    /// with `fk_check`, refused when `PRAGMA foreign_key_check` finds a row
    /// whose reference it broke.
    async fn apply_version(
        &self,
        conn: &mut sqlx::AnyConnection,
        at: Versions<'_>,
        m: &str,
        version: i64,
        fk_check: bool,
    ) -> anyhow::Result<()> {
        let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
        for stmt in split_statements(&self.render(m)) {
            sqlx::query(&stmt).execute(&mut *tx).await?;
        }
        if fk_check {
            let broken = sqlx::query("PRAGMA foreign_key_check")
                .fetch_all(&mut *tx)
                .await?;
            anyhow::ensure!(
                broken.is_empty(),
                "migration to version {version} would break {} foreign key reference(s)",
                broken.len()
            );
        }
        match at {
            Versions::Schema => {
                sqlx::query(&self.sql("INSERT INTO schema_version (version) VALUES (?)"))
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
            Versions::Meta(key) => {
                sqlx::query(&self.sql(
                    "INSERT INTO meta (key, value) VALUES (?, ?) \
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                ))
                .bind(key)
                .bind(version.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A migration's text with the column types of this backend in place of
    /// `{pk}`, `{real}` and `{blob}`.
    fn render(&self, migration: &str) -> String {
        let (pk, real, blob) = match self.backend {
            Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "REAL", "BLOB"),
            Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", "BYTEA"),
        };
        migration
            .replace("{pk}", pk)
            .replace("{real}", real)
            .replace("{blob}", blob)
    }

    /// Runs a feature module's own migrations (the HMA surface, the console),
    /// versioned by `meta.{key}` apart from the service's schema: each pending
    /// one once, in a transaction, replicas one at a time on PostgreSQL.
    /// `what` names the tables in messages.
    pub async fn migrate_module(
        &self,
        key: &str,
        what: &str,
        migrations: &[&str],
    ) -> anyhow::Result<()> {
        self.run_migrations(
            7305543,
            Versions::Meta(key),
            &format!("the {what} tables"),
            migrations,
        )
        .await
    }
}

/// Where [`Store::run_migrations`] keeps the version a set of migrations reached.
#[derive(Clone, Copy)]
enum Versions<'a> {
    /// The service's own schema: rows of `schema_version`.
    Schema,
    /// A feature module's tables: `meta.{key}`.
    Meta(&'a str),
}

/// A bank as stored.
#[derive(Debug, Clone)]
pub struct BankRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Largest PDQ distance that matches.
    pub threshold: i64,
    /// Matching enabled.
    pub enabled: bool,
    /// Free text.
    pub description: String,
    /// Who provides the list (for the private-matching intersection).
    pub provider: Option<String>,
    /// PDQ hashes of lower quality are neither banked nor matched here.
    pub min_quality: i64,
    /// Milliseconds.
    pub created_at: i64,
    /// Milliseconds.
    pub updated_at: i64,
}

impl BankRow {
    /// Reads `SELECT *` of `banks`.
    pub fn from_row(r: &AnyRow) -> Result<BankRow, sqlx::Error> {
        Ok(BankRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            threshold: r.try_get("threshold")?,
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            description: r.try_get("description")?,
            provider: r.try_get("provider")?,
            min_quality: r.try_get("min_quality")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// A content item as stored.
#[derive(Debug, Clone)]
pub struct ContentRow {
    /// Row id (the content id of the API).
    pub id: i64,
    /// Bank row id.
    pub bank_id: i64,
    /// `photo`, `video` or `signals`.
    pub kind: String,
    /// Free text.
    pub note: Option<String>,
    /// JSON text.
    pub metadata: Option<String>,
    /// Matching enabled.
    pub enabled: bool,
    /// Disabled until this time (ms), then enabled again.
    pub disabled_until: Option<i64>,
    /// Key id of who added it.
    pub added_by: String,
    /// Which list it came from.
    pub source: Option<String>,
    /// Milliseconds.
    pub created_at: i64,
    /// Milliseconds.
    pub updated_at: i64,
}

impl ContentRow {
    /// Reads the columns of `content`.
    pub fn from_row(r: &AnyRow) -> Result<ContentRow, sqlx::Error> {
        Ok(ContentRow {
            id: r.try_get("id")?,
            bank_id: r.try_get("bank_id")?,
            kind: r.try_get("kind")?,
            note: r.try_get("note")?,
            metadata: r.try_get("metadata")?,
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            disabled_until: r.try_get("disabled_until")?,
            added_by: r.try_get("added_by")?,
            source: r.try_get("source")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// One signal of a content item.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRow {
    /// `pdq`, `md5`, `sha256`.
    pub signal_type: String,
    /// Lower-case hex.
    pub value: String,
    /// PDQ quality.
    pub quality: Option<i64>,
}

/// What the key of content that carries its PDQ hash starts with
/// ([`NewContent::carried`]); the hash is the rest. SQL reads it as
/// `substr(dedup_key, 5)`.
pub const CARRIED_PREFIX: &str = "pdq:";
const _: () = assert!(CARRIED_PREFIX.len() == 4, "SQL reads substr(dedup_key, 5)");

/// Content to add.
#[derive(Debug, Clone)]
pub struct NewContent {
    /// `photo`, `video` or `signals`.
    pub kind: &'static str,
    /// Identifies the same content in a bank (the file's SHA-256, or its signals):
    /// adding it again is a no-op that returns the first id.
    pub dedup_key: String,
    /// Free text.
    pub note: Option<String>,
    /// JSON object text.
    pub metadata: Option<String>,
    /// Which list it came from.
    pub source: Option<String>,
    /// Its signals.
    pub signals: Vec<SignalRow>,
    /// Video frames.
    pub frames: Vec<bulwark_vpdq::FrameHash>,
    /// Extra hashes of video frames (frame number, hash): written by the
    /// service ([`catalog::insert_frame_extra`]) for the kinds its banks
    /// store, not by [`insert_content`].
    pub frame_extras: Vec<(u64, bulwark_pdq::KindHash)>,
}

impl NewContent {
    /// Whether the item carries its signal in its content row instead of a
    /// row of `signals` (store module `carried`): a `signals` item whose one
    /// signal is a PDQ hash and whose key is [`CARRIED_PREFIX`] and that
    /// hash, as each line of a PDQ list is. Its quality when it does.
    /// [`insert_contents`] (the import path) writes such items so.
    pub fn carried(&self) -> Option<Option<i64>> {
        match self.signals.as_slice() {
            [s] if self.kind == "signals"
                && s.signal_type == "pdq"
                && self.frames.is_empty()
                && self.dedup_key.strip_prefix(CARRIED_PREFIX) == Some(s.value.as_str()) =>
            {
                Some(s.quality)
            }
            _ => None,
        }
    }

    /// A `signals` item of one PDQ hash (`hex`), keyed by it, with no note,
    /// metadata or source.
    pub fn pdq(hex: String, quality: Option<i64>) -> NewContent {
        NewContent {
            kind: "signals",
            dedup_key: format!("pdq:{hex}"),
            note: None,
            metadata: None,
            source: None,
            signals: vec![SignalRow {
                signal_type: "pdq".into(),
                value: hex,
                quality,
            }],
            frames: Vec::new(),
            frame_extras: Vec::new(),
        }
    }
}

/// An audit entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    /// Sequence.
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// Key id (or `cli`, `system`).
    pub actor: String,
    /// What was done, e.g. `bank.create`.
    pub action: String,
    /// The bank, where there is one.
    pub bank: Option<String>,
    /// The content id, where there is one.
    pub content_id: Option<i64>,
    /// Details (JSON).
    pub detail: serde_json::Value,
}

/// Appends an audit entry inside a transaction.
pub async fn audit(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    actor: &str,
    action: &str,
    bank: Option<&str>,
    content_id: Option<i64>,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO audit (at, actor, action, bank, content_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
    ))
    .bind(now_ms())
    .bind(actor)
    .bind(action)
    .bind(bank)
    .bind(content_id)
    .bind(detail.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records that a bank or a content item changed, for other replicas; returns the sequence number.
pub async fn change(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: Option<i64>,
    content_id: Option<i64>,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        &store.sql("INSERT INTO changes (bank_id, content_id, at) VALUES (?, ?, ?) RETURNING seq"),
    )
    .bind(bank_id)
    .bind(content_id)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await?
    .try_get("seq")
}

/// Adds what one insert call wrote to bank `bank_id`'s counters, on
/// SQLite: `content` new (enabled) rows and `signals` new signal rows by
/// type, in the caller's transaction. A row trigger used to count each
/// inserted row, a tenth of an import's time; PostgreSQL's triggers count
/// once per statement and stay, so this does nothing there. Every
/// statement that inserts content or signals calls it (schema module
/// `insert_counts`). `before`, a statement with its parameters, runs first
/// in the same round trip.
async fn count_inserted<'q>(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    before: Option<(String, sqlx::any::AnyArguments<'q>)>,
    bank_id: i64,
    content: i64,
    signals: &[(&'q str, i64)],
) -> Result<(), sqlx::Error> {
    if store.backend != Backend::Sqlite {
        if let Some((sql, args)) = before {
            sqlx::query_with(&sql, args).execute(&mut *tx).await?;
        }
        return Ok(());
    }
    // One query of several statements: the SQLite driver runs them in
    // order, each with its own share of the parameters, in one round trip
    // to its connection thread (a round trip each cost a single write
    // 0.3 ms at p50).
    let (mut sql, mut args) = before.unwrap_or_default();
    if content > 0 {
        sql.push_str(
            ";\nINSERT INTO bank_counts (bank_id, content, disabled) VALUES (?, ?, 0) \
             ON CONFLICT (bank_id) DO UPDATE SET content = content + excluded.content",
        );
        args.add(bank_id).map_err(sqlx::Error::Encode)?;
        args.add(content).map_err(sqlx::Error::Encode)?;
    }
    for &(signal_type, n) in signals.iter().filter(|(_, n)| *n > 0) {
        sql.push_str(
            ";\nINSERT INTO signal_counts (bank_id, signal_type, n) VALUES (?, ?, ?) \
             ON CONFLICT (bank_id, signal_type) DO UPDATE SET n = n + excluded.n",
        );
        args.add(bank_id).map_err(sqlx::Error::Encode)?;
        args.add(signal_type).map_err(sqlx::Error::Encode)?;
        args.add(n).map_err(sqlx::Error::Encode)?;
    }
    let sql = sql.trim_start_matches(";\n");
    if !sql.is_empty() {
        sqlx::query_with(sql, args).execute(&mut *tx).await?;
    }
    Ok(())
}

/// One multi-row `INSERT` of `rows` (content id, signal) of bank `bank_id`
/// into `signals`, with its parameters.
fn signal_values<'q>(
    store: &Store,
    bank_id: i64,
    rows: &[(i64, &'q SignalRow)],
) -> Result<(String, sqlx::any::AnyArguments<'q>), sqlx::Error> {
    let sql = values_sql(
        store,
        "INSERT INTO signals (content_id, bank_id, signal_type, value, quality) VALUES ",
        "(?, ?, ?, ?, ?)",
        rows.len(),
        "",
    );
    let mut args = sqlx::any::AnyArguments::default();
    for &(id, s) in rows {
        args.add(id).map_err(sqlx::Error::Encode)?;
        args.add(bank_id).map_err(sqlx::Error::Encode)?;
        args.add(s.signal_type.as_str())
            .map_err(sqlx::Error::Encode)?;
        args.add(s.value.as_str()).map_err(sqlx::Error::Encode)?;
        args.add(s.quality).map_err(sqlx::Error::Encode)?;
    }
    Ok((sql, args))
}

/// How many of `types` there are of each, in order of first appearance.
fn count_by_type<'a>(types: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, i64)> {
    let mut out: Vec<(&str, i64)> = Vec::new();
    for t in types {
        match out.iter_mut().find(|(have, _)| *have == t) {
            Some((_, n)) => *n += 1,
            None => out.push((t, 1)),
        }
    }
    out
}

/// Inserts one content item and its signals and frames; `Ok(None)` when the
/// bank already holds it (same dedup key). Does not write audit or change rows.
pub async fn insert_content(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    actor: &str,
    c: &NewContent,
) -> Result<Option<i64>, sqlx::Error> {
    let now = now_ms();
    let sqlite = store.backend == Backend::Sqlite;
    if sqlite {
        let have = store
            .dedup
            .existing(&mut *tx, bank_id, &[c.dedup_key.as_str()], None)
            .await?;
        if have[0].is_some() {
            return Ok(None);
        }
    }
    // On SQLite the check above is the rule (no unique index: `dedup`).
    let row = sqlx::query(&store.sql(if sqlite {
        "INSERT INTO content (bank_id, kind, dedup_key, note, metadata, enabled, disabled_until, \
         added_by, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, NULL, ?, ?, ?, ?) \
         RETURNING id"
    } else {
        "INSERT INTO content (bank_id, kind, dedup_key, note, metadata, enabled, disabled_until, \
         added_by, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, NULL, ?, ?, ?, ?) \
         ON CONFLICT (bank_id, dedup_key) DO NOTHING RETURNING id"
    }))
    .bind(bank_id)
    .bind(c.kind)
    .bind(&c.dedup_key)
    .bind(&c.note)
    .bind(&c.metadata)
    .bind(actor)
    .bind(&c.source)
    .bind(now)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get("id")?;
    if sqlite {
        store.dedup.added(bank_id, &[(&c.dedup_key, id)]).await;
    }
    // The signals, then the counters, in one round trip.
    let rows: Vec<(i64, &SignalRow)> = c.signals.iter().map(|s| (id, s)).collect();
    let signals = if rows.is_empty() {
        None
    } else {
        Some(signal_values(store, bank_id, &rows)?)
    };
    let types = count_by_type(c.signals.iter().map(|s| s.signal_type.as_str()));
    count_inserted(store, tx, signals, bank_id, 1, &types).await?;
    insert_frames(store, tx, id, &c.frames).await?;
    Ok(Some(id))
}

/// A video's frame hashes, for content `id`.
async fn insert_frames(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
    frames: &[bulwark_vpdq::FrameHash],
) -> Result<(), sqlx::Error> {
    for f in frames {
        sqlx::query(&store.sql(
            "INSERT INTO video_frames (content_id, frame, quality, hash, ts) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(id)
        .bind(f.frame as i64)
        .bind(f.quality as i64)
        .bind(f.hash.to_string())
        .bind(f.timestamp)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Rows aggregated by SQLite's `json_group_array` into one text `a` (one row
/// through the driver instead of one per returned row), parsed.
async fn aggregated<T: serde::de::DeserializeOwned>(
    tx: &mut sqlx::AnyConnection,
    sql: &str,
    after: i64,
) -> Result<Vec<T>, sqlx::Error> {
    let text: String = sqlx::query(sql)
        .bind(after)
        .fetch_one(&mut *tx)
        .await?
        .try_get("a")?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Records `i` as where `key` first comes in a batch; whether it is the
/// first (a key repeated later in the batch keeps its first place: it is
/// the one added, with its note and metadata, and the repeats are the
/// duplicates).
fn first_in<'a>(first_of: &mut HashMap<&'a str, usize>, key: &'a str, i: usize) -> bool {
    match first_of.entry(key) {
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(i);
            true
        }
        std::collections::hash_map::Entry::Occupied(_) => false,
    }
}

/// Most rows one multi-row `VALUES` statement of [`insert_contents`] inserts:
/// an import job's piece (512 records) in one statement per table. Nine
/// bound values a content row, 4,608 a statement: under both SQLite's
/// (32,766) and PostgreSQL's (65,535) limits.
const VALUES_ROWS: usize = 512;

/// Row counts of the `VALUES` statements that insert `n` rows:
/// [`VALUES_ROWS`] at a time, then the binary digits of the rest. A
/// connection so prepares at most ten shapes of each statement (the driver
/// caches prepared statements per connection), whatever the batches hold.
fn value_chunks(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while n >= VALUES_ROWS {
        out.push(VALUES_ROWS);
        n -= VALUES_ROWS;
    }
    let mut bit = VALUES_ROWS / 2;
    while bit > 0 {
        if n & bit != 0 {
            out.push(bit);
        }
        bit /= 2;
    }
    out
}

/// `rows` cut into the pieces of [`value_chunks`], in order.
fn value_slices<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    value_chunks(rows.len()).into_iter().map(move |n| {
        let (piece, after) = rest.split_at(n);
        rest = after;
        piece
    })
}

/// `head`, then `row` (a tuple of `?` parameters) `rows` times, then
/// `tail`, for `store`'s backend. Anonymous `?` on SQLite: the driver asks
/// SQLite for each parameter's name, which for named ones (`?NNN`, `$NNN`)
/// walks a list of all of them, quadratic in a statement this long.
fn values_sql(store: &Store, head: &str, row: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * (row.len() + 2));
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    store.sql(&sql).into_owned()
}

/// What a write transaction on SQLite knows from its start, for
/// [`insert_contents`]: the highest content id committed when it began, and
/// the highest content id and change sequence it holds now. Read inside the
/// transaction before it writes anything ([`TxMarks::read`], which
/// [`imports::begin_batch`] calls): SQLite's write lock is held from its
/// `BEGIN IMMEDIATE`, so no other connection commits until it ends, and
/// each [`insert_contents`] given the marks advances them. They save each
/// call two reads (the de-dup map's read of the highest committed id on its
/// own connection, and the highest id and sequence in the transaction) and,
/// told of the commit ([`TxMarks::committed`]), the map's read-back of the
/// transaction's rows at the next write: without it, an import read every
/// row it wrote back once more, a tenth of its time
/// (docs/benchmarks/serve.md, "The de-dup map's catch-up").
///
/// A transaction that writes content or change rows in any other way must
/// not pass its marks on: the rows read back would then include those, and
/// [`insert_contents`] answers an error (it checks the count) instead.
#[derive(Debug, Clone, Copy)]
pub struct TxMarks {
    /// Highest content id committed when the transaction began.
    committed: i64,
    /// Highest content id and change sequence in the transaction.
    last: (i64, i64),
}

impl TxMarks {
    /// Reads the marks in `tx`, a write transaction that holds SQLite's
    /// write lock and has written nothing yet. `None` on PostgreSQL (which
    /// neither keeps the de-dup map nor reads rows back by id).
    pub async fn read(
        store: &Store,
        tx: &mut sqlx::AnyConnection,
    ) -> Result<Option<TxMarks>, sqlx::Error> {
        if store.backend != Backend::Sqlite {
            return Ok(None);
        }
        let last = highest_in(tx).await?;
        Ok(Some(TxMarks {
            committed: last.0,
            last,
        }))
    }

    /// Tells the store that the transaction these marks were read in has
    /// committed: the de-dup map then counts its rows as read (without it,
    /// the next write transaction reads them back once more).
    pub async fn committed(self, store: &Store) {
        store
            .dedup
            .committed_through(self.committed, self.last.0)
            .await;
    }
}

/// The highest content id and change sequence `tx` sees (SQLite).
async fn highest_in(tx: &mut sqlx::AnyConnection) -> Result<(i64, i64), sqlx::Error> {
    let r = sqlx::query(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM content) AS n, \
         (SELECT COALESCE(MAX(seq), 0) FROM changes) AS m",
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((r.try_get::<i64, _>("n")?, r.try_get::<i64, _>("m")?))
}

/// Inserts many content items of one bank: the import path. On SQLite the
/// rows go in as multi-row `VALUES` statements of up to [`VALUES_ROWS`]
/// rows with bound parameters ([`value_slices`]): a few statements a batch,
/// each prepared once per connection. (Passing each table's rows as one
/// JSON text made SQLite serialise and re-parse every row object once per
/// column.) On PostgreSQL all of a call's rows go in as one statement of
/// bound arrays ([`postgres::insert_fresh`]). An item of one PDQ hash keyed
/// by it ([`NewContent::carried`]) gets no signal row on either: its
/// content row carries the hash.
/// Returns, for each item in order, its new id, or `None` when the bank
/// already holds it (or the same key came earlier in `items`). Writes a
/// change row per new item and returns them as `(seq, bank, content)`,
/// in sequence order; no audit rows. `marks`, when the transaction has
/// them ([`TxMarks`]), save two reads and are advanced.
pub async fn insert_contents(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    mut marks: Option<&mut TxMarks>,
    bank_id: i64,
    actor: &str,
    items: &[NewContent],
) -> Result<(Vec<Option<i64>>, Vec<(i64, Option<i64>, Option<i64>)>), sqlx::Error> {
    let now = now_ms();
    let mut ids: Vec<Option<i64>> = vec![None; items.len()];
    let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    let mut fresh: Vec<usize> = (0..items.len())
        .filter(|&i| first_in(&mut first_of, items[i].dedup_key.as_str(), i))
        .collect();
    if store.backend == Backend::Postgres {
        // One statement; its unique index and `ON CONFLICT DO NOTHING` skip
        // what the bank holds, and statement triggers keep the counters.
        if fresh.is_empty() {
            return Ok((ids, Vec::new()));
        }
        let rows = postgres::insert_fresh(store, tx, bank_id, actor, now, items, &fresh).await?;
        for &(_, id, i) in &rows {
            ids[i] = Some(id);
        }
        for (id, c) in ids.iter().zip(items) {
            if let Some(id) = *id {
                insert_frames(store, tx, id, &c.frames).await?;
            }
        }
        let changes = rows
            .into_iter()
            .map(|(seq, id, _)| (seq, Some(bank_id), Some(id)))
            .collect();
        return Ok((ids, changes));
    }
    // What the bank holds already, from memory (`dedup`); the INSERT below
    // then has no conflicts to skip.
    let keys: Vec<&str> = fresh.iter().map(|&i| items[i].dedup_key.as_str()).collect();
    let committed = marks.as_ref().map(|m| m.committed);
    let held = store
        .dedup
        .existing(&mut *tx, bank_id, &keys, committed)
        .await?;
    fresh = fresh
        .into_iter()
        .zip(held)
        .filter_map(|(i, h)| h.is_none().then_some(i))
        .collect();
    if fresh.is_empty() {
        return Ok((ids, Vec::new()));
    }
    // Not `RETURNING`. The driver hands each returned row from its
    // connection thread to the task on its own, which was a third of the
    // batch's time. Under the write lock the new rows are exactly those above
    // the highest id before the insert; they come back as one text.
    // Both highest ids in one round trip (or from the marks): nothing else
    // writes until commit.
    let (last_id, last_seq) = match marks.as_ref() {
        Some(m) => m.last,
        None => highest_in(tx).await?,
    };
    for piece in value_slices(&fresh) {
        let sql = values_sql(
            store,
            "INSERT INTO content (bank_id, kind, dedup_key, note, metadata, enabled, \
             disabled_until, added_by, source, created_at, updated_at, carried, \
             carried_quality) VALUES ",
            "(?, ?, ?, ?, ?, 1, NULL, ?, ?, ?, ?, ?, ?)",
            piece.len(),
            "",
        );
        let mut q = sqlx::query(&sql);
        for &i in piece {
            let c = &items[i];
            let carried = c.carried();
            q = q
                .bind(bank_id)
                .bind(c.kind)
                .bind(c.dedup_key.as_str())
                .bind(c.note.as_deref())
                .bind(c.metadata.as_deref())
                .bind(actor)
                .bind(c.source.as_deref())
                .bind(now)
                .bind(now)
                .bind(i64::from(carried.is_some()))
                .bind(carried.flatten());
        }
        q.execute(&mut *tx).await?;
    }
    let inserted: Vec<(i64, String)> = aggregated(
        &mut *tx,
        "SELECT json_group_array(json_array(id, dedup_key)) AS a \
         FROM (SELECT id, dedup_key FROM content WHERE id > ? ORDER BY id)",
        last_id,
    )
    .await?;
    if inserted.len() != fresh.len() {
        // Rows above the mark that this call did not write: the
        // transaction wrote content some other way (see `TxMarks`).
        return Err(sqlx::Error::Protocol(format!(
            "{} content rows read back for {} inserted",
            inserted.len(),
            fresh.len()
        )));
    }
    if let (Some(m), Some(&(id, _))) = (marks.as_deref_mut(), inserted.last()) {
        m.last.0 = id;
    }
    for (id, key) in inserted {
        if let Some(&i) = first_of.get(key.as_str()) {
            ids[i] = Some(id);
        }
    }
    let added: Vec<(&str, i64)> = fresh
        .iter()
        .filter_map(|&i| Some((items[i].dedup_key.as_str(), ids[i]?)))
        .collect();
    store.dedup.added(bank_id, &added).await;
    let new: Vec<(i64, &NewContent)> = ids
        .iter()
        .zip(items)
        .filter_map(|(id, c)| id.map(|id| (id, c)))
        .collect();
    // Signal rows for the items that do not carry their hash.
    let signals: Vec<(i64, &SignalRow)> = new
        .iter()
        .filter(|(_, c)| c.carried().is_none())
        .flat_map(|&(id, c)| c.signals.iter().map(move |s| (id, s)))
        .collect();
    for piece in value_slices(&signals) {
        let (sql, args) = signal_values(store, bank_id, piece)?;
        sqlx::query_with(&sql, args).execute(&mut *tx).await?;
    }
    // Counted: rows and carried hashes alike.
    let types = count_by_type(
        new.iter()
            .flat_map(|(_, c)| c.signals.iter().map(|s| s.signal_type.as_str())),
    );
    count_inserted(store, tx, None, bank_id, new.len() as i64, &types).await?;
    for &(id, c) in &new {
        insert_frames(store, tx, id, &c.frames).await?;
    }
    // A change row per new item, in id order, straight from the content rows
    // just inserted (nothing to bind), and back as one text, as the content
    // rows were.
    sqlx::query(
        "INSERT INTO changes (bank_id, content_id, at) \
         SELECT bank_id, id, ? FROM content WHERE id > ? ORDER BY id",
    )
    .bind(now)
    .bind(last_id)
    .execute(&mut *tx)
    .await?;
    let written: Vec<(i64, i64)> = aggregated(
        &mut *tx,
        "SELECT json_group_array(json_array(seq, content_id)) AS a \
         FROM (SELECT seq, content_id FROM changes WHERE seq > ? ORDER BY seq)",
        last_seq,
    )
    .await?;
    let mut changes: Vec<(i64, Option<i64>, Option<i64>)> = written
        .into_iter()
        .map(|(seq, c)| (seq, Some(bank_id), Some(c)))
        .collect();
    if changes.len() != new.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} change rows written for {} new items",
            changes.len(),
            new.len()
        )));
    }
    changes.sort_unstable();
    if let (Some(m), Some(&(seq, _, _))) = (marks, changes.last()) {
        m.last.1 = seq;
    }
    Ok((ids, changes))
}

/// The id of content with this dedup key in a bank.
pub async fn content_by_dedup(
    store: &Store,
    bank_id: i64,
    key: &str,
) -> Result<Option<i64>, sqlx::Error> {
    if store.backend == Backend::Sqlite
        && let Some(found) = store.dedup.lookup(store, bank_id, key).await?
    {
        return Ok(found);
    }
    // PostgreSQL: the unique index. SQLite before any write built the map:
    // a scan of the bank's rows (`content_bank`).
    sqlx::query(&store.sql("SELECT id FROM content WHERE bank_id = ? AND dedup_key = ?"))
        .bind(bank_id)
        .bind(key)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()
}

/// Signals of a content item: its rows of `signals`, or the PDQ hash its
/// content row carries (store module `carried`).
pub async fn signals_of(store: &Store, content_id: i64) -> Result<Vec<SignalRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT signal_type, value, quality, id FROM signals WHERE content_id = ? \
         UNION ALL SELECT 'pdq', substr(dedup_key, 5), carried_quality, 0 FROM content \
         WHERE id = ? AND carried = 1 ORDER BY 4",
    ))
    .bind(content_id)
    .bind(content_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(SignalRow {
            signal_type: r.try_get("signal_type")?,
            value: r.try_get("value")?,
            quality: r.try_get("quality")?,
        })
    })
    .collect()
}

/// Video frames of a content item, in frame order.
pub async fn frames_of(
    store: &Store,
    content_id: i64,
) -> Result<Vec<bulwark_vpdq::FrameHash>, sqlx::Error> {
    let rows = sqlx::query(&store.sql(
        "SELECT frame, quality, hash, ts FROM video_frames WHERE content_id = ? ORDER BY frame",
    ))
    .bind(content_id)
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(frame_from_row).collect()
}

/// Reads `frame, quality, hash, ts`.
pub fn frame_from_row(r: &AnyRow) -> Result<bulwark_vpdq::FrameHash, sqlx::Error> {
    let hash: String = r.try_get("hash")?;
    Ok(bulwark_vpdq::FrameHash {
        frame: r.try_get::<i64, _>("frame")? as u64,
        quality: r.try_get::<i64, _>("quality")? as u32,
        hash: hash
            .parse()
            .map_err(|e| sqlx::Error::Decode(format!("stored frame hash: {e}").into()))?,
        timestamp: r.try_get("ts")?,
    })
}

/// Every bank, by name.
pub async fn banks(store: &Store) -> Result<Vec<BankRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM banks ORDER BY name")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(BankRow::from_row)
        .collect()
}

/// A bank by name.
pub async fn bank_by_name(store: &Store, name: &str) -> Result<Option<BankRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM banks WHERE name = ?"))
        .bind(name)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| BankRow::from_row(&r))
        .transpose()
}

/// Rows per [`signal_page`].
pub const SIGNAL_PAGE_ROWS: i64 = 100_000;

/// Up to [`SIGNAL_PAGE_ROWS`] banked signals of one type, after signal id
/// `after` in id order, as one aggregated text: rows cost microseconds each
/// through the driver, and a parser of one text costs nanoseconds a row.
#[derive(Debug, Clone)]
pub struct SignalPage {
    /// The last signal id in the page: where the next page starts.
    pub last: i64,
    data: String,
}

impl SignalPage {
    /// The page a statement of `last` and `data` answered; `None` for no
    /// rows (`last` is `NULL`).
    fn from_row(row: &AnyRow) -> Result<Option<SignalPage>, sqlx::Error> {
        let Some(last) = row.try_get::<Option<i64>, _>("last")? else {
            return Ok(None);
        };
        Ok(Some(SignalPage {
            last,
            data: row.try_get("data")?,
        }))
    }

    /// The page's rows: (content id, bank id, value).
    pub fn rows(&self) -> impl Iterator<Item = Result<(i64, i64, &str), String>> {
        self.data.split(';').map(|rec| {
            let mut f = rec.splitn(3, ',');
            let (Some(c), Some(b), Some(v)) = (f.next(), f.next(), f.next()) else {
                return Err(format!("malformed aggregated signal row {rec:?}"));
            };
            match (c.parse(), b.parse()) {
                (Ok(c), Ok(b)) => Ok((c, b, v)),
                _ => Err(format!("malformed aggregated signal row {rec:?}")),
            }
        })
    }
}

/// The next page of banked signals of `signal_type` after signal id
/// `after` (0 for the first); `None` past the last. Reading every banked hash
/// at start-up (the index, the text index) pages through this.
///
/// A type that makes up most of `signals` (PDQ hashes, which the
/// `signals_value` index leaves out) is read by a scan in key order,
/// `signal_type || ''` keeping the planner off the index: that beats a
/// random lookup per row. For other types, one read of the trigger-kept
/// counters decides ([`signal_reading`]): a type with no rows is not read,
/// and a type of at most an eighth of the rows is read through
/// `signals_value` (its rows, then a sort), since a scan would read every
/// PDQ row to find a handful of text hashes.
pub async fn signal_page(
    store: &Store,
    signal_type: &str,
    after: i64,
) -> Result<Option<SignalPage>, sqlx::Error> {
    let Some(sql) = signal_page_sql(store, signal_reading(store, signal_type).await?) else {
        return Ok(None);
    };
    let row = sqlx::query(&sql)
        .bind(after)
        .bind(signal_type)
        .bind(SIGNAL_PAGE_ROWS)
        .fetch_one(&store.pool)
        .await?;
    SignalPage::from_row(&row)
}

/// The backend's aggregate that joins texts with a separator
/// (`group_concat` / `string_agg`), as a page's `data` is built.
fn text_agg(store: &Store) -> &'static str {
    match store.backend {
        Backend::Sqlite => "group_concat",
        Backend::Postgres => "string_agg",
    }
}

/// The next page of PDQ hashes that content rows carry (store module
/// `carried`) after content id `after` (0 for the first), in content id
/// order; `None` past the last. Its `last` is a content id. With
/// [`signal_page`]'s rows of type `pdq`, every banked PDQ hash.
pub async fn carried_page(store: &Store, after: i64) -> Result<Option<SignalPage>, sqlx::Error> {
    let agg = text_agg(store);
    let sql = format!(
        "SELECT MAX(id) AS last, {agg}(CAST(id AS TEXT) || ',' || CAST(bank_id AS TEXT) || ',' || substr(dedup_key, 5), ';') AS data \
         FROM (SELECT id, bank_id, dedup_key FROM content WHERE id > ? AND carried = 1 ORDER BY id \
         LIMIT ?) t"
    );
    let row = sqlx::query(&store.sql(&sql))
        .bind(after)
        .bind(SIGNAL_PAGE_ROWS)
        .fetch_one(&store.pool)
        .await?;
    SignalPage::from_row(&row)
}

/// The statement of a [`signal_page`] read as `reading` says (its
/// parameters: after, type, rows); `None` for [`Reading::Empty`].
pub fn signal_page_sql(store: &Store, reading: Reading) -> Option<String> {
    let agg = text_agg(store);
    let filter = match reading {
        Reading::Empty => return None,
        Reading::Scan => "signal_type || '' = ? ORDER BY id",
        // `<> 'pdq'` is the partial index's own condition, so that both
        // planners see that the index holds every row asked for; `id + 0`
        // keeps PostgreSQL from walking the primary key for the order.
        Reading::ByIndex => "signal_type = ? AND signal_type <> 'pdq' ORDER BY id + 0",
    };
    let sql = format!(
        "SELECT MAX(id) AS last, {agg}(CAST(content_id AS TEXT) || ',' || CAST(bank_id AS TEXT) || ',' || value, ';') AS data \
         FROM (SELECT id, content_id, bank_id, value FROM signals WHERE id > ? AND {filter} \
         LIMIT ?) t"
    );
    Some(store.sql(&sql).into_owned())
}

/// How [`signal_page`] reads a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// No rows of the type: nothing to read.
    Empty,
    /// A scan of `signals` in key order.
    Scan,
    /// Through the `signals_value` index.
    ByIndex,
}

/// How [`signal_page`] reads `signal_type`, from the counters the
/// triggers keep (one row per bank and type, not a scan). PDQ hashes, which
/// the matching index is built from, are always scanned: a miscount there
/// must not leave the index empty.
pub async fn signal_reading(store: &Store, signal_type: &str) -> Result<Reading, sqlx::Error> {
    if signal_type == "pdq" {
        return Ok(Reading::Scan);
    }
    let row = sqlx::query(&store.sql(
        "SELECT CAST(COALESCE(SUM(CASE WHEN signal_type = ? THEN n ELSE 0 END), 0) AS BIGINT) AS of_type, \
         CAST(COALESCE(SUM(n), 0) AS BIGINT) AS total FROM signal_counts",
    ))
    .bind(signal_type)
    .fetch_one(&store.pool)
    .await?;
    let (of_type, total): (i64, i64) = (row.try_get("of_type")?, row.try_get("total")?);
    Ok(if of_type <= 0 {
        Reading::Empty
    } else if of_type.saturating_mul(8) <= total {
        Reading::ByIndex
    } else {
        Reading::Scan
    })
}

/// The (bank, content) pairs holding a signal of `signal_type` with exactly
/// `value` (MD5, SHA-256 and other exact types).
pub async fn exact_holders(
    store: &Store,
    signal_type: &str,
    value: &str,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query(
        // The last term is what lets the planner use `signals_value`, which
        // holds the exact types only (`dedup` v1).
        &store.sql(
            "SELECT bank_id, content_id FROM signals WHERE signal_type = ? AND value = ? \
             AND signal_type <> 'pdq'",
        ),
    )
    .bind(signal_type)
    .bind(value)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("bank_id")?, r.try_get("content_id")?)))
    .collect()
}

/// Audit entries after `after`, oldest first.
pub async fn audit_list(
    store: &Store,
    after: i64,
    limit: i64,
    bank: Option<&str>,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = match bank {
        Some(b) => {
            sqlx::query(
                &store.sql("SELECT * FROM audit WHERE id > ? AND bank = ? ORDER BY id LIMIT ?"),
            )
            .bind(after)
            .bind(b)
            .bind(limit)
            .fetch_all(&store.pool)
            .await?
        }
        None => {
            sqlx::query(&store.sql("SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?"))
                .bind(after)
                .bind(limit)
                .fetch_all(&store.pool)
                .await?
        }
    };
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: rfc3339(r.try_get("at")?),
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                bank: r.try_get("bank")?,
                content_id: r.try_get("content_id")?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
            })
        })
        .collect()
}

/// Loads PDQ hashes into a bank in bulk, 1,000 rows a statement, in one
/// transaction, for benchmarks and offline loading. It writes no audit or
/// change rows: running nodes must reload (`Catalog::load` in bulwark-service).
/// The hashes must be distinct and new to the bank.
pub async fn bulk_insert_pdq(
    store: &Store,
    bank_id: i64,
    source: &str,
    hashes: &[bulwark_pdq::PdqHash],
) -> Result<(), sqlx::Error> {
    let mut tx = store.begin().await?;
    let first: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM content")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    let now = now_ms();
    // Values are integers and hex we format ourselves (and a source we quote): no injection.
    let src = source.replace('\'', "''");
    for (chunk_no, chunk) in hashes.chunks(1000).enumerate() {
        let base = first + (chunk_no * 1000) as i64;
        let mut c = String::from(
            "INSERT INTO content (id, bank_id, kind, dedup_key, note, metadata, enabled, disabled_until, \
             added_by, source, created_at, updated_at) VALUES ",
        );
        let mut s = String::from(
            "INSERT INTO signals (content_id, bank_id, signal_type, value, quality) VALUES ",
        );
        for (i, h) in chunk.iter().enumerate() {
            let id = base + i as i64;
            if i > 0 {
                c.push(',');
                s.push(',');
            }
            c.push_str(&format!(
                "({id}, {bank_id}, 'signals', 'pdq:{h}', NULL, NULL, 1, NULL, 'bulk', '{src}', {now}, {now})"
            ));
            s.push_str(&format!("({id}, {bank_id}, 'pdq', '{h}', NULL)"));
        }
        sqlx::query(&c).execute(&mut *tx).await?;
        sqlx::query(&s).execute(&mut *tx).await?;
    }
    let n = hashes.len() as i64;
    count_inserted(store, &mut tx, None, bank_id, n, &[("pdq", n)]).await?;
    if store.backend == Backend::Postgres {
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('content', 'id'), (SELECT MAX(id) FROM content))",
        )
        .execute(&mut *tx)
        .await?;
    }
    // Written around the change log: index snapshots taken before are stale.
    sqlx::query(&store.sql("UPDATE meta SET value = ? WHERE key = 'generation'"))
        .bind(random_hex())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    /// Every batch size splits into chunks that add up to it, none larger
    /// than `VALUES_ROWS`, each a power of two, so one connection sees at
    /// most ten statement shapes a table.
    #[test]
    fn value_chunks_cover_each_size_with_few_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..5000 {
            let c = super::value_chunks(n);
            assert_eq!(c.iter().sum::<usize>(), n, "{n}: {c:?}");
            assert!(
                c.iter()
                    .all(|&k| k.is_power_of_two() && k <= super::VALUES_ROWS)
            );
            let rows: Vec<usize> = (0..n).collect();
            let pieces: Vec<&[usize]> = super::value_slices(&rows).collect();
            assert_eq!(pieces.iter().map(|p| p.len()).collect::<Vec<_>>(), c);
            assert_eq!(
                pieces.concat(),
                rows,
                "{n}: the pieces, in order, are the rows"
            );
            shapes.extend(c);
        }
        assert_eq!(shapes.len(), 10);
    }

    /// A SQLite store in `dir` with the modules before `module` only, as a
    /// binary from before it left one, holding `banks` (ids from 1); and
    /// its URL, to open it again with every module.
    async fn store_before(
        dir: &tempfile::TempDir,
        module: &str,
        banks: &[&str],
    ) -> (String, super::Store) {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let old = super::Store::open_before_module(&url, module)
            .await
            .expect("open old");
        for (id, name) in (1i64..).zip(banks) {
            sqlx::query(
                "INSERT INTO banks (id, name, threshold, enabled, description, created_at, updated_at) \
                 VALUES (?, ?, 31, 1, '', 0, 0)",
            )
            .bind(id)
            .bind(*name)
            .execute(&old.pool)
            .await
            .expect("bank");
        }
        (url, old)
    }

    /// A database with signals from before `counts` existed gets counters
    /// that match the table when the module runs (its v2 fills them from the
    /// rows), and they follow later writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signal_counters_start_from_the_rows_already_there() {
        use sqlx::Row;
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, old) = store_before(&dir, "counts", &["a", "b"]).await;
        for (id, bank, types) in [
            (1, 1, &["pdq", "md5"][..]),
            (2, 1, &["pdq"][..]),
            (3, 2, &["pdq", "sha256"][..]),
        ] {
            sqlx::query(
                "INSERT INTO content (id, bank_id, kind, dedup_key, enabled, added_by, created_at, updated_at) \
                 VALUES (?, ?, 'signals', ?, 1, 't', 0, 0)",
            )
            .bind(id)
            .bind(bank)
            .bind(format!("k{id}"))
            .execute(&old.pool)
            .await
            .expect("content");
            for t in types {
                sqlx::query(
                    "INSERT INTO signals (content_id, bank_id, signal_type, value) VALUES (?, ?, ?, ?)",
                )
                .bind(id)
                .bind(bank)
                .bind(*t)
                .bind(format!("{t}{id}"))
                .execute(&old.pool)
                .await
                .expect("signal");
            }
        }
        old.pool.close().await;
        let store = super::Store::open(&url).await.expect("open new");
        let count = |t: &'static str| {
            let store = store.clone();
            async move { super::hma::signal_count(&store, t).await.expect("count") }
        };
        assert_eq!(
            (
                count("pdq").await,
                count("md5").await,
                count("sha256").await
            ),
            (3, 1, 1)
        );
        sqlx::query("DELETE FROM banks WHERE id = 2")
            .execute(&store.pool)
            .await
            .expect("delete bank");
        assert_eq!((count("pdq").await, count("sha256").await), (2, 0));
        let rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM signals")
            .fetch_one(&store.pool)
            .await
            .expect("rows")
            .get("n");
        assert_eq!(rows, 3);
    }

    /// A store from before module `carried` keeps its PDQ items' signal
    /// rows: after the upgrade they read and count as before, beside new
    /// items that carry their hash, and deleting either kind takes its hash
    /// from the counters.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_stored_before_carried_keep_their_signal_rows() {
        use sqlx::Row;
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, old) = store_before(&dir, "carried", &["a"]).await;
        let hex = |i: u64| format!("{i:064x}");
        let mut tx = old.begin().await.expect("begin");
        let before = super::insert_content(
            &old,
            &mut tx,
            1,
            "t",
            &super::NewContent::pdq(hex(1), Some(80)),
        )
        .await
        .expect("insert")
        .expect("new");
        tx.commit().await.expect("commit");
        old.pool.close().await;
        let store = super::Store::open(&url).await.expect("open new");
        let items: Vec<super::NewContent> = (2..4)
            .map(|i| super::NewContent::pdq(hex(i), None))
            .collect();
        let mut tx = store.begin().await.expect("begin");
        let (ids, _) = super::insert_contents(&store, &mut tx, None, 1, "t", &items)
            .await
            .expect("insert many");
        tx.commit().await.expect("commit");
        let count = |sql: &'static str| {
            let store = &store;
            async move {
                sqlx::query(sql)
                    .fetch_one(&store.pool)
                    .await
                    .expect(sql)
                    .get::<i64, _>("n")
            }
        };
        assert_eq!(count("SELECT COUNT(*) AS n FROM signals").await, 1);
        assert_eq!(
            count("SELECT COUNT(*) AS n FROM content WHERE carried = 1").await,
            2
        );
        let signals = super::signals_of(&store, before).await.expect("signals");
        assert_eq!(
            signals
                .iter()
                .map(|s| (s.signal_type.as_str(), s.value.clone(), s.quality))
                .collect::<Vec<_>>(),
            [("pdq", hex(1), Some(80))]
        );
        let pdq = || super::hma::signal_count(&store, "pdq");
        assert_eq!(pdq().await.expect("count"), 3);
        for (id, left) in [(before, 2), (ids[0].expect("new"), 1)] {
            sqlx::query("DELETE FROM content WHERE id = ?")
                .bind(id)
                .execute(&store.pool)
                .await
                .expect("delete");
            assert_eq!(pdq().await.expect("count"), left);
        }
    }

    /// A database whose inserts were counted by triggers (before
    /// `insert_counts`) keeps its counters when the module drops them, and
    /// later inserts are counted once: by the insert functions, not also by
    /// a trigger left behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counters_survive_the_move_from_triggers_to_insert_calls() {
        use sqlx::Row;
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, old) = store_before(&dir, "insert_counts", &["a"]).await;
        // As the binary before wrote them: plain inserts, counted by triggers.
        for id in 1..=2 {
            sqlx::query(
                "INSERT INTO content (id, bank_id, kind, dedup_key, enabled, added_by, created_at, updated_at) \
                 VALUES (?, 1, 'signals', ?, 1, 't', 0, 0)",
            )
            .bind(id)
            .bind(format!("k{id}"))
            .execute(&old.pool)
            .await
            .expect("content");
            sqlx::query(
                "INSERT INTO signals (content_id, bank_id, signal_type, value) VALUES (?, 1, 'md5', ?)",
            )
            .bind(id)
            .bind(format!("{id:032x}"))
            .execute(&old.pool)
            .await
            .expect("signal");
        }
        assert_eq!(
            super::bank_counts(&old, &old.pool, 1)
                .await
                .expect("counts"),
            (2, 0)
        );
        old.pool.close().await;
        let store = super::Store::open(&url).await.expect("open new");
        let triggers: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' \
             AND name IN ('bank_counts_insert', 'signal_counts_insert')",
        )
        .fetch_one(&store.pool)
        .await
        .expect("triggers")
        .get("n");
        assert_eq!(triggers, 0);
        let mut tx = store.begin().await.expect("begin");
        let mut c = super::NewContent::pdq(format!("{:064x}", 3), None);
        c.signals.push(super::SignalRow {
            signal_type: "md5".into(),
            value: format!("{:032x}", 3),
            quality: None,
        });
        super::insert_content(&store, &mut tx, 1, "t", &c)
            .await
            .expect("insert")
            .expect("new");
        let items: Vec<super::NewContent> = (4..7)
            .map(|i| super::NewContent::pdq(format!("{i:064x}"), None))
            .collect();
        super::insert_contents(&store, &mut tx, None, 1, "t", &items)
            .await
            .expect("insert many");
        tx.commit().await.expect("commit");
        assert_eq!(
            super::bank_counts(&store, &store.pool, 1)
                .await
                .expect("counts"),
            (6, 0)
        );
        let signals = |t: &'static str| {
            let store = store.clone();
            async move { super::hma::signal_count(&store, t).await.expect("count") }
        };
        assert_eq!((signals("md5").await, signals("pdq").await), (3, 4));
    }

    use super::split_statements;

    #[test]
    fn statements_split_at_semicolons_but_keep_trigger_and_function_bodies() {
        let sql = "CREATE TABLE a (x BIGINT); \
                   CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = n + 1; UPDATE c SET m = 1; END; \
                   CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE b SET n = 1; RETURN NULL; END $$; \
                   CREATE INDEX i ON a (x);";
        let got = split_statements(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[1].starts_with("CREATE TRIGGER") && got[1].ends_with("END"));
        assert!(got[1].contains("n + 1; UPDATE c"));
        assert!(got[2].starts_with("CREATE FUNCTION") && got[2].ends_with("$$"));
        assert_eq!(got[3], "CREATE INDEX i ON a (x)");
        // Every service migration splits exactly as a plain split would.
        for m in super::schema::CORE {
            let plain: Vec<&str> = m
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(split_statements(m), plain);
        }
    }

    /// A page's aggregated text splits back into (content, bank, value), and
    /// a record that does not is an error, not a skipped row.
    #[test]
    fn signal_pages_split_into_rows() {
        let page = super::SignalPage {
            last: 9,
            data: "7,2,ab12;8,2,cd34".into(),
        };
        let rows: Vec<_> = page.rows().collect();
        assert_eq!(rows, vec![Ok((7, 2, "ab12")), Ok((8, 2, "cd34"))]);
        for bad in ["7,2", "x,2,ab", "7,,ab"] {
            let page = super::SignalPage {
                last: 1,
                data: bad.into(),
            };
            assert!(page.rows().all(|r| r.is_err()), "{bad}");
        }
    }

    /// A caller dropped while its BEGIN was under way (a client gone, a job
    /// aborted) must not leave a pooled connection inside a transaction
    /// holding SQLite's write lock. Cancels `begin` at many points, then
    /// writes: before the fix this waited out the busy timeout and failed
    /// with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn begin_survives_a_cancelled_caller() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = super::Store::open(&url).await.expect("open");
        for k in 0..400u64 {
            let attempt =
                tokio::time::timeout(std::time::Duration::from_micros(k % 200), store.begin());
            drop(attempt.await);
        }
        let write = async {
            let mut tx = store.begin().await?;
            sqlx::query("INSERT INTO meta (key, value) VALUES ('probe', 'x')")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        let done = tokio::time::timeout(std::time::Duration::from_secs(8), write).await;
        assert!(
            matches!(done, Ok(Ok(()))),
            "a write after cancelled BEGINs: {done:?}"
        );
    }

    /// Start-up reads the disabled content through its partial index, not a
    /// scan of every content row.
    #[tokio::test]
    async fn disabled_content_is_read_through_its_index() {
        use sqlx::Row;
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = super::Store::open(&url).await.expect("open");
        let plan: Vec<String> = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT id, disabled_until FROM content WHERE enabled = 0",
        )
        .fetch_all(&store.pool)
        .await
        .expect("plan")
        .iter()
        .map(|r| r.try_get::<String, _>("detail").expect("detail"))
        .collect();
        assert!(
            plan.iter().any(|d| d.contains("content_disabled")),
            "{plan:?}"
        );
    }
}
