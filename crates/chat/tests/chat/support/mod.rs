//! What the messenger's integration tests share: a real matcher service
//! (`bulwark serve`, in-process) and the delivery service on free ports,
//! banks and a pdata release signed by two providers (as `e2e.rs` sets them
//! up), and database probes.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark_chat::http::Http;
use serde_json::{Value, json};

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub matcher: String,
    pub ds: String,
    pub admin: String,
    pub stamper: String,
    pub server_dir: PathBuf,
    pub ds_db: PathBuf,
    pub _rt: tokio::runtime::Runtime,
}

pub fn conformance() -> PathBuf {
    std::env::var("BULWARK_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

pub fn images() -> Vec<PathBuf> {
    let root = conformance().join("pdq/images");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x != "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A reviewer of the matcher's console, and their password.
pub const REVIEWER: &str = "rita";
pub const REVIEWER_PASSWORD: &str = "a long test password for rita";

pub fn start() -> Env {
    start_on(None)
}

/// [`start`] with both services on the database `postgres` (a PostgreSQL
/// URL: the matcher's tables and the delivery service's `chat_*` tables
/// side by side), or each on its own SQLite file when `None`.
pub fn start_on(postgres: Option<String>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let server_dir = root.join("server");
    let ds_db = root.join("delivery.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (matcher, admin, stamper) = rt.block_on(async {
        let config = bulwark_server::Config {
            data_dir: server_dir.clone(),
            database: postgres.clone(),
            max_upload_bytes: 8 << 20,
            workers: 2,
            ..bulwark_server::Config::default()
        };
        let svc = bulwark_server::Service::open(config).await.unwrap();
        let admin = std::fs::read_to_string(svc.admin_key_file.clone().unwrap())
            .unwrap()
            .trim()
            .to_string();
        let stamper = bulwark_server::auth::create_key(
            &svc.state.store,
            bulwark_server::auth::Role::Stamper,
            "delivery",
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        bulwark_server::api::vouchers::spawn_worker(svc.state.clone());
        bulwark_server::console::accounts::add_reviewer(
            &svc.state.store,
            &svc.state.kek,
            REVIEWER,
            bulwark_server::console::accounts::ConsoleRole::Reviewer,
            REVIEWER_PASSWORD,
            false,
        )
        .await
        .unwrap();
        let router = svc.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (url, admin, stamper.key.to_string())
    });
    let ds = rt.block_on(async {
        let app = bulwark_chat::delivery::router(&bulwark_chat::delivery::Config {
            database: postgres
                .clone()
                .unwrap_or_else(|| ds_db.display().to_string()),
            matcher_url: matcher.clone(),
            stamper_key: stamper.clone(),
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });
    Env {
        _dir: dir,
        root,
        matcher,
        ds,
        admin,
        stamper,
        server_dir,
        ds_db,
        _rt: rt,
    }
}

pub fn upload(m: &Http, admin: &str, bank: &str, file: &Path) {
    let b = "chatE2eBoundary";
    let mut body =
        format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n")
            .into_bytes();
    body.extend(std::fs::read(file).unwrap());
    body.extend(format!("\r\n--{b}--\r\n").into_bytes());
    let ctype = format!("multipart/form-data; boundary={b}");
    let r = m
        .call(
            "POST",
            &format!("/v1/banks/{bank}/content"),
            Some(admin),
            Some((&ctype, &body)),
        )
        .unwrap();
    assert!(r.status < 300, "{}", String::from_utf8_lossy(&r.body));
}

/// Banks `org_a` and `org_b` of two providers (created once).
pub fn banks(env: &Env) {
    let m = Http::new(&env.matcher);
    for (bank, provider) in [("org_a", "a"), ("org_b", "b")] {
        m.post_json(
            "/v1/banks",
            Some(&env.admin),
            &json!({"name": bank, "provider": provider}),
        )
        .unwrap()
        .ok("bank", &[201])
        .unwrap();
    }
}

/// Banks `file` in both providers' banks.
pub fn bank_file(env: &Env, file: &Path) {
    let m = Http::new(&env.matcher);
    for bank in ["org_a", "org_b"] {
        upload(&m, &env.admin, bank, file);
    }
}

/// Banks a PDQ hash (hex) in both providers' banks.
pub fn bank_pdq(env: &Env, pdq: &str) {
    let m = Http::new(&env.matcher);
    for bank in ["org_a", "org_b"] {
        m.post_json(
            &format!("/v1/banks/{bank}/content"),
            Some(&env.admin),
            &json!({"signals": {"pdq": pdq}, "quality": 100}),
        )
        .unwrap()
        .ok("bank a hash", &[201])
        .unwrap();
    }
}

/// A pdata release (`compact`, threshold `threshold`) of what the banks
/// hold, signed by two providers; returns their public keys.
pub fn release(env: &Env, threshold: u16) -> Vec<String> {
    let m = Http::new(&env.matcher);
    let rel = m
        .post_json(
            "/v1/pdata/build",
            Some(&env.admin),
            &json!({"profile": "compact", "threshold": threshold}),
        )
        .unwrap()
        .json("build", &[201])
        .unwrap();
    let release = rel["release"].as_i64().unwrap();
    let mut pins = Vec::new();
    for name in ["org_a", "org_b"] {
        let k = bulwark_psi::ProviderKey::generate(&mut rand::rngs::OsRng);
        m.post_json(
            "/v1/providers",
            Some(&env.admin),
            &json!({"name": name, "public_key": k.public().to_string()}),
        )
        .unwrap()
        .ok("provider", &[201])
        .unwrap();
        let r = m
            .call("GET", &format!("/v1/pdata/releases/{release}"), None, None)
            .unwrap();
        r.ok("release", &[200]).unwrap();
        let root = r.header("x-bulwark-pdata-root").unwrap().to_string();
        let p = bulwark_client::voucher::load_pdata_with_policy(
            &r.body,
            &root,
            &bulwark_client::voucher::Policy::default().allow_threshold(1),
        )
        .unwrap();
        let sig = k.sign(&p);
        m.post_json(
            &format!("/v1/pdata/releases/{release}/signatures"),
            None,
            &json!({"public_key": sig.key.to_string(), "signature": hex::encode(sig.signature)}),
        )
        .unwrap()
        .ok("sign", &[200])
        .unwrap();
        pins.push(k.public().to_string());
    }
    pins
}

/// Registers `user`'s device "phone" with the delivery service, checking
/// pdata against `policy`.
pub fn phone(env: &Env, policy: &bulwark_chat::PdataPolicy, user: &str) -> bulwark_chat::Client {
    let mut c = bulwark_chat::Client::register(
        &env.root.join(user),
        &env.ds,
        &env.matcher,
        user,
        "phone",
        None,
    )
    .unwrap();
    c.set_pdata_policy(policy.clone()).unwrap();
    c
}

/// The matcher's view of an account (curator role).
pub fn account_status(env: &Env, account: &str) -> Value {
    Http::new(&env.matcher)
        .call(
            "GET",
            &format!("/v1/accounts/{account}"),
            Some(&env.admin),
            None,
        )
        .unwrap()
        .json("account", &[200])
        .unwrap()
}

/// Every file of a SQLite database (main, WAL), concatenated.
pub fn db_bytes(db: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            out.extend(b);
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub fn sqlite_count(db: &Path, sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Row;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let n: i64 = sqlx::query(sql).fetch_one(&pool).await.unwrap().get(0);
        pool.close().await;
        n
    })
}

pub fn sqlite_exec(db: &Path, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let n = sqlx::query(sql)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected();
        assert!(n > 0, "{sql}");
        pool.close().await;
    })
}

/// Waits until the matcher's voucher worker has taken every queued voucher
/// (its queue, `psi_pending`, is empty), at most a minute.
pub fn vouchers_processed(env: &Env) {
    let db = env.server_dir.join("bulwark.db");
    let t = std::time::Instant::now();
    while sqlite_count(&db, "SELECT COUNT(*) FROM psi_pending") > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "vouchers still queued"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn postgres_base() -> String {
    std::env::var("BULWARK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database (its URL and name) on the server at
/// `BULWARK_TEST_POSTGRES` (default: the local one), or `None` with a
/// visible message when none answers, unless
/// `BULWARK_TEST_POSTGRES_REQUIRED=1` (CI), which fails instead, as the
/// server's tests do.
pub fn postgres_db(tag: &str) -> Option<(String, String)> {
    let base = postgres_base();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reachable = rt.block_on(async {
        use sqlx::Connection;
        match tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(&base)).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        }
    });
    if let Err(why) = reachable {
        assert!(
            std::env::var("BULWARK_TEST_POSTGRES_REQUIRED").as_deref() != Ok("1"),
            "PostgreSQL required but not reachable at {base}: {why}"
        );
        eprintln!("SKIPPED (PostgreSQL not reachable at {base}: {why}; set BULWARK_TEST_POSTGRES)");
        return None;
    }
    let name = format!("bulwark_chat_{tag}_{}", std::process::id());
    pg_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    pg_admin(&format!("CREATE DATABASE {name}"));
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some((format!("{prefix}/{name}"), name))
}

/// Whether ffmpeg and ffprobe run; without them a test skips with a
/// message, unless `BULWARK_TEST_REQUIRE_ALL=1` (CI), which fails instead.
pub fn have_ffmpeg() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| {
        std::process::Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(
            std::env::var("BULWARK_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "ffmpeg and ffprobe are required"
        );
        eprintln!("SKIPPED: ffmpeg/ffprobe not found (apt-get install ffmpeg)");
    }
    ok
}

/// Runs one statement on the `BULWARK_TEST_POSTGRES` database.
pub fn pg_admin(sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&postgres_base()).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    })
}

/// A count on a PostgreSQL database.
pub fn pg_count(url: &str, sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get::<i64, _>(0)
    })
}

/// A page of the matcher's reviewer console, as reviewer [`REVIEWER`]
/// signed in through the login form sees it.
pub fn console_page(env: &Env, path: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let cookie = |r: &ureq::http::Response<ureq::Body>, name: &str| -> Option<String> {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_string())
    };
    let csrf_of = |html: &str| -> String {
        let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        html[at..at + html[at..].find('"').unwrap()].to_string()
    };
    let mut page = agent
        .get(&format!("{}/console/login", env.matcher))
        .call()
        .unwrap();
    let pre = cookie(&page, bulwark_server::console::accounts::PRE_COOKIE).unwrap();
    let csrf = csrf_of(&page.body_mut().read_to_string().unwrap());
    let form = format!(
        "csrf={}&name={REVIEWER}&password={}&totp=",
        csrf,
        REVIEWER_PASSWORD.replace(' ', "+")
    );
    let r = agent
        .post(&format!("{}/console/login", env.matcher))
        .header("cookie", &pre)
        .content_type("application/x-www-form-urlencoded")
        .send(form)
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "console sign-in");
    let session = cookie(&r, bulwark_server::console::accounts::COOKIE_NAME).unwrap();
    let mut r = agent
        .get(&format!("{}{path}", env.matcher))
        .header("cookie", &session)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.body_mut().read_to_string().unwrap()
}
