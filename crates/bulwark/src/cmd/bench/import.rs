//! `bulwark bench import`: a large hash list through an import job
//! (`POST /v1/banks/{bank}/imports` on loopback, then the worker), with single
//! writes (`POST /v1/banks/{other}/content`) sent all along to show what an
//! import costs the other writers.
//!
//! The reference in the same run is the import path before jobs: one content,
//! signal and change statement per line (`db::insert_content`, 1,000 lines a
//! transaction), on a sample of the same list.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bulwark_chat::http::Http;
use bulwark_server::auth::{self, Role};
use bulwark_server::db::{self, NewContent};
use bulwark_server::{Config, Service};
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Arguments of `bulwark bench import`.
#[derive(clap::Args)]
pub struct Args {
    /// Lines in the list.
    #[arg(long, default_value_t = 1_000_000)]
    lines: usize,
    /// Lines of the reference (per-row) import.
    #[arg(long, default_value_t = 20_000)]
    reference_lines: usize,
    /// Milliseconds between single writes during the import; 0 for none
    /// (the import alone). The writes before it are 20 ms apart whatever
    /// this says.
    #[arg(long, default_value_t = 20)]
    write_every_ms: u64,
    /// Use this database instead of a temporary SQLite file (it gets new banks).
    #[arg(long)]
    database: Option<String>,
    /// With a PostgreSQL `--database`: run in a new database created beside
    /// it on the same server, and drop that database at the end. Rows left
    /// by earlier runs slow a run's start-up reads; this makes each run
    /// start empty.
    #[arg(long, requires = "database")]
    fresh_database: bool,
    /// The service's `import_share_after_write_seconds`: how long after a
    /// single write a PostgreSQL import writes one batch at a time (0: two
    /// at once even beside single writes). Default: the service's.
    #[arg(long)]
    share_after_write_seconds: Option<f64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    // The service's warnings and errors (a failed job says "see the server
    // log"); RUST_LOG overrides.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

fn hex32(rng: &mut impl Rng) -> String {
    let b: [u8; 32] = rng.r#gen();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Time between the single writes before the import.
const ALONE_EVERY: Duration = Duration::from_millis(20);

/// The `p` quantile (0 to 1) of `sorted`, the nearest rank; `None` when
/// empty. The one rule every bench reports percentiles by.
pub(super) fn quantile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

/// [`quantile`] of numbers; NaN when empty.
pub(super) fn pct(sorted: &[f64], p: f64) -> f64 {
    quantile(sorted, p).unwrap_or(f64::NAN)
}

/// A PostgreSQL database made for one run, dropped by [`Scratch::drop_it`].
struct Scratch {
    /// The server's URL as given, to connect for the drop.
    admin: String,
    name: String,
}

impl Scratch {
    /// Creates `bulwark_bench_<pid>` on the server of `url` (a PostgreSQL
    /// URL); returns it and the URL that names it.
    async fn create(url: &str) -> anyhow::Result<(Scratch, String)> {
        use sqlx::Connection;
        anyhow::ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "--fresh-database needs a PostgreSQL --database URL"
        );
        let (prefix, rest) = url
            .rsplit_once('/')
            .filter(|(p, _)| p.contains("//") && !p.ends_with('/'))
            .ok_or_else(|| anyhow::anyhow!("--database {url:?} names no database"))?;
        let query = rest.split_once('?').map(|(_, q)| format!("?{q}"));
        let scratch = Scratch {
            admin: url.to_string(),
            name: format!("bulwark_bench_{}", std::process::id()),
        };
        // One left by an earlier run with the same process id goes first.
        scratch.drop_it().await?;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(&format!("CREATE DATABASE {}", scratch.name))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let fresh = format!("{prefix}/{}{}", scratch.name, query.unwrap_or_default());
        Ok((scratch, fresh))
    }

    async fn drop_it(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

async fn run_async(a: Args) -> anyhow::Result<ExitCode> {
    let (scratch, database) = match (&a.database, a.fresh_database) {
        (Some(url), true) => {
            let (s, fresh) = Scratch::create(url).await?;
            (Some(s), Some(fresh))
        }
        _ => (None, a.database.clone()),
    };
    let result = measure(&a, database).await;
    if let Some(s) = scratch
        && let Err(e) = s.drop_it().await
    {
        eprintln!(
            "bench import: could not drop the database {}: {e:#}",
            s.name
        );
    }
    result
}

async fn measure(a: &Args, database: Option<String>) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database,
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    if let Some(s) = a.share_after_write_seconds {
        config.import_share_after_write = Duration::try_from_secs_f64(s)
            .map_err(|_| anyhow::anyhow!("--share-after-write-seconds: {s} is not a duration"))?;
    }
    let service = Service::open(config).await?;
    let st = service.state.clone();
    let tag = std::process::id();
    let (bank, refbank, single) = (
        format!("import_{tag}"),
        format!("import_ref_{tag}"),
        format!("import_single_{tag}"),
    );
    for b in [&bank, &refbank, &single] {
        sqlx::query(&st.store.sql(
            "INSERT INTO banks (name, threshold, enabled, description, provider, created_at, updated_at) \
             VALUES (?, 31, 1, 'benchmark', NULL, 0, 0)",
        ))
        .bind(b)
        .execute(&st.store.pool)
        .await?;
    }
    st.catalog.load_full(&st.store).await?;
    let key = auth::create_key(&st.store, Role::Admin, "bench")
        .await?
        .key
        .to_string();

    // The list, on disk.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let list = dir.path().join("list.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&list)?);
        for _ in 0..a.lines {
            writeln!(f, "pdq {}", hex32(&mut rng))?;
        }
        f.flush()?;
    }

    // Reference: the per-row path on a sample of the same kind of lines.
    let ref_bank = db::bank_by_name(&st.store, &refbank)
        .await?
        .ok_or_else(|| anyhow::anyhow!("reference bank missing"))?;
    let t = Instant::now();
    let mut done = 0;
    while done < a.reference_lines {
        let mut tx = st.store.begin().await?;
        for _ in 0..1000.min(a.reference_lines - done) {
            let c = NewContent::pdq(hex32(&mut rng), None);
            if let Some(id) =
                db::insert_content(&st.store, &mut tx, ref_bank.id, "bench", &c).await?
            {
                db::change(&st.store, &mut tx, Some(ref_bank.id), Some(id)).await?;
            }
            done += 1;
        }
        tx.commit().await?;
    }
    let ref_rate = a.reference_lines as f64 / t.elapsed().as_secs_f64();

    // The service on loopback, with its import worker.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let c = &service.state.config;
    let limits = bulwark_server::listen::Limits {
        header_read_timeout: c.header_read_timeout,
        max_connections: bulwark_server::listen::fit_connections(c.max_connections),
        drain_timeout: c.request_timeout,
    };
    tokio::spawn(bulwark_server::listen::serve(
        listener,
        service.router(),
        limits,
        std::future::pending(),
    ));
    let worker = bulwark_server::api::imports::spawn_worker(st.clone());
    // And what `bulwark serve` runs beside its import jobs: the refresh loop
    // (other replicas' changes, index folds and snapshots) and the index
    // journal's writer, whose sync twice a second is a write too. Until
    // 2026-12-04 this bench ran neither, and missed that the sync made every
    // job on PostgreSQL write one batch at a time.
    let refresh = service.spawn_refresh();
    let journal = service.spawn_journal();
    let base = format!("http://127.0.0.1:{port}");

    // Single writes alone first (what the disk gives a write), then all
    // along the import.
    let (alone, alone_errors) = {
        let (base, key, single) = (base.clone(), key.clone(), single.clone());
        tokio::task::spawn_blocking(move || {
            single_writes(&base, &key, &single, ALONE_EVERY, 9, None, |n| n >= 100)
        })
        .await??
    };
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, base, key, single) = (stop.clone(), base.clone(), key.clone(), single.clone());
        let every = Duration::from_millis(a.write_every_ms);
        let none = a.write_every_ms == 0;
        tokio::task::spawn_blocking(move || {
            single_writes(&base, &key, &single, every, 8, Some(&stop), |_| none)
        })
    };

    let t = Instant::now();
    let (base2, key2, bank2, list2) = (base.clone(), key.clone(), bank.clone(), list.clone());
    let job = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let http = Http::with_timeout(&base2, None);
        let mut f = std::io::BufReader::new(std::fs::File::open(&list2)?);
        http.post_reader(
            &format!("/v1/banks/{bank2}/imports"),
            Some(&key2),
            &[],
            "text/plain",
            &mut f,
        )?
        .json("starting the import", &[202])
    })
    .await??;
    let upload_s = t.elapsed().as_secs_f64();
    let id = job["id"].as_str().unwrap_or_default().to_string();
    let http = Http::new(&base);
    let job = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (http, key, id) = (http.clone(), key.clone(), id.clone());
        let j = tokio::task::spawn_blocking(move || {
            http.call("GET", &format!("/v1/imports/{id}"), Some(&key), None)?
                .json("following the import", &[200])
        })
        .await??;
        if j["status"] != "queued" && j["status"] != "running" {
            break j;
        }
    };
    stop.store(true, Ordering::Relaxed);
    let (mut ms, errors) = writer.await??;
    let errors = errors + alone_errors;
    let mut alone = alone;
    alone.sort_by(f64::total_cmp);
    worker.abort();
    refresh.abort();
    journal.abort();
    anyhow::ensure!(job["status"] == "done", "the import did not finish: {job}");
    let added = job["added"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        added as usize == a.lines,
        "{added} of {} lines added",
        a.lines
    );
    let import_s = job["seconds"].as_f64().unwrap_or(f64::NAN);
    let rate = a.lines as f64 / import_s;
    ms.sort_by(f64::total_cmp);
    let backend = if a.database.is_some() {
        "postgresql"
    } else {
        "sqlite"
    };
    let machine = super::machine();
    if a.json {
        println!(
            "{}",
            json!({"backend": backend, "lines": a.lines, "upload_s": upload_s, "import_s": import_s,
                "lines_per_s": rate, "reference_lines_per_s": ref_rate, "ratio": rate / ref_rate,
                "single_writes": ms.len(), "single_write_errors": errors,
                "alone_p50_ms": pct(&alone, 0.5), "alone_p99_ms": pct(&alone, 0.99),
                "single_write_p50_ms": pct(&ms, 0.5), "single_write_p99_ms": pct(&ms, 0.99),
                "single_write_max_ms": ms.last().copied().unwrap_or(f64::NAN), "machine": machine})
        );
    } else {
        println!(
            "{backend}: {} lines  upload {upload_s:.1} s  import {import_s:.1} s = {rate:.0} lines/s \
             (per-row reference {ref_rate:.0} lines/s, {:.1}x)  single writes during the import: {} \
             ({errors} errors) p50 {:.1} ms p99 {:.1} ms max {:.1} ms (alone, before it: {} writes, \
             p50 {:.1} ms p99 {:.1} ms)  [{machine}]",
            a.lines,
            rate / ref_rate,
            ms.len(),
            pct(&ms, 0.5),
            pct(&ms, 0.99),
            ms.last().copied().unwrap_or(f64::NAN),
            alone.len(),
            pct(&alone, 0.5),
            pct(&alone, 0.99),
        );
    }
    // Before a `--fresh-database` is dropped.
    st.store.pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Adds one item at a time to bank `single` (`POST /v1/banks/{single}/content`),
/// `every` apart, until `stop` is set or `enough(count)`; each one's time in
/// milliseconds, and how many failed.
fn single_writes(
    base: &str,
    key: &str,
    single: &str,
    every: Duration,
    seed: u64,
    stop: Option<&AtomicBool>,
    enough: impl Fn(usize) -> bool,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let http = Http::new(base);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut ms, mut errors) = (Vec::new(), 0);
    while !stop.is_some_and(|s| s.load(Ordering::Relaxed)) && !enough(ms.len()) {
        let body = json!({"signals": {"pdq": hex32(&mut rng)}});
        let t = Instant::now();
        let r = http.post_json(&format!("/v1/banks/{single}/content"), Some(key), &body)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if r.status != 201 && r.status != 200 {
            errors += 1;
        }
        std::thread::sleep(every);
    }
    Ok((ms, errors))
}
