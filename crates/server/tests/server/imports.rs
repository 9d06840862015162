//! Import jobs (`POST /v1/banks/{bank}/imports`, `GET /v1/imports/{id}`) and
//! the bank counters, on SQLite and PostgreSQL: every line is accounted for
//! (added, duplicate or rejected with its number), a job interrupted mid-way
//! and resumed by a restarted service imports each line exactly once, and
//! `GET /v1/banks/{b}` answers counts that agree with a `COUNT(*)` of the
//! tables after inserts, disables and deletes.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bulwark_server::Service;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::Row;
use support::TestApp;

/// `n` random PDQ lines (seeded), as python-threatexchange writes them.
fn random_lines(seed: u64, n: usize) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let bytes: [u8; 32] = rng.r#gen();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("pdq {hex}")
        })
        .collect()
}

async fn make_bank(app: &TestApp, name: &str) {
    let (s, j) = app
        .post("/v1/banks", json!({"name": name, "threshold": 31}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
}

async fn start_job(
    app: &TestApp,
    bank: &str,
    body: String,
    idem: Option<&str>,
) -> (StatusCode, Value) {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/banks/{bank}/imports?format=lines&source=test"))
        .header("authorization", format!("Bearer {}", app.admin));
    if let Some(k) = idem {
        b = b.header("idempotency-key", k);
    }
    let (s, j, _) = app.send(b.body(Body::from(body)).unwrap()).await;
    (s, j)
}

async fn wait_done(app: &TestApp, id: &str) -> Value {
    for _ in 0..6000 {
        let (s, j) = app.get(&format!("/v1/imports/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        match j["status"].as_str() {
            Some("queued") | Some("running") => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => return j,
        }
    }
    panic!("import job {id} did not finish");
}

/// Counts straight from the tables (the independent truth for the counters).
async fn table_counts(app: &TestApp, bank: &str) -> (i64, i64) {
    let s = &app.service.state.store;
    let r = sqlx::query(&s.sql(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN c.enabled = 0 THEN 1 ELSE 0 END), 0) AS off \
         FROM content c JOIN banks b ON b.id = c.bank_id WHERE b.name = ?",
    ))
    .bind(bank)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    (r.try_get("n").unwrap(), r.try_get("off").unwrap())
}

async fn bank_counts(app: &TestApp, bank: &str) -> (i64, i64) {
    let (s, j) = app.get(&format!("/v1/banks/{bank}")).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    (
        j["content_count"].as_i64().unwrap(),
        j["disabled_count"].as_i64().unwrap(),
    )
}

/// `bulwark_import_batches_total` from /metrics: (alone, beside).
async fn import_batches(app: &TestApp) -> (u64, u64) {
    let (s, _, text) = app.raw(Method::GET, "/metrics", Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    let value = |written: &str| -> u64 {
        let key = format!("bulwark_import_batches_total{{written=\"{written}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("no {key} in /metrics:\n{text}"))
            .parse()
            .unwrap()
    };
    (value("alone"), value("beside"))
}

async fn a_job_accounts_for_every_line(app: &TestApp) {
    let before = import_batches(app).await;
    make_bank(app, "big").await;
    let worker = bulwark_server::api::imports::spawn_worker(app.service.state.clone());
    let mut lines = random_lines(1, 5000);
    // In-file duplicates, bad lines, a blank line and a CRLF line.
    lines.insert(10, lines[3].clone());
    lines.insert(20, "pdq nothex".into());
    lines.insert(30, String::new());
    lines.insert(40, "md5 0123".into());
    lines[50].push('\r');
    let expected_unique: HashSet<&str> = lines
        .iter()
        .map(|l| l.trim_end())
        .filter(|l| l.len() == 68)
        .collect();
    let (s, job) = start_job(app, "big", lines.join("\n"), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_done(app, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["lines"], lines.len() as i64);
    assert_eq!(done["added"], expected_unique.len() as i64);
    assert_eq!(done["duplicates"], 1);
    assert_eq!(done["rejected_count"], 2, "{done}");
    let rejected: Vec<i64> = done["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(
        rejected,
        vec![21, 41],
        "1-based line numbers of the bad lines"
    );
    assert_eq!(done["bytes_done"], done["bytes_total"]);
    // /metrics counts the job's three batches (5,005 lines); on SQLite
    // each is written alone.
    let after = import_batches(app).await;
    let (alone, beside) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(alone + beside, 3, "{alone} alone, {beside} beside");
    if app.service.state.store.backend == bulwark_store::Backend::Sqlite {
        assert_eq!(beside, 0);
    }
    // The spool file goes (just after the job is marked done: the worker
    // removes it once the status is committed, so wait for it a little);
    // the content is matchable and counted.
    let spool = app.dir.path().join("imports");
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = std::fs::read_dir(&spool).unwrap().count();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "the spool file was not removed");
    let probe = lines[4999].trim_start_matches("pdq ");
    let (s, m) = app
        .post("/v1/match", json!({"signals": {"pdq": probe}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert!(m.to_string().contains("\"big\""), "{m}");
    assert_eq!(
        bank_counts(app, "big").await,
        (expected_unique.len() as i64, 0)
    );
    assert_eq!(
        bank_counts(app, "big").await,
        table_counts(app, "big").await
    );

    // The same list again: nothing added, all duplicates (idempotent).
    let (_, again) = start_job(app, "big", lines.join("\n"), None).await;
    let again = wait_done(app, again["id"].as_str().unwrap()).await;
    assert_eq!(again["added"], 0);
    assert_eq!(again["duplicates"], expected_unique.len() as i64 + 1);

    // A retried POST with the same key gets the first job, not a second one.
    let (s1, j1) = start_job(app, "big", "pdq 00".into(), Some("retry-1")).await;
    let (s2, j2) = start_job(app, "big", "pdq 00".into(), Some("retry-1")).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(j1["id"], j2["id"]);
    let (_, list) = app.get("/v1/imports?bank=big").await;
    assert_eq!(list["imports"].as_array().unwrap().len(), 3, "{list}");
    worker.abort();
}

async fn jobs_are_cancelled_refused_and_audited(app: &TestApp) {
    make_bank(app, "c").await;
    // No worker: the job stays queued until cancelled.
    let (_, job) = start_job(app, "c", random_lines(2, 10).join("\n"), None).await;
    let id = job["id"].as_str().unwrap();
    let (s, j) = app
        .call(
            Method::DELETE,
            &format!("/v1/imports/{id}"),
            Some(&app.admin.clone()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["status"], "cancelled");
    let (s, j) = app
        .call(
            Method::DELETE,
            &format!("/v1/imports/{id}"),
            Some(&app.admin.clone()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("imports"))
            .unwrap()
            .count(),
        0
    );
    // Unknown job, unknown bank, unknown format, a matcher key.
    let (s, _) = app.get("/v1/imports/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = start_job(app, "nope", String::new(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let matcher = app.key(bulwark_server::auth::Role::Matcher).await;
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/v1/imports/{id}"),
            Some(&matcher),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, audit) = app.get("/v1/audit?bank=c").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"import.create") && actions.contains(&"import.cancel"),
        "{audit}"
    );
}

async fn counters_follow_inserts_disables_and_deletes(app: &TestApp) {
    make_bank(app, "k").await;
    make_bank(app, "other").await;
    let body = random_lines(3, 300).join("\n");
    app.import_list("k", "lines", &body).await;
    let (_, list) = app.get("/v1/banks/k/content?limit=10").await;
    let ids: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 10, "{list}");
    for id in &ids[..4] {
        let (s, j) = app
            .call(
                Method::PATCH,
                &format!("/v1/banks/k/content/{id}"),
                Some(&app.admin.clone()),
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{j}");
    }
    // Re-enable one, delete one disabled and one enabled.
    app.call(
        Method::PATCH,
        &format!("/v1/banks/k/content/{}", ids[0]),
        Some(&app.admin.clone()),
        Some(json!({"enabled": true})),
    )
    .await;
    for id in [ids[1], ids[5]] {
        let (s, j) = app
            .call(
                Method::DELETE,
                &format!("/v1/banks/k/content/{id}"),
                Some(&app.admin.clone()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{j}");
    }
    assert_eq!(bank_counts(app, "k").await, (298, 2));
    assert_eq!(bank_counts(app, "k").await, table_counts(app, "k").await);
    assert_eq!(bank_counts(app, "other").await, (0, 0));
}

/// Interrupts a job after its first committed batch (the worker task is
/// aborted, as a crash would stop it), then opens a new service on the same
/// data directory and database: the job resumes and every line is imported
/// exactly once.
async fn interrupted_job_resumes_after_restart(app: &TestApp) {
    make_bank(app, "r").await;
    let n = 120_000;
    let lines = random_lines(4, n);
    let (_, job) = start_job(app, "r", lines.join("\n"), None).await;
    let id = job["id"].as_str().unwrap().to_string();
    let worker = bulwark_server::api::imports::spawn_worker(app.service.state.clone());
    let mut seen = Value::Null;
    for _ in 0..20_000 {
        let (_, j) = app.get(&format!("/v1/imports/{id}")).await;
        if j["lines"].as_i64().unwrap() > 0 {
            seen = j;
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    worker.abort();
    let _ = worker.await;
    assert_eq!(seen["status"], "running", "interrupted mid-way: {seen}");
    let (_, at_crash) = app.get(&format!("/v1/imports/{id}")).await;
    assert!(at_crash["lines"].as_i64().unwrap() < n as i64, "{at_crash}");

    // Restart: a new service on the same data directory and database.
    let mut c = support::config(app.dir.path(), app.service.state.config.database.clone());
    c.bootstrap_admin = false;
    let second = Service::open(c).await.unwrap();
    let worker = bulwark_server::api::imports::spawn_worker(second.state.clone());
    let done = wait_done(app, &id).await;
    worker.abort();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["lines"], n as i64);
    assert_eq!(done["added"], n as i64, "no line lost: {done}");
    assert_eq!(done["duplicates"], 0, "no line imported twice: {done}");
    assert_eq!(table_counts(app, "r").await, (n as i64, 0));
    assert_eq!(bank_counts(app, "r").await, (n as i64, 0));
}

async fn oversized_and_broken_uploads_leave_nothing(app: &TestApp) {
    make_bank(app, "t").await;
    // A body that fails half-way (the client went away): 400, no job, no file.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from(random_lines(5, 100).join("\n"))),
        Err(std::io::Error::other("connection reset")),
    ];
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/banks/t/imports")
        .header("authorization", format!("Bearer {}", app.admin))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let (s, j, _) = app.send(req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    let (_, list) = app.get("/v1/imports?bank=t").await;
    assert_eq!(list["imports"].as_array().unwrap().len(), 0);
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("imports"))
            .unwrap()
            .count(),
        0
    );
}

/// A bank deleted while its job waits (and one made again under the same
/// name) gets nothing from the job: the job fails saying why, its spool
/// file goes, and the new bank stays empty.
async fn a_bank_deleted_during_its_job_fails_the_job(app: &TestApp) {
    make_bank(app, "gone").await;
    let (s, job) = start_job(app, "gone", random_lines(6, 3000).join("\n"), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let (s, j) = app
        .call(Method::DELETE, "/v1/banks/gone", Some(&app.admin), None)
        .await;
    assert!(s.is_success(), "{s} {j}");
    make_bank(app, "gone").await;
    let worker = bulwark_server::api::imports::spawn_worker(app.service.state.clone());
    let done = wait_done(app, &id).await;
    worker.abort();
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap_or_default()
            .contains("deleted during the import"),
        "{done}"
    );
    assert_eq!(table_counts(app, "gone").await, (0, 0));
    assert_eq!(bank_counts(app, "gone").await, (0, 0));
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("imports"))
            .unwrap()
            .count(),
        0,
        "the spool file was kept"
    );
}

/// Bank writes made while an import commits batch after batch succeed: on
/// SQLite a transaction that read before another connection's commit and
/// then wrote failed at once with "database is locked" (a 500 on bank
/// delete, seen in CI) until write transactions took the lock up front.
async fn writes_during_an_import_do_not_fail(app: &TestApp) {
    make_bank(app, "busy").await;
    let (_, job) = start_job(app, "busy", random_lines(8, 60_000).join("\n"), None).await;
    let id = job["id"].as_str().unwrap().to_string();
    let worker = bulwark_server::api::imports::spawn_worker(app.service.state.clone());
    let mut rounds = 0;
    loop {
        let (_, j) = app.get(&format!("/v1/imports/{id}")).await;
        if j["status"] != "queued" && j["status"] != "running" {
            break;
        }
        let name = format!("side{rounds}");
        make_bank(app, &name).await;
        let (s, j) = app
            .post(
                &format!("/v1/banks/{name}/content"),
                json!({"signals": {"pdq": random_lines(100 + rounds, 1)[0][4..]}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "round {rounds}: {j}");
        let (s, j) = app
            .call(
                Method::DELETE,
                &format!("/v1/banks/{name}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "round {rounds}: {j}");
        rounds += 1;
    }
    worker.abort();
    let done = wait_done(app, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["added"], 60_000);
    assert!(
        rounds > 0,
        "the import ended before any write ran beside it"
    );
}

/// An import indexes its new rows from memory after its commit
/// (`Catalog::apply_fresh`), without holding the apply lock across the
/// commit. A write to those rows applied in between (here a delete) must
/// win: then the rows are re-read from the store, the truth. The control
/// shows what indexing from memory alone would leave (a deleted item that
/// still matches). A write to other content applied in between leaves the
/// rows to memory; a load in between makes them re-read.
async fn a_write_applied_before_an_imports_index_update_wins(app: &TestApp) {
    make_bank(app, "ov").await;
    let hex = random_lines(21, 1)[0][4..].to_string();
    let (s, j) = app
        .post("/v1/banks/ov/content", json!({"signals": {"pdq": hex}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let id = j["id"].as_i64().unwrap();
    let state = &app.service.state;
    let cat = &state.catalog;
    let bank = bulwark_server::db::bank_by_name(&state.store, "ov")
        .await
        .unwrap()
        .unwrap();
    let h: bulwark_pdq::PdqHash = hex.parse().unwrap();
    let hits = || {
        cat.search(&h, None)
            .iter()
            .filter(|x| x.content_id == id)
            .count()
    };
    assert_eq!(hits(), 1);
    // The importer's mark, taken before its commit; then a delete is
    // committed and applied before the importer takes the apply lock.
    let mark = cat.apply_mark();
    let (s, j) = app
        .call(
            Method::DELETE,
            &format!("/v1/banks/ov/content/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(hits(), 0);
    let change = [(1, Some(bank.id), Some(id))];
    let fresh = [(bank.id, id, h)];
    cat.apply_fresh(&state.store, mark, &change, &fresh)
        .await
        .unwrap();
    assert_eq!(hits(), 0, "the delete applied in between wins");
    // Control: with nothing applied since the mark, the row is indexed
    // from memory as given.
    cat.apply_fresh(&state.store, cat.apply_mark(), &change, &fresh)
        .await
        .unwrap();
    assert_eq!(hits(), 1, "indexed from memory");
    cat.apply(&state.store, &change).await.unwrap();
    assert_eq!(hits(), 0, "re-read from the store");
    // A write to other content applied in between (a single write beside
    // an import) does not touch these rows: still from memory, so single
    // writes need not wait for an import's commit.
    let mark = cat.apply_mark();
    let other = random_lines(22, 1)[0][4..].to_string();
    let (s, j) = app
        .post("/v1/banks/ov/content", json!({"signals": {"pdq": other}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_ne!(cat.apply_mark(), mark, "the other write was applied");
    cat.apply_fresh(&state.store, mark, &change, &fresh)
        .await
        .unwrap();
    assert_eq!(hits(), 1, "an unrelated apply leaves the rows to memory");
    cat.apply(&state.store, &change).await.unwrap();
    assert_eq!(hits(), 0);
    // A load in between read everything: re-read.
    let mark = cat.apply_mark();
    cat.load_full(&state.store).await.unwrap();
    cat.apply_fresh(&state.store, mark, &change, &fresh)
        .await
        .unwrap();
    assert_eq!(hits(), 0, "a load since the mark: re-read");
}

/// A one-request import of 5,000 lines, three batches of up to 2,000
/// records (`lists::BATCH`), whose last 2,000 lines repeat lines of the
/// first and the second batch: each batch's marks tell the de-dup map of its commit (SQLite),
/// and a later batch still finds every earlier one's rows. Counted against
/// a set of the lines; then the same list again is all duplicates.
async fn a_one_request_import_counts_repeats_across_its_batches(app: &TestApp) {
    make_bank(app, "rep").await;
    let distinct = random_lines(11, 3000);
    let mut lines = distinct.clone();
    // Lines 3,001-4,000 repeat batch 1's first 1,000; lines 4,001-5,000
    // (batch 3) repeat batch 2's lines 2,001-3,000.
    lines.extend(distinct[..1000].iter().cloned());
    lines.extend(distinct[2000..3000].iter().cloned());
    assert_eq!(lines.len(), 5000);
    let body = lines.join("\n");
    let j = app.import_list("rep", "lines", &body).await;
    assert_eq!(
        (j["added"].as_u64(), j["duplicates"].as_u64()),
        (Some(3000), Some(2000)),
        "{j}"
    );
    let j = app.import_list("rep", "lines", &body).await;
    assert_eq!(
        (j["added"].as_u64(), j["duplicates"].as_u64()),
        (Some(0), Some(5000)),
        "{j}"
    );
    let (_, bank) = app.get("/v1/banks/rep").await;
    assert_eq!(bank["content_count"].as_u64(), Some(3000), "{bank}");
}

both_databases!(
    a_one_request_import_counts_repeats_across_its_batches,
    a_write_applied_before_an_imports_index_update_wins,
    a_job_accounts_for_every_line,
    writes_during_an_import_do_not_fail,
    a_bank_deleted_during_its_job_fails_the_job,
    jobs_are_cancelled_refused_and_audited,
    counters_follow_inserts_disables_and_deletes,
    interrupted_job_resumes_after_restart,
    oversized_and_broken_uploads_leave_nothing,
);

/// Over `max_import_bytes`: 413 `too_large`, nothing kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_over_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = support::config(dir.path(), None);
    c.max_import_bytes = 1000;
    let service = Service::open(c).await.unwrap();
    let admin = std::fs::read_to_string(service.admin_key_file.clone().unwrap()).unwrap();
    let app = service.router();
    let send = |req: Request<Body>| {
        let app = app.clone();
        async move {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let r = app.oneshot(req).await.unwrap();
            let s = r.status();
            let b = r.into_body().collect().await.unwrap().to_bytes();
            (
                s,
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let auth = format!("Bearer {}", admin.trim());
    let (s, _) = send(
        Request::post("/v1/banks")
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(Body::from(json!({"name": "small"}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, j) = send(
        Request::post("/v1/banks/small/imports")
            .header("authorization", &auth)
            .body(Body::from(random_lines(6, 100).join("\n")))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{j}");
    assert_eq!(j["error"]["code"], "too_large");
    assert_eq!(
        std::fs::read_dir(dir.path().join("imports"))
            .unwrap()
            .count(),
        0
    );
}

/// `import_share_after_write_seconds` reaches the store the service opens:
/// by default a single write makes `single_writes_recent` true (an import job
/// on PostgreSQL then writes one batch at a time); with 0 it never is. A
/// negative value is refused with the key's name.
#[tokio::test]
async fn import_share_after_write_is_a_setting() {
    for (file, recent) in [
        ("", true),
        ("import_share_after_write_seconds = 0\n", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = support::config(dir.path(), None);
        let f: bulwark_server::FileConfig = toml::from_str(file).unwrap();
        f.apply(&mut c).unwrap();
        let service = Service::open(c).await.unwrap();
        let store = &service.state.store;
        store.begin().await.unwrap().rollback().await.unwrap();
        assert_eq!(store.single_writes_recent(), recent, "{file:?}");
    }
    let bad: bulwark_server::FileConfig =
        toml::from_str("import_share_after_write_seconds = -1\n").unwrap();
    let err = bad
        .apply(&mut bulwark_server::Config::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("import_share_after_write_seconds"),
        "{err}"
    );
}
