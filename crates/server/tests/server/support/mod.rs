//! Test harness: the service in-process on SQLite (a temporary directory) or
//! PostgreSQL (a fresh database per test), driven through its router.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bulwark_server::auth::{self, Role};
use bulwark_server::{Config, Service};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub mod openapi;

pub struct TestApp {
    pub service: Service,
    pub router: Router,
    pub admin: String,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_db: Option<String>,
}

/// The shared data directory: `BULWARK_SHARED`, else the nearest `shared/`
/// (with `conformance/`) above the crate (a worktree sits deeper than `main`).
pub fn shared() -> PathBuf {
    if let Some(p) = std::env::var_os("BULWARK_SHARED") {
        return PathBuf::from(p);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared"))
        .find(|s| s.join("conformance").is_dir())
        .unwrap_or_else(|| here.join("../../../shared"))
}

/// A benign test image from the conformance set.
pub fn image(name: &str) -> Vec<u8> {
    let p = std::env::var("BULWARK_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| shared().join("conformance"))
        .join("pdq/images")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The image decoded, halved in each direction by 2×2 averaging, re-encoded
/// as JPEG at quality 75: a "resized copy".
pub fn resized_copy(bytes: &[u8]) -> Vec<u8> {
    let img = bulwark_pdq::decode(bytes, &bulwark_pdq::Limits::default()).unwrap();
    let c = img.channels as usize;
    let (w, h) = (img.width as usize / 2, img.height as usize / 2);
    let mut px = vec![0u8; w * h * c];
    for y in 0..h {
        for x in 0..w {
            for k in 0..c {
                let at = |yy: usize, xx: usize| {
                    img.pixels[(yy * img.width as usize + xx) * c + k] as u32
                };
                let s = at(2 * y, 2 * x)
                    + at(2 * y, 2 * x + 1)
                    + at(2 * y + 1, 2 * x)
                    + at(2 * y + 1, 2 * x + 1);
                px[(y * w + x) * c + k] = ((s + 2) / 4) as u8;
            }
        }
    }
    let small = bulwark_pdq::Image {
        width: w as u32,
        height: h as u32,
        channels: img.channels,
        pixels: px,
    };
    bulwark_pdq::encode_jpeg(&small, 75).unwrap()
}

static N: AtomicU32 = AtomicU32::new(0);

pub fn postgres_base() -> String {
    std::env::var("BULWARK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, or `None` (with a visible message) when no
/// server answers, unless `BULWARK_TEST_POSTGRES_REQUIRED=1` (CI), which panics.
pub async fn postgres_db() -> Option<(String, String)> {
    use sqlx::Connection;
    let base = postgres_base();
    let conn = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sqlx::PgConnection::connect(&base),
    )
    .await;
    let mut conn = match conn {
        Ok(Ok(c)) => c,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".into(),
                Ok(Ok(_)) => unreachable!(),
            };
            if std::env::var("BULWARK_TEST_POSTGRES_REQUIRED").as_deref() == Ok("1") {
                panic!("PostgreSQL required but not reachable at {base}: {why}");
            }
            eprintln!(
                "SKIPPED (PostgreSQL not reachable at {base}: {why}; set BULWARK_TEST_POSTGRES)"
            );
            return None;
        }
    };
    let name = format!(
        "bulwark_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some((format!("{prefix}/{name}"), name))
}

pub async fn drop_postgres_db(name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_base()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

pub fn config(dir: &std::path::Path, database: Option<String>) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        database,
        max_upload_bytes: 8 << 20,
        workers: 2,
        ..Config::default()
    }
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        TestApp::sqlite_with(|_| {}).await
    }

    /// [`TestApp::sqlite`] with the configuration changed by `f`.
    pub async fn sqlite_with(f: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), None);
        f(&mut c);
        let service = Service::open(c).await.unwrap();
        TestApp::finish(service, dir, None).await
    }

    pub async fn postgres() -> Option<TestApp> {
        let (url, name) = postgres_db().await?;
        let dir = tempfile::tempdir().unwrap();
        let service = Service::open(config(dir.path(), Some(url))).await.unwrap();
        Some(TestApp::finish(service, dir, Some(name)).await)
    }

    async fn finish(service: Service, dir: tempfile::TempDir, pg_db: Option<String>) -> TestApp {
        let path = service
            .admin_key_file
            .clone()
            .expect("first start writes an admin key");
        let admin = std::fs::read_to_string(path).unwrap().trim().to_string();
        let router = service.router();
        let url = service.state.config.database_url();
        TestApp {
            service,
            router,
            admin,
            url,
            dir,
            pg_db,
        }
    }

    /// A second replica on the same database.
    pub async fn replica(&self) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db = Some(self.url.clone());
        let mut c = config(dir.path(), db);
        c.bootstrap_admin = false;
        let service = Service::open(c).await.unwrap();
        let router = service.router();
        TestApp {
            service,
            router,
            admin: self.admin.clone(),
            url: self.url.clone(),
            dir,
            pg_db: None,
        }
    }

    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_db {
            self.service.state.store.pool.close().await;
            drop_postgres_db(name).await;
        }
    }

    pub async fn key(&self, role: Role) -> String {
        auth::create_key(&self.service.state.store, role, "test")
            .await
            .unwrap()
            .key
            .to_string()
    }

    /// Sends a request through the router; a `/v1` response is checked
    /// against openapi.json ([`openapi::check`]).
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value, String) {
        let (method, uri) = (req.method().clone(), req.uri().to_string());
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        openapi::check(
            &method,
            &uri,
            status.as_u16(),
            content_type.as_deref(),
            &bytes,
        );
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, text)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let (s, j, _) = self.send(req).await;
        (s, j)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(&self.admin.clone()), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(&self.admin.clone()), Some(body))
            .await
    }

    /// A multipart upload: `file` plus text fields.
    pub async fn upload(
        &self,
        path: &str,
        key: &str,
        file: &[u8],
        fields: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let boundary = "bulwarkTestBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        let (s, j, _) = self.send(req).await;
        (s, j)
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin))
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }

    /// `POST /v1/banks/{bank}/import?format={format}` (one request) as the
    /// admin; asserts 200 and returns the answer.
    pub async fn import_list(&self, bank: &str, format: &str, body: &str) -> Value {
        let (s, j, t) = self
            .raw(
                Method::POST,
                &format!("/v1/banks/{bank}/import?format={format}"),
                body.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{t}");
        j
    }
}

/// Runs one scenario on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::support::TestApp::sqlite().await;
                    super::$name(&app).await;
                    app.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::support::TestApp::postgres().await else { return };
                    super::$name(&app).await;
                    app.cleanup().await;
                }
            )*
        }
    };
}

/// Sets bank `bank`'s review policy as an admin would (the service's
/// operation behind the console's policy form).
pub async fn set_review_policy(
    store: &bulwark_store::Store,
    bank: &str,
    max_distance: Option<i64>,
) {
    let admin = bulwark_service::review::accounts::Reviewer {
        id: 0,
        name: "test-admin".into(),
        role: bulwark_service::review::accounts::ConsoleRole::Admin,
    };
    bulwark_service::review::policy::set(store, &admin, bank, max_distance)
        .await
        .expect("review policy set");
}
