//! `bulwark bench serve`: the matcher service under load on loopback, with N
//! banked hashes, for match-by-hash and match-by-upload; and start-up time.
//!
//! The reference in the same run is the same queries answered in-process by
//! the service's own catalog (no HTTP, no JSON): the ratio is what the HTTP
//! layer costs. The load generator shares the machine with the server (keep-
//! alive connections, one request in flight each), so figures are a floor.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_pdq::PdqHash;
use bulwark_server::auth::{self, Role};
use bulwark_server::{Config, Service};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Arguments of `bulwark bench serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Hashes in the bank.
    #[arg(long, default_value_t = 1_000_000)]
    hashes: usize,
    /// Seconds of load per scenario.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent connections, match by hash.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Concurrent connections, match by upload.
    #[arg(long, default_value_t = 4)]
    upload_connections: usize,
    /// Use this database instead of a temporary SQLite file (it gets a new bank).
    #[arg(long)]
    database: Option<String>,
    /// Only measure start-up (load + index build), no load.
    #[arg(long)]
    startup_only: bool,
    /// With `--startup-only`: after writing the snapshot, commit this many
    /// more hashes as an import job does (batches of 2,000, each with its
    /// change rows, indexed and journaled as committed, the journal written
    /// every 0.5 s) and start again from the snapshot: a restart after a
    /// `kill -9` that left these changes out of the snapshot. Timed twice:
    /// with the index journal, and without it (replayed from the store, or
    /// above the replay cap of 200,000 read whole from the store).
    #[arg(long, default_value_t = 0)]
    pending_changes: usize,
    /// After the scenarios, this many rounds of mixed load (uploads and
    /// hash matches together), printing the process's resident memory after each.
    #[arg(long, default_value_t = 0)]
    memory_rounds: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// This process's resident set size in MiB (Linux; `None` elsewhere).
pub(super) fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Makes one request (head, body).
type MakeRequest = Arc<dyn Fn(&mut rand_chacha::ChaCha8Rng) -> (String, Vec<u8>) + Send + Sync>;

struct Load {
    requests: usize,
    errors: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// [`super::import::quantile`] of durations, in milliseconds; NaN when empty.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    super::import::quantile(sorted, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn open(port: u16) -> anyhow::Result<Conn> {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Conn {
            r: BufReader::new(r),
            w,
        })
    }

    async fn post(&mut self, head: &str, body: &[u8]) -> anyhow::Result<u16> {
        self.w.write_all(head.as_bytes()).await?;
        self.w.write_all(body).await?;
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        let status: u16 = line.get(9..12).unwrap_or("0").parse().unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0u8; len];
        self.r.read_exact(&mut buf).await?;
        Ok(status)
    }
}

async fn load(port: u16, conns: usize, secs: f64, make: MakeRequest) -> anyhow::Result<Load> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c as u64);
            let mut conn = Conn::open(port).await?;
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let (head, body) = make(&mut rng);
                let t = Instant::now();
                match conn.post(&head, &body).await {
                    Ok(200) => lat.push(t.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Conn::open(port).await?;
                    }
                }
            }
            anyhow::Ok((lat, errors))
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    let took = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(Load {
        requests: all.len(),
        errors,
        rps: all.len() as f64 / took,
        p50_ms: pct(&all, 0.50),
        p99_ms: pct(&all, 0.99),
    })
}

/// A restart's cost with changes the snapshot does not hold.
#[derive(Clone, Copy)]
struct Restart {
    seconds: f64,
    used_snapshot: bool,
    /// `Store::warm`: on SQLite, filling the de-duplication map from every
    /// content row (in the background at start, beside requests).
    warm_s: f64,
    /// The first batch's commit, after that fill.
    first_batch_s: f64,
    /// The same restart without the index journal.
    without_journal_s: f64,
    /// Journal records and changes the journaled restart read back from the store.
    journal_records: usize,
    replayed: usize,
    /// Its phases: the journal read, the index ready, the store's replay.
    phases: [f64; 3],
}

/// Commits `n` more random hashes to the bank as an import job does
/// (batches of 2,000 with their change rows), leaves the snapshot as it
/// was (what a `kill -9` leaves), and times a fresh catalog's start-up.
async fn restart_with_pending(
    service: &Service,
    dir: &tempfile::TempDir,
    bank_id: i64,
    banked: usize,
    n: usize,
    rng: &mut impl Rng,
) -> anyhow::Result<Restart> {
    use bulwark_server::db::NewContent;
    let st = &service.state;
    eprintln!("bench serve: filling the de-duplication map as a start does…");
    let t = Instant::now();
    st.store.warm().await?;
    let warm_s = t.elapsed().as_secs_f64();
    eprintln!("bench serve: committing {n} changes after the snapshot…");
    // The server's journal writer; stopped without a last write below, as a
    // `kill -9` would stop it.
    let flusher = service.spawn_journal();
    let mut left = n;
    let mut first_batch_s = None;
    while left > 0 {
        let t = Instant::now();
        let items: Vec<NewContent> = (0..left.min(2_000))
            .map(|_| {
                let h = PdqHash::from_bytes(rng.r#gen());
                NewContent::pdq(h.to_string(), Some(100))
            })
            .collect();
        let mut tx = st.store.begin().await?;
        let (ids, changes) =
            bulwark_server::db::insert_contents(&st.store, &mut tx, None, bank_id, "bench", &items)
                .await?;
        let fresh: Vec<(i64, i64, PdqHash)> = ids
            .iter()
            .zip(&items)
            .filter_map(|(id, item)| Some((bank_id, (*id)?, item.signals[0].value.parse().ok()?)))
            .collect();
        let mark = st.catalog.apply_mark();
        tx.commit().await?;
        st.catalog
            .apply_fresh(&st.store, mark, &changes, &fresh)
            .await?;
        first_batch_s.get_or_insert(t.elapsed().as_secs_f64());
        left -= items.len();
        // As an import job does: writers waiting (the journal's) go first.
        st.store.yield_to_writers(Duration::from_millis(200)).await;
    }
    flusher.abort();
    // This process's own index merges what it was sent (13M entries take
    // seconds): done before the timed starts, which a merge would slow.
    let c = Arc::clone(&st.catalog);
    tokio::task::spawn_blocking(move || c.merge_index()).await?;
    let restart = || async {
        let fresh = bulwark_server::catalog::Catalog::new();
        fresh.set_snapshot_path(dir.path().join("index.snapshot"));
        let t = Instant::now();
        let used_snapshot = fresh.load(&st.store).await?;
        let seconds = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            fresh.index_size().0 == banked + n,
            "the restart lost entries: {} of {}",
            fresh.index_size().0,
            banked + n
        );
        anyhow::Ok((seconds, used_snapshot, fresh.last_load()))
    };
    eprintln!("bench serve: restarting with the index journal…");
    let (seconds, used_snapshot, stats) = restart().await?;
    eprintln!("bench serve: restarting without it…");
    let journal = dir.path().join("index.journal");
    let aside = dir.path().join("index.journal.aside");
    std::fs::rename(&journal, &aside)?;
    let (without_journal_s, _, _) = restart().await?;
    std::fs::rename(&aside, &journal)?;
    Ok(Restart {
        seconds,
        used_snapshot,
        warm_s,
        first_batch_s: first_batch_s.unwrap_or(0.0),
        without_journal_s,
        journal_records: stats.journal_records,
        replayed: stats.replayed,
        phases: [stats.journal_s, stats.index_s, stats.replay_s],
    })
}

fn flip(h: &PdqHash, bits: u32, rng: &mut impl Rng) -> PdqHash {
    let mut b = *h.as_bytes();
    for _ in 0..bits {
        let k = rng.gen_range(0..256);
        b[k / 8] ^= 1 << (k % 8);
    }
    PdqHash::from_bytes(b)
}

/// A 1024×768 JPEG made from a benign conformance image.
fn upload_image() -> anyhow::Result<Vec<u8>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/pdq/images/reg-test-input/dih/bridge-1-original.jpg");
    let src = bulwark_pdq::decode(&std::fs::read(&p)?, &Default::default())?;
    let (w, h) = (1024usize, 768usize);
    let c = src.channels as usize;
    let mut px = vec![0u8; w * h * c];
    for y in 0..h {
        for x in 0..w {
            let sx = x * src.width as usize / w;
            let sy = y * src.height as usize / h;
            for k in 0..c {
                px[(y * w + x) * c + k] = src.pixels[(sy * src.width as usize + sx) * c + k];
            }
        }
    }
    let img = bulwark_pdq::Image {
        width: w as u32,
        height: h as u32,
        channels: src.channels,
        pixels: px,
    };
    Ok(bulwark_pdq::encode_jpeg(&img, 85)?)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "bulwark_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: Args) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        database: a.database.clone(),
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    let service = Service::open(config).await?;
    let st = service.state.clone();
    let bank = format!("bench_{}", std::process::id());
    let bank_id: i64 = {
        use sqlx::Row;
        sqlx::query(&st.store.sql(
            "INSERT INTO banks (name, threshold, enabled, description, provider, created_at, updated_at) \
             VALUES (?, 31, 1, 'benchmark', NULL, 0, 0) RETURNING id",
        ))
        .bind(&bank)
        .fetch_one(&st.store.pool)
        .await?
        .try_get("id")?
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let hashes: Vec<PdqHash> = (0..a.hashes)
        .map(|_| PdqHash::from_bytes(rng.r#gen()))
        .collect();
    eprintln!("bench serve: loading {} hashes into the store…", a.hashes);
    let t = Instant::now();
    bulwark_server::db::bulk_insert_pdq(&st.store, bank_id, "bench", &hashes).await?;
    let insert_s = t.elapsed().as_secs_f64();
    // Start-up cost without a snapshot (read every hash, build the index),
    // then with one (map the snapshot, replay the changes since).
    let t = Instant::now();
    st.catalog.load_full(&st.store).await?;
    let cold_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    st.catalog.save_snapshot(&st.store).await?;
    let snapshot_write_s = t.elapsed().as_secs_f64();
    let fresh = bulwark_server::catalog::Catalog::new();
    fresh.set_snapshot_path(dir.path().join("index.snapshot"));
    let t = Instant::now();
    anyhow::ensure!(fresh.load(&st.store).await?, "the snapshot was not used");
    let startup_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        fresh.index_size().0 == a.hashes,
        "the snapshot lost entries"
    );
    drop(fresh);
    let pending = if a.pending_changes > 0 {
        Some(
            restart_with_pending(
                &service,
                &dir,
                bank_id,
                a.hashes,
                a.pending_changes,
                &mut rng,
            )
            .await?,
        )
    } else {
        None
    };
    let machine = super::machine();
    if a.startup_only {
        if a.json {
            println!(
                "{}",
                serde_json::json!({"hashes": a.hashes, "insert_s": insert_s, "startup_full_s": cold_s,
                    "snapshot_write_s": snapshot_write_s, "startup_snapshot_s": startup_s,
                    "pending_changes": a.pending_changes,
                    "restart_s": pending.map(|p| p.seconds),
                    "restart_used_snapshot": pending.map(|p| p.used_snapshot),
                    "restart_journal_records": pending.map(|p| p.journal_records),
                    "restart_replayed": pending.map(|p| p.replayed),
                    "restart_phases_s": pending.map(|p| p.phases),
                    "restart_without_journal_s": pending.map(|p| p.without_journal_s),
                    "dedup_fill_s": pending.map(|p| p.warm_s),
                    "first_batch_s": pending.map(|p| p.first_batch_s),
                    "machine": machine})
            );
        } else {
            println!(
                "hashes {}  bulk insert {insert_s:.1} s  start-up: from the store {cold_s:.2} s, from the snapshot \
                 {startup_s:.2} s (writing it {snapshot_write_s:.2} s)  [{machine}]",
                a.hashes
            );
            if let Some(p) = pending {
                println!(
                    "de-duplication map filled (at start, in the background) in {:.2} s; \
                     the first batch after it {:.2} s",
                    p.warm_s, p.first_batch_s
                );
                println!(
                    "restart with {} changes after the snapshot: {:.2} s ({}: {} journal records, \
                     {} changes read back from the store); without the journal {:.2} s; ratio {:.1}x",
                    a.pending_changes,
                    p.seconds,
                    if p.used_snapshot {
                        "snapshot + journal + replay"
                    } else {
                        "read from the store"
                    },
                    p.journal_records,
                    p.replayed,
                    p.without_journal_s,
                    p.without_journal_s / p.seconds
                );
                println!(
                    "  its phases: journal read and folded {:.2} s, index ready {:.2} s, \
                     store replay {:.2} s",
                    p.phases[0], p.phases[1], p.phases[2]
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let router = service.router();
    // The accept loop `bulwark serve` uses, with its default limits.
    let c = &service.state.config;
    let limits = bulwark_server::listen::Limits {
        header_read_timeout: c.header_read_timeout,
        max_connections: bulwark_server::listen::fit_connections(c.max_connections),
        drain_timeout: c.request_timeout,
    };
    tokio::spawn(bulwark_server::listen::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    let key = auth::create_key(&st.store, Role::Matcher, "bench")
        .await?
        .key
        .to_string();

    // Reference: the same kind of query answered in-process.
    let hashes = Arc::new(hashes);
    let t = Instant::now();
    let mut n = 0usize;
    let mut found = 0usize;
    while t.elapsed().as_secs_f64() < a.seconds.min(3.0) {
        let q = if n.is_multiple_of(2) {
            flip(&hashes[rng.gen_range(0..hashes.len())], 8, &mut rng)
        } else {
            PdqHash::from_bytes(rng.r#gen())
        };
        found += st.catalog.search(&q, None).len();
        n += 1;
    }
    let inproc_qps = n as f64 / t.elapsed().as_secs_f64();
    assert!(found > 0, "in-process queries found nothing");

    // Match by hash: half are banked hashes with 8 bits flipped, half random.
    let hs = Arc::clone(&hashes);
    let key2 = key.clone();
    let by_hash = load(port, a.connections, a.seconds, Arc::new(move |rng| {
        let q = if rng.gen_bool(0.5) { flip(&hs[rng.gen_range(0..hs.len())], 8, rng) } else { PdqHash::from_bytes(rng.r#gen()) };
        let body = format!(r#"{{"signals":{{"pdq":"{q}"}}}}"#).into_bytes();
        let head = format!(
            "POST /v1/match HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {key2}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        (head, body)
    }))
    .await?;

    // Match by upload: a 1024×768 JPEG, multipart.
    let jpeg = upload_image()?;
    let boundary = "benchBoundary0123456789";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes();
    body.extend_from_slice(&jpeg);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /v1/match HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {key}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let body = Arc::new(body);
    let upload_request: MakeRequest = Arc::new(move |_| (head.clone(), body.to_vec()));
    let by_upload = load(
        port,
        a.upload_connections,
        a.seconds,
        Arc::clone(&upload_request),
    )
    .await?;

    // Memory under repeated mixed load: RSS after each round, once the
    // round's connections are closed and the server is idle again.
    let mut rss_rounds = Vec::new();
    let rss_before = rss_mib();
    for _ in 0..a.memory_rounds {
        let uploads = load(
            port,
            a.upload_connections,
            a.seconds / 2.0,
            Arc::clone(&upload_request),
        );
        let hs = Arc::clone(&hashes);
        let key3 = key.clone();
        let matches = load(
            port,
            a.connections / 4 + 1,
            a.seconds / 2.0,
            Arc::new(move |rng| {
                let q = flip(&hs[rng.gen_range(0..hs.len())], 8, rng);
                let body = format!(r#"{{"signals":{{"pdq":"{q}"}}}}"#).into_bytes();
                let head = format!(
                    "POST /v1/match HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {key3}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                (head, body)
            }),
        );
        let (u, m) = tokio::join!(uploads, matches);
        u?;
        m?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_rounds.push(rss_mib().unwrap_or(f64::NAN));
    }

    if a.json {
        let l = |x: &Load| serde_json::json!({"requests": x.requests, "errors": x.errors, "rps": x.rps, "p50_ms": x.p50_ms, "p99_ms": x.p99_ms});
        println!(
            "{}",
            serde_json::json!({
                "hashes": a.hashes, "connections": a.connections, "upload_connections": a.upload_connections, "seconds": a.seconds,
                "startup_snapshot_s": startup_s, "startup_full_s": cold_s, "insert_s": insert_s, "inprocess_qps": inproc_qps,
                "match_by_hash": l(&by_hash), "match_by_upload": l(&by_upload),
                "upload_bytes": jpeg.len(), "machine": machine,
                "allocator": crate::ALLOCATOR, "rss_before_mib": rss_before, "rss_rounds_mib": rss_rounds,
            })
        );
    } else {
        println!(
            "bulwark bench serve: {} banked hashes, {}/{} connections (hash/upload), {:.0} s per scenario [{machine}]",
            a.hashes, a.connections, a.upload_connections, a.seconds
        );
        println!(
            "  start-up with {} hashes: from the store {cold_s:.2} s, from the index snapshot {startup_s:.2} s \
             (bulk insert {insert_s:.1} s)",
            a.hashes
        );
        println!("  reference: in-process search                 {inproc_qps:>9.0} q/s");
        for (name, x, target) in [
            ("match by hash (JSON)", &by_hash, 5000.0),
            ("match by upload (1024x768 JPEG)", &by_upload, 150.0),
        ] {
            println!(
                "  {name:<34} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}  ({:.2}x the goal of {target}/s)",
                x.rps,
                x.p50_ms,
                x.p99_ms,
                x.errors,
                x.rps / target
            );
        }
        println!(
            "  HTTP cost: match by hash at {:.2}x the in-process rate",
            by_hash.rps / inproc_qps
        );
        if let (Some(first), Some(last)) = (rss_rounds.first(), rss_rounds.last()) {
            let rounds: Vec<String> = rss_rounds.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "  memory ({} allocator): RSS before {:.0} MiB; after each of {} mixed rounds [{}] MiB; \
                 last/first {:.2}x",
                crate::ALLOCATOR,
                rss_before.unwrap_or(f64::NAN),
                rss_rounds.len(),
                rounds.join(", "),
                last / first
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
