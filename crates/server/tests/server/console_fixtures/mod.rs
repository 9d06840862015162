//! Console test harness: the service with chosen console settings, reviewer
//! sessions driven through the real login form, and queue items seeded into
//! the tables the service's own paths write (reports, flagged accounts).

#![allow(dead_code, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bulwark_server::console::ConsoleConfig;
use bulwark_server::console::accounts::{self, ConsoleRole};
use bulwark_server::{Config, Service};
use http_body_util::BodyExt;
use md5::Digest;
use serde_json::{Value, json};
use sqlx::Row;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery staple";
pub const BRIDGE: &str = "reg-test-input/dih/bridge-1-original.jpg";
pub const PEN: &str = "reg-test-input/pen-and-coaster.png";

pub fn image(name: &str) -> Vec<u8> {
    // Beside the repository (CI), or the machine's shared directory (worktrees).
    let roots = [
        std::env::var("BULWARK_CONFORMANCE_DIR")
            .map(std::path::PathBuf::from)
            .ok(),
        Some(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/conformance"),
        ),
        Some(std::path::PathBuf::from("/work/shared/conformance")),
    ];
    let p = roots
        .iter()
        .flatten()
        .map(|r| r.join("pdq/images").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| std::path::PathBuf::from(name));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A benign conformance video (vPDQ test data).
pub fn video(name: &str) -> Vec<u8> {
    let p = crate::support::shared()
        .join("conformance/vpdq/videos")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// True when ffmpeg/ffprobe run; otherwise skips with a message, or fails
/// under `BULWARK_TEST_REQUIRE_ALL=1` (CI).
pub fn ffmpeg_available() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| {
        std::process::Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(
            std::env::var("BULWARK_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "ffmpeg is required (BULWARK_TEST_REQUIRE_ALL=1) but not on PATH (apt-get install ffmpeg)"
        );
        eprintln!("SKIPPED (ffmpeg not on PATH)");
    }
    ok
}

pub struct Console {
    pub service: Service,
    pub router: Router,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pg_db: Option<String>,
}

pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// The value of `name="csrf" value="..."` in a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn cookie_pair(set: &str) -> String {
    set.split(';').next().unwrap().to_string()
}

impl Console {
    /// On SQLite, or on PostgreSQL (`None` when it is not there).
    pub async fn open(postgres: bool, tweak: impl FnOnce(&mut ConsoleConfig)) -> Option<Console> {
        let dir = tempfile::tempdir().unwrap();
        let (db, pg_db) = if postgres {
            let (url, name) = crate::support::postgres_db().await?;
            (Some(url), Some(name))
        } else {
            (None, None)
        };
        let mut cfg: Config = crate::support::config(dir.path(), db);
        tweak(&mut cfg.console);
        let service = Service::open(cfg).await.unwrap();
        let admin = std::fs::read_to_string(service.admin_key_file.clone().unwrap())
            .unwrap()
            .trim()
            .to_string();
        let router = service.router();
        Some(Console {
            service,
            router,
            admin,
            dir,
            pg_db,
        })
    }

    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_db {
            self.service.state.store.pool.close().await;
            crate::support::drop_postgres_db(name).await;
        }
    }

    pub async fn add(&self, name: &str, role: ConsoleRole, totp: bool) -> Option<String> {
        let st = &self.service.state;
        accounts::add_reviewer(&st.store, &st.kek, name, role, PASSWORD, totp)
            .await
            .unwrap()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        form: Option<&[(&str, &str)]>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        let req = match form {
            Some(f) => {
                let body: String = f
                    .iter()
                    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                b.header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap()
            }
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Signs in through the form; the response to the POST.
    pub async fn try_login(&self, name: &str, password: &str, totp: &str) -> Resp {
        let page = self
            .request(Method::GET, "/console/login", None, None)
            .await;
        assert_eq!(page.status, StatusCode::OK);
        let pre = cookie_pair(&set_cookie(&page.headers, accounts::PRE_COOKIE).unwrap());
        let csrf = csrf_of(&page.text());
        self.request(
            Method::POST,
            "/console/login",
            Some(&pre),
            Some(&[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("totp", totp),
            ]),
        )
        .await
    }

    pub async fn login(&self, name: &str) -> Session {
        let r = self.try_login(name, PASSWORD, "").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        let cookie = cookie_pair(&set_cookie(&r.headers, accounts::COOKIE_NAME).unwrap());
        let page = self
            .get(
                &Session {
                    cookie: cookie.clone(),
                    csrf: String::new(),
                },
                "/console/queue",
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        Session {
            csrf: csrf_of(&page.text()),
            cookie,
        }
    }

    pub async fn get(&self, s: &Session, path: &str) -> Resp {
        self.request(Method::GET, path, Some(&s.cookie), None).await
    }

    pub async fn post(&self, s: &Session, path: &str, form: &[(&str, &str)]) -> Resp {
        let mut f: Vec<(&str, &str)> = vec![("csrf", &s.csrf)];
        f.extend_from_slice(form);
        self.request(Method::POST, path, Some(&s.cookie), Some(&f))
            .await
    }

    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin));
        let req = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                b.body(Body::from(v.to_string())).unwrap()
            }
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let s = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A multipart upload of `file` with the admin API key.
    pub async fn upload(&self, path: &str, file: &[u8]) -> (StatusCode, Value) {
        let boundary = "b0undary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let s = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn bank(&self, name: &str) {
        let (s, j) = self
            .api(Method::POST, "/v1/banks", Some(json!({"name": name})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
    }

    /// A verified report from `sender`, reported by `reporter`, whose one
    /// attachment is `file` (as the report path stores it: opened plaintext,
    /// hashes and matches).
    pub async fn seed_report(&self, sender: &str, reporter: &str, file: &[u8], bank: &str) -> i64 {
        let h = bulwark_pdq::hash_bytes(
            file,
            bulwark_pdq::Mode::default(),
            &bulwark_pdq::Limits::default(),
        )
        .unwrap();
        let hashes = json!({"kind": "photo", "pdq": h.hash.to_string(), "quality": h.quality,
            "md5": hex::encode(md5::Md5::digest(file)), "sha256": hex::encode(sha2::Sha256::digest(file))});
        self.seed_report_file(sender, reporter, file, "image/jpeg", hashes, bank)
            .await
    }

    /// [`Console::seed_report`] of any file, with the hashes the report path stored.
    pub async fn seed_report_file(
        &self,
        sender: &str,
        reporter: &str,
        file: &[u8],
        media_type: &str,
        hashes: Value,
        bank: &str,
    ) -> i64 {
        let st = &self.service.state.store;
        let now = bulwark_server::db::now_ms();
        let id: i64 = sqlx::query(&st.sql(
            "INSERT INTO reports (received_at, submitted_by, status, reason, text, message_key) \
             VALUES (?, 'key1', 'queued', 'csam', 'reported from the app', ?) RETURNING id",
        ))
        .bind(now)
        .bind(bulwark_server::db::random_hex())
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("id")
        .unwrap();
        let content = bulwark_franking::content::Content::text("see this").to_bytes();
        sqlx::query(&st.sql(
            "INSERT INTO report_messages (report_id, idx, sender, conversation, accepted_at, content, \
             key_id, verified, message_id, epoch, stamper) VALUES (?, 0, ?, 'group-1', ?, ?, 1, 1, 'm-1', 5, 'stamper-1')",
        ))
        .bind(id)
        .bind(sender)
        .bind(now)
        .bind(content)
        .execute(&st.pool)
        .await
        .unwrap();
        sqlx::query(&st.sql(
            "INSERT INTO report_reporters (report_id, account, device, signature, submitted_by, reason, at) \
             VALUES (?, ?, 'phone', 'sig', 'key1', 'csam', ?)",
        ))
        .bind(id)
        .bind(reporter)
        .bind(now)
        .execute(&st.pool)
        .await
        .unwrap();
        let matches = json!([{"bank": bank, "content_id": 1, "signal_type": "pdq", "distance": 4}]);
        sqlx::query(&st.sql(
            "INSERT INTO report_attachments (report_id, msg_idx, idx, blob_id, media_type, size, \
             ciphertext_sha256, status, hashes, matches, plaintext) VALUES (?, 0, 0, 'blob-1', ?, ?, 'x', 'opened', ?, ?, ?)",
        ))
        .bind(id)
        .bind(media_type)
        .bind(file.len() as i64)
        .bind(hashes.to_string())
        .bind(matches.to_string())
        .bind(file.to_vec())
        .execute(&st.pool)
        .await
        .unwrap();
        id
    }

    /// A flagged account with one opened voucher (a 32×32 grey derivative) of banked content.
    pub async fn seed_account(&self, account: &str, bank: &str) {
        let (s, c) = self
            .api(Method::POST, &format!("/v1/banks/{bank}/content"), Some(json!({"signals": {"pdq": "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"}})))
            .await;
        assert!(s.is_success(), "{c}");
        let cid = c["id"].as_i64().unwrap();
        let st = &self.service.state.store;
        let now = bulwark_server::db::now_ms();
        sqlx::query(&st.sql(
            "INSERT INTO psi_accounts (account, state, flagged, updated_at, flagged_at) VALUES (?, ?, 1, ?, ?)",
        ))
        .bind(account)
        .bind(vec![0u8; 4])
        .bind(now)
        .bind(now)
        .execute(&st.pool)
        .await
        .unwrap();
        let derivative: Vec<u8> = (0..1024u32).map(|i| ((i % 32) * 8) as u8).collect();
        sqlx::query(&st.sql(
            "INSERT INTO psi_opened (account, content_id, distance, hash, derivative, opened_at, release_id) \
             VALUES (?, ?, 3, ?, ?, ?, 1)",
        ))
        .bind(account)
        .bind(cid)
        .bind("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b23")
        .bind(derivative)
        .bind(now)
        .execute(&st.pool)
        .await
        .unwrap();
    }

    pub async fn audit_actions(&self) -> Vec<(String, String, String)> {
        let st = &self.service.state.store;
        sqlx::query("SELECT actor, action, detail FROM audit ORDER BY id")
            .fetch_all(&st.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get("actor").unwrap(),
                    r.try_get("action").unwrap(),
                    r.try_get("detail").unwrap(),
                )
            })
            .collect()
    }
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}
