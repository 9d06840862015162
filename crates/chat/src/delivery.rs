//! The delivery service: authenticated devices, key packages, commit and
//! welcome fan-out, per-device message queues and a ciphertext attachment
//! store, on SQLite or PostgreSQL (its own `chat_*` tables, versioned by
//! `chat_schema` in its own `chat_meta` table; it may share the matcher's
//! database or have its own).
//!
//! It sees ciphertext, metadata (who sends to which group, when) and
//! franking tags — never message content, attachment keys or plain image
//! hashes. For every application message it asks the matcher service to
//! stamp the tag with what its own session authenticated (sender = the
//! calling device's user, the group, the message id, the epoch, the group's
//! users as recipients) and forwards the sender's signed safety vouchers to
//! the matcher. Devices are enrolled at the matcher with the stamper key, so
//! the device's own key signs its vouchers and reports.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

use crate::http::Http;
use crate::wire::{
    Ack, ClaimedKeyPackage, CommitUpload, KeyPackagesUpload, Member, MessageUpload, QueueItem,
    RegisterRequest, RegisterResponse, StampJson,
};

/// Longest user, device or group name, in bytes.
pub const MAX_NAME: usize = 64;
/// Largest attachment ciphertext, in bytes.
pub const MAX_ATTACHMENT: usize = 64 << 20;
/// Most key packages a device may hold at the service.
pub const MAX_KEY_PACKAGES: i64 = 100;
/// Most vouchers in one message.
pub const MAX_VOUCHERS: usize = 10;

/// The delivery service's tables: `{pk}` and `{blob}` take each backend's
/// types; integers are BIGINT on both.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS chat_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chat_devices (
    user_name TEXT NOT NULL,
    device TEXT NOT NULL,
    public_key TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    matcher_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_name, device)
);
CREATE TABLE IF NOT EXISTS chat_key_packages (
    id {pk},
    user_name TEXT NOT NULL,
    device TEXT NOT NULL,
    key_package {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_groups (
    group_id TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_members (
    group_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    device TEXT NOT NULL,
    PRIMARY KEY (group_id, user_name, device)
);
CREATE TABLE IF NOT EXISTS chat_queue (
    seq {pk},
    user_name TEXT NOT NULL,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    group_id TEXT NOT NULL,
    from_user TEXT NOT NULL,
    from_device TEXT NOT NULL,
    mls {blob} NOT NULL,
    message_id TEXT,
    tag TEXT,
    stamp TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_queue_device ON chat_queue (user_name, device, seq);
CREATE TABLE IF NOT EXISTS chat_attachments (
    blob_id TEXT PRIMARY KEY,
    ciphertext {blob} NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
)
";

/// How the delivery service reaches the matcher service.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database: `sqlite://FILE`, `postgres://...`, or a SQLite file path.
    pub database: String,
    /// The matcher service (`bulwark serve`) base URL.
    pub matcher_url: String,
    /// A stamper-role API key of the matcher service.
    pub stamper_key: String,
}

/// The delivery service's database: SQLite or PostgreSQL through sqlx's
/// `Any` driver, queries written once with `?` and numbered for PostgreSQL
/// (as the matcher's `Store` does).
#[derive(Clone)]
pub struct Db {
    /// The connection pool.
    pub pool: AnyPool,
    /// PostgreSQL (else SQLite).
    pub postgres: bool,
}

impl Db {
    /// `sql` with `?` numbered `$1, $2, ...` for PostgreSQL.
    pub fn sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.postgres {
            return std::borrow::Cow::Borrowed(sql);
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
        std::borrow::Cow::Owned(out)
    }
}

#[derive(Clone)]
struct Ds {
    db: Db,
    matcher: Http,
    stamper_key: Arc<String>,
}

/// An error answer: status and message, as JSON `{"error": ...}`.
#[derive(Debug)]
pub struct DsError(StatusCode, String);

impl IntoResponse for DsError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<sqlx::Error> for DsError {
    fn from(e: sqlx::Error) -> DsError {
        tracing::error!("delivery database: {e}");
        DsError(StatusCode::INTERNAL_SERVER_ERROR, "database error".into())
    }
}

fn bad(m: impl Into<String>) -> DsError {
    DsError(StatusCode::BAD_REQUEST, m.into())
}

fn forbidden(m: impl Into<String>) -> DsError {
    DsError(StatusCode::FORBIDDEN, m.into())
}

fn upstream(e: anyhow::Error) -> DsError {
    DsError(StatusCode::BAD_GATEWAY, format!("matcher service: {e:#}"))
}

type DsResult<T> = Result<T, DsError>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn check_name(what: &str, s: &str) -> DsResult<()> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{what} must be 1–{MAX_NAME} characters of A-Z a-z 0-9 - _ . :"
        )))
    }
}

fn b64(s: &str, what: &str) -> DsResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| bad(format!("{what} must be base64")))
}

fn token_hash(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

/// The calling device, from its bearer token.
struct Caller {
    user: String,
    device: String,
    matcher_key: String,
}

async fn caller(ds: &Ds, headers: &HeaderMap) -> DsResult<Option<Caller>> {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Ok(None);
    };
    let row = sqlx::query(
        &ds.db
            .sql("SELECT user_name, device, matcher_key FROM chat_devices WHERE token_sha256 = ?"),
    )
    .bind(token_hash(token.trim()))
    .fetch_optional(&ds.db.pool)
    .await?;
    Ok(row.map(|r| Caller {
        user: r.get("user_name"),
        device: r.get("device"),
        matcher_key: r.get("matcher_key"),
    }))
}

async fn require(ds: &Ds, headers: &HeaderMap) -> DsResult<Caller> {
    caller(ds, headers).await?.ok_or_else(|| {
        DsError(
            StatusCode::UNAUTHORIZED,
            "a registered device's bearer token is required".into(),
        )
    })
}

/// The sqlx URL of a `--database` value: a URL as given, a bare path as a
/// SQLite file (created if missing).
pub fn database_url(database: &str) -> String {
    if database.starts_with("sqlite:")
        || database.starts_with("postgres:")
        || database.starts_with("postgresql:")
    {
        database.to_string()
    } else {
        format!("sqlite://{database}?mode=rwc")
    }
}

/// Opens (creating) the database and migrates it.
pub async fn open_db(database: &str) -> anyhow::Result<Db> {
    sqlx::any::install_default_drivers();
    let url = database_url(database);
    let postgres = !url.starts_with("sqlite:");
    let pool = AnyPoolOptions::new()
        .max_connections(if postgres { 8 } else { 4 })
        .acquire_timeout(std::time::Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if !postgres {
                    for p in ["PRAGMA journal_mode = WAL", "PRAGMA busy_timeout = 10000"] {
                        sqlx::query(p).execute(&mut *conn).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .with_context(|| format!("opening the delivery database {database}"))?;
    let db = Db { pool, postgres };
    let (pk, blob) = if postgres {
        ("BIGSERIAL PRIMARY KEY", "BYTEA")
    } else {
        ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB")
    };
    let schema = SCHEMA_V1.replace("{pk}", pk).replace("{blob}", blob);
    let mut tx = db.pool.begin().await?;
    if postgres {
        // Replicas starting together migrate one at a time.
        sqlx::query("SELECT pg_advisory_xact_lock(7305549)")
            .execute(&mut *tx)
            .await?;
    }
    for stmt in schema.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(stmt).execute(&mut *tx).await?;
    }
    sqlx::query(&db.sql(
        "INSERT INTO chat_meta (key, value) VALUES ('chat_schema', '1') ON CONFLICT (key) DO NOTHING",
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(db)
}

/// The delivery service's routes on an opened database.
pub async fn router(config: &Config) -> anyhow::Result<Router> {
    let db = open_db(&config.database).await?;
    let ds = Ds {
        db,
        matcher: Http::new(&config.matcher_url),
        stamper_key: Arc::new(config.stamper_key.clone()),
    };
    Ok(Router::new()
        .route("/ds/v1/devices", post(register))
        .route("/ds/v1/key_packages", post(upload_key_packages))
        .route("/ds/v1/users/{user}/key_packages", post(claim_key_packages))
        .route("/ds/v1/users/{user}/devices", get(list_devices))
        .route("/ds/v1/groups/{group}/commits", post(commit))
        .route("/ds/v1/groups/{group}/messages", post(message))
        .route("/ds/v1/queue", get(queue))
        .route("/ds/v1/queue/ack", post(ack))
        .route(
            "/ds/v1/attachments/{id}",
            get(get_attachment).put(put_attachment),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ATTACHMENT + 4096))
        .with_state(ds))
}

/// Runs the delivery service on `listen` until the process ends.
pub async fn serve(config: Config, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let app = router(&config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// Runs a blocking matcher call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> DsResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| upstream(anyhow::anyhow!("{e}")))?
        .map_err(upstream)
}

async fn register(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Json(r): Json<RegisterRequest>,
) -> DsResult<(StatusCode, Json<RegisterResponse>)> {
    check_name("user", &r.user)?;
    check_name("device", &r.device)?;
    let mut pk = [0u8; 32];
    hex::decode_to_slice(r.public_key.as_bytes(), &mut pk)
        .map_err(|_| bad("public_key must be 64 hex digits"))?;
    // A further device of an existing user is linked by one of its devices.
    let existing: i64 = sqlx::query(
        &ds.db
            .sql("SELECT COUNT(*) AS n FROM chat_devices WHERE user_name = ?"),
    )
    .bind(&r.user)
    .fetch_one(&ds.db.pool)
    .await?
    .get("n");
    if existing > 0 {
        match caller(&ds, &headers).await? {
            Some(c) if c.user == r.user => {}
            _ => {
                return Err(forbidden(
                    "this user exists: a new device is added with the token of one of its devices",
                ));
            }
        }
    }
    // Enrol the device key at the matcher with the stamper key.
    let (m, key) = (ds.matcher.clone(), Arc::clone(&ds.stamper_key));
    let body = json!({"account": r.user, "device": r.device, "public_key": r.public_key});
    let enrolled = blocking(move || {
        m.post_json("/v1/devices", Some(&key), &body)?
            .json("enrolling the device", &[201])
    })
    .await?;
    let matcher_key = enrolled["key"]
        .as_str()
        .ok_or_else(|| upstream(anyhow::anyhow!("no key in the enrolment answer")))?
        .to_string();
    let mut t = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut t);
    let token = hex::encode(t);
    let inserted = sqlx::query(&ds.db.sql("INSERT INTO chat_devices (user_name, device, public_key, token_sha256, matcher_key, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)"))
    .bind(&r.user)
    .bind(&r.device)
    .bind(&r.public_key)
    .bind(token_hash(&token))
    .bind(&matcher_key)
    .bind(now_ms())
    .execute(&ds.db.pool)
    .await;
    if inserted.is_err() {
        return Err(DsError(
            StatusCode::CONFLICT,
            "this device is already registered".into(),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse { token, matcher_key }),
    ))
}

async fn upload_key_packages(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Json(u): Json<KeyPackagesUpload>,
) -> DsResult<Json<Value>> {
    let c = require(&ds, &headers).await?;
    let held: i64 = sqlx::query(
        &ds.db
            .sql("SELECT COUNT(*) AS n FROM chat_key_packages WHERE user_name = ? AND device = ?"),
    )
    .bind(&c.user)
    .bind(&c.device)
    .fetch_one(&ds.db.pool)
    .await?
    .get("n");
    if held + u.key_packages.len() as i64 > MAX_KEY_PACKAGES {
        return Err(bad(format!(
            "a device holds at most {MAX_KEY_PACKAGES} key packages"
        )));
    }
    for kp in &u.key_packages {
        let bytes = b64(kp, "key_packages")?;
        sqlx::query(&ds.db.sql(
            "INSERT INTO chat_key_packages (user_name, device, key_package) VALUES (?, ?, ?)",
        ))
        .bind(&c.user)
        .bind(&c.device)
        .bind(bytes)
        .execute(&ds.db.pool)
        .await?;
    }
    Ok(Json(json!({"stored": u.key_packages.len()})))
}

/// Claims (removes and returns) one key package of each device of a user
/// (but the caller's own).
async fn claim_key_packages(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> DsResult<Json<Vec<ClaimedKeyPackage>>> {
    let c = require(&ds, &headers).await?;
    let mut tx = ds.db.pool.begin().await?;
    let devices = sqlx::query(
        &ds.db
            .sql("SELECT device FROM chat_devices WHERE user_name = ? ORDER BY device"),
    )
    .bind(&user)
    .fetch_all(&mut *tx)
    .await?;
    if devices.is_empty() {
        return Err(DsError(StatusCode::NOT_FOUND, "no such user".into()));
    }
    let mut out = Vec::new();
    for d in devices {
        let device: String = d.get("device");
        if user == c.user && device == c.device {
            continue;
        }
        let row = sqlx::query(&ds.db.sql("SELECT id, key_package FROM chat_key_packages WHERE user_name = ? AND device = ? ORDER BY id LIMIT 1"))
        .bind(&user)
        .bind(&device)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(DsError(
                StatusCode::CONFLICT,
                format!("device {device} of {user} has no key package left"),
            ));
        };
        let id: i64 = row.get("id");
        let kp: Vec<u8> = row.get("key_package");
        sqlx::query(&ds.db.sql("DELETE FROM chat_key_packages WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        out.push(ClaimedKeyPackage {
            device,
            key_package: base64::engine::general_purpose::STANDARD.encode(kp),
        });
    }
    tx.commit().await?;
    Ok(Json(out))
}

async fn list_devices(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> DsResult<Json<Vec<String>>> {
    require(&ds, &headers).await?;
    let rows = sqlx::query(
        &ds.db
            .sql("SELECT device FROM chat_devices WHERE user_name = ? ORDER BY device"),
    )
    .bind(&user)
    .fetch_all(&ds.db.pool)
    .await?;
    Ok(Json(rows.iter().map(|r| r.get("device")).collect()))
}

async fn members(ds: &Ds, group: &str) -> DsResult<Vec<Member>> {
    let rows = sqlx::query(&ds.db.sql(
        "SELECT user_name, device FROM chat_members WHERE group_id = ? ORDER BY user_name, device",
    ))
    .bind(group)
    .fetch_all(&ds.db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Member {
            user: r.get("user_name"),
            device: r.get("device"),
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
async fn enqueue(
    ds: &Ds,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    to: &Member,
    kind: &str,
    group: &str,
    from: &Caller,
    mls: &[u8],
    message: Option<(&str, &str, &str)>,
) -> DsResult<()> {
    sqlx::query(&ds.db.sql("INSERT INTO chat_queue (user_name, device, kind, group_id, from_user, from_device, mls, message_id, tag, stamp, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
    .bind(&to.user)
    .bind(&to.device)
    .bind(kind)
    .bind(group)
    .bind(&from.user)
    .bind(&from.device)
    .bind(mls)
    .bind(message.map(|m| m.0))
    .bind(message.map(|m| m.1))
    .bind(message.map(|m| m.2))
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A commit: the caller must be a member (or the group is new); the commit
/// goes to every other member before it, the welcome to the devices added.
async fn commit(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Path(group): Path<String>,
    Json(u): Json<CommitUpload>,
) -> DsResult<Json<Value>> {
    let c = require(&ds, &headers).await?;
    check_name("group", &group)?;
    let me = Member {
        user: c.user.clone(),
        device: c.device.clone(),
    };
    let before = members(&ds, &group).await?;
    let exists = sqlx::query(
        &ds.db
            .sql("SELECT epoch FROM chat_groups WHERE group_id = ?"),
    )
    .bind(&group)
    .fetch_optional(&ds.db.pool)
    .await?;
    if exists.is_some() && !before.contains(&me) {
        return Err(forbidden("only a member of the group may commit to it"));
    }
    if exists.is_none() && !u.members.contains(&me) {
        return Err(bad("a new group's members include its creator"));
    }
    for m in &u.members {
        check_name("user", &m.user)?;
        check_name("device", &m.device)?;
    }
    let commit = u.commit.as_deref().map(|c| b64(c, "commit")).transpose()?;
    let welcome = u
        .welcome
        .as_deref()
        .map(|w| b64(w, "welcome"))
        .transpose()?;
    let mut tx = ds.db.pool.begin().await?;
    if exists.is_none() {
        sqlx::query(
            &ds.db
                .sql("INSERT INTO chat_groups (group_id, epoch, created_at) VALUES (?, ?, ?)"),
        )
        .bind(&group)
        .bind(u.epoch as i64)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            &ds.db
                .sql("UPDATE chat_groups SET epoch = ? WHERE group_id = ?"),
        )
        .bind(u.epoch as i64)
        .bind(&group)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(commit) = &commit {
        for m in before.iter().filter(|m| **m != me) {
            enqueue(&ds, &mut tx, m, "commit", &group, &c, commit, None).await?;
        }
    }
    if let Some(w) = &welcome {
        for m in u
            .members
            .iter()
            .filter(|m| !before.contains(m) && **m != me)
        {
            enqueue(&ds, &mut tx, m, "welcome", &group, &c, w, None).await?;
        }
    }
    sqlx::query(&ds.db.sql("DELETE FROM chat_members WHERE group_id = ?"))
        .bind(&group)
        .execute(&mut *tx)
        .await?;
    for m in &u.members {
        sqlx::query(
            &ds.db
                .sql("INSERT INTO chat_members (group_id, user_name, device) VALUES (?, ?, ?)"),
        )
        .bind(&group)
        .bind(&m.user)
        .bind(&m.device)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({"epoch": u.epoch})))
}

/// An application message: forward the vouchers, get the tag stamped, queue
/// it for every other member device.
async fn message(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Path(group): Path<String>,
    Json(u): Json<MessageUpload>,
) -> DsResult<Json<Value>> {
    let c = require(&ds, &headers).await?;
    let me = Member {
        user: c.user.clone(),
        device: c.device.clone(),
    };
    let all = members(&ds, &group).await?;
    if !all.contains(&me) {
        return Err(forbidden("only a member of the group may send to it"));
    }
    check_name("message_id", &u.message_id)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(u.tag.as_bytes(), &mut tag)
        .map_err(|_| bad("tag must be 64 hex digits"))?;
    let mls = b64(&u.mls, "mls")?;
    if u.vouchers.len() > MAX_VOUCHERS {
        return Err(bad(format!("at most {MAX_VOUCHERS} vouchers per message")));
    }
    // Vouchers: forwarded as the device signed them, with its device key.
    for v in u.vouchers.clone() {
        let (m, key) = (ds.matcher.clone(), c.matcher_key.clone());
        let body = json!({"account": c.user, "device": c.device,
            "voucher": v.voucher, "signature": v.signature});
        blocking(move || {
            m.post_json("/v1/vouchers", Some(&key), &body)?
                .ok("forwarding a voucher", &[202])
        })
        .await?;
    }
    let mut recipients: Vec<String> = all.iter().map(|m| m.user.clone()).collect();
    recipients.dedup();
    let (m, key) = (ds.matcher.clone(), Arc::clone(&ds.stamper_key));
    let body = json!({"tag": u.tag, "sender": c.user, "conversation": group,
        "message_id": u.message_id, "epoch": u.epoch, "recipients": recipients});
    let st = blocking(move || {
        m.post_json("/v1/franking/stamp", Some(&key), &body)?
            .json("stamping", &[200])
    })
    .await?;
    let stamp = StampJson {
        key_id: st["key_id"].as_u64().unwrap_or(0) as u32,
        mac: st["mac"].as_str().unwrap_or_default().to_string(),
        signature: st["signature"].as_str().unwrap_or_default().to_string(),
        accepted_at: st["accepted_at"].as_u64().unwrap_or(0),
        stamper: st["stamper"].as_str().unwrap_or_default().to_string(),
        recipients,
        sender: c.user.clone(),
        epoch: u.epoch,
    };
    let stamp_text = serde_json::to_string(&stamp).map_err(|e| bad(e.to_string()))?;
    let mut tx = ds.db.pool.begin().await?;
    for m in all.iter().filter(|m| **m != me) {
        enqueue(
            &ds,
            &mut tx,
            m,
            "message",
            &group,
            &c,
            &mls,
            Some((&u.message_id, &u.tag, &stamp_text)),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({"stamp": stamp})))
}

async fn queue(State(ds): State<Ds>, headers: HeaderMap) -> DsResult<Json<Vec<QueueItem>>> {
    let c = require(&ds, &headers).await?;
    let rows = sqlx::query(&ds.db.sql(
        "SELECT seq, kind, group_id, from_user, from_device, mls, message_id, tag, stamp \
         FROM chat_queue WHERE user_name = ? AND device = ? ORDER BY seq LIMIT 500",
    ))
    .bind(&c.user)
    .bind(&c.device)
    .fetch_all(&ds.db.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let mls: Vec<u8> = r.get("mls");
        let stamp: Option<String> = r.get("stamp");
        out.push(QueueItem {
            seq: r.get("seq"),
            kind: r.get("kind"),
            group: r.get("group_id"),
            from: Member {
                user: r.get("from_user"),
                device: r.get("from_device"),
            },
            mls: base64::engine::general_purpose::STANDARD.encode(mls),
            message_id: r.get("message_id"),
            tag: r.get("tag"),
            stamp: stamp.and_then(|s| serde_json::from_str(&s).ok()),
        });
    }
    Ok(Json(out))
}

async fn ack(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Json(a): Json<Ack>,
) -> DsResult<Json<Value>> {
    let c = require(&ds, &headers).await?;
    let n = sqlx::query(
        &ds.db
            .sql("DELETE FROM chat_queue WHERE user_name = ? AND device = ? AND seq <= ?"),
    )
    .bind(&c.user)
    .bind(&c.device)
    .bind(a.upto)
    .execute(&ds.db.pool)
    .await?
    .rows_affected();
    Ok(Json(json!({"deleted": n})))
}

/// Stores an attachment ciphertext under the blob id the sender chose
/// (random; the franked reference also carries the ciphertext's SHA-256).
async fn put_attachment(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> DsResult<(StatusCode, Json<Value>)> {
    let c = require(&ds, &headers).await?;
    check_name("blob id", &id)?;
    if body.is_empty() || body.len() > MAX_ATTACHMENT {
        return Err(bad(format!("an attachment is 1–{MAX_ATTACHMENT} bytes")));
    }
    let stored = sqlx::query(&ds.db.sql("INSERT INTO chat_attachments (blob_id, ciphertext, uploaded_by, created_at) VALUES (?, ?, ?, ?)"))
    .bind(&id)
    .bind(body.as_ref())
    .bind(format!("{}/{}", c.user, c.device))
    .bind(now_ms())
    .execute(&ds.db.pool)
    .await;
    if stored.is_err() {
        return Err(DsError(StatusCode::CONFLICT, "blob id taken".into()));
    }
    Ok((StatusCode::CREATED, Json(json!({"blob_id": id}))))
}

async fn get_attachment(
    State(ds): State<Ds>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> DsResult<Response> {
    require(&ds, &headers).await?;
    let row = sqlx::query(
        &ds.db
            .sql("SELECT ciphertext FROM chat_attachments WHERE blob_id = ?"),
    )
    .bind(&id)
    .fetch_optional(&ds.db.pool)
    .await?
    .ok_or_else(|| DsError(StatusCode::NOT_FOUND, "no such attachment".into()))?;
    let ct: Vec<u8> = row.get("ciphertext");
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        ct,
    )
        .into_response())
}
