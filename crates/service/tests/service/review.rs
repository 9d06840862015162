//! The reviewer console's operations without HTTP (`bulwark_service::review`)
//! on a real store (SQLite; PostgreSQL too when `BULWARK_TEST_POSTGRES` is
//! set): a delivered webhook's signature verifies with an independent
//! HMAC-SHA256 and not with another key; a webhook that keeps failing is
//! retried with doubling waits and given up after the maximum number of
//! attempts; a report's evidence holds exactly its own attachments and
//! senders; a confirmed item's CyberTipline report parses as XML with the
//! elements the Reporting API wants, in its order, and submits its kept
//! files; an escalation moves an item to the leads' queue and a
//! confirmation closes it, each audited and sent as a signed webhook. The pages over these are tested in crates/server/tests/server/
//! console.rs.
//!
//! Outgoing requests go through a recording [`Http`] that answers what the
//! test says. All data is synthetic: fictitious accounts and benign bytes.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_service::Kind;
use bulwark_service::review::cybertip::{self, Reporter};
use bulwark_service::review::webhooks::{self, WebhookConfig};
use bulwark_service::review::{Http, decisions, evidence};
use bulwark_store::Store;
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::support::TestStore;

/// Sign-in, sessions, the reveal budget and a decision's checks and effects.
#[path = "review_console.rs"]
mod console;

/// Recorded matches, media as shown and an item page's reads.
#[path = "review_media.rs"]
mod media;

/// One request an [`Http`] was asked to send.
#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// How a [`Recorder`] answers request `n` (from 0) to a URL.
type Answer = fn(usize, &str) -> anyhow::Result<(u16, Vec<u8>)>;

/// Answers each request with `answer(n, url)` (`n` counts from 0) and keeps
/// what was sent.
struct Recorder {
    sent: Mutex<Vec<Sent>>,
    answer: Answer,
}

impl Recorder {
    fn new(answer: Answer) -> Arc<Recorder> {
        Arc::new(Recorder {
            sent: Mutex::new(Vec::new()),
            answer,
        })
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

impl Http for Recorder {
    fn request<'a>(
        &'a self,
        _method: &'a str,
        url: &'a str,
        headers: &'a [(&'a str, String)],
        body: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<(u16, Vec<u8>)>> {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(Sent {
                at: Instant::now(),
                url: url.to_string(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                body: body.clone(),
            });
            sent.len() - 1
        };
        let r = (self.answer)(n, url);
        Box::pin(async move { r })
    }
}

fn header<'a>(s: &'a Sent, name: &str) -> &'a str {
    s.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// Whether `v1=HEX` is the HMAC-SHA256 under `key` of `ts.body`, computed
/// here with the hmac crate (and its constant-time check).
fn verifies(key: &[u8], ts: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

async fn webhook_row(s: &Store, id: i64) -> (String, i64, Option<i64>) {
    let r = sqlx::query(
        &s.sql("SELECT status, attempts, last_status FROM console_webhooks WHERE id = ?"),
    )
    .bind(id)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    (
        r.try_get("status").unwrap(),
        r.try_get("attempts").unwrap(),
        r.try_get("last_status").unwrap(),
    )
}

/// Waits (at most 10 s) until webhook `id` is no longer pending.
async fn settled(s: &Store, id: i64) -> (String, i64, Option<i64>) {
    let start = Instant::now();
    loop {
        let row = webhook_row(s, id).await;
        if row.0 != "pending" || start.elapsed() > Duration::from_secs(10) {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn webhooks_are_signed_retried_and_logged(s: &Store) {
    // Delivered on the third attempt: two 500s first.
    let http = Recorder::new(|n, _| Ok((if n < 2 { 500 } else { 204 }, Vec::new())));
    let cfg = WebhookConfig {
        url: Some("http://hooks.example.invalid/hook".into()),
        secret: String::from("whsec-review-test").into(),
        max_attempts: 5,
        backoff_ms: 5,
    };
    let event = json!({"event": "decision", "decision_id": 7, "item": "report:1"});
    let id = webhooks::enqueue(s, &cfg, http.clone(), 7, &event)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settled(s, id).await, ("delivered".into(), 3, Some(204)));
    let sent = http.sent();
    assert_eq!(sent.len(), 3);
    for a in &sent {
        assert_eq!(a.url, "http://hooks.example.invalid/hook");
        assert_eq!(a.body, event.to_string().into_bytes());
        assert_eq!(header(a, "content-type"), "application/json");
        assert_eq!(header(a, "bulwark-delivery"), id.to_string());
        let (ts, sig) = (
            header(a, "bulwark-timestamp"),
            header(a, "bulwark-signature"),
        );
        assert!(verifies(b"whsec-review-test", ts, &a.body, sig), "{sig}");
        assert!(!verifies(b"whsec-other-key", ts, &a.body, sig));
        // Over the exact body and timestamp only.
        assert!(!verifies(b"whsec-review-test", ts, b"{}", sig));
        let other_ts = (ts.parse::<i64>().unwrap() + 1).to_string();
        assert!(!verifies(b"whsec-review-test", &other_ts, &a.body, sig));
    }
    // The delivery log has it, with its attempts.
    let log = webhooks::delivery_log(s).await.unwrap();
    let row = log.iter().find(|r| r.id == id).unwrap();
    assert_eq!(
        (row.decision_id, row.status.as_str(), row.attempts),
        (7, "delivered", 3)
    );

    // No URL configured: nothing is queued or sent.
    let quiet = Recorder::new(|_, _| Ok((204, Vec::new())));
    let none = WebhookConfig {
        url: None,
        ..cfg.clone()
    };
    assert_eq!(
        webhooks::enqueue(s, &none, quiet.clone(), 8, &event)
            .await
            .unwrap(),
        None
    );
    assert!(quiet.sent().is_empty());

    // Never succeeds (500, then a refused connection): retried after 40,
    // 80, 160 ms, then given up after the fourth attempt.
    let failing = Recorder::new(|n, _| {
        if n % 2 == 0 {
            Ok((500, b"no".to_vec()))
        } else {
            Err(anyhow::anyhow!("connection refused"))
        }
    });
    let cfg = WebhookConfig {
        max_attempts: 4,
        backoff_ms: 40,
        ..cfg
    };
    let id = bulwark_store::console::actions::insert_webhook(s, 9, "http://down.invalid/", "{}")
        .await
        .unwrap();
    let start = Instant::now();
    webhooks::deliver(s.clone(), cfg.clone(), failing.clone(), id).await;
    assert!(start.elapsed() >= Duration::from_millis(40 + 80 + 160));
    let sent = failing.sent();
    assert_eq!(sent.len(), 4, "given up after max_attempts");
    for (i, want) in [40u64, 80, 160].into_iter().enumerate() {
        let gap = sent[i + 1].at - sent[i].at;
        assert!(
            gap >= Duration::from_millis(want),
            "wait {i}: {gap:?} < {want} ms"
        );
    }
    let (status, attempts, _) = webhook_row(s, id).await;
    assert_eq!((status.as_str(), attempts), ("failed", 4));
    let r = sqlx::query(&s.sql("SELECT last_error FROM console_webhooks WHERE id = ?"))
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let last_error: Option<String> = r.try_get("last_error").unwrap();
    assert_eq!(last_error.as_deref(), Some("connection refused"));
    // A given-up webhook is not resumed after a restart; a pending one is.
    let pending = bulwark_store::console::actions::insert_webhook(s, 10, "http://x.invalid/", "{}")
        .await
        .unwrap();
    let later = Recorder::new(|_, _| Ok((200, Vec::new())));
    assert_eq!(
        webhooks::resume_pending(s, &cfg, later.clone())
            .await
            .unwrap(),
        1
    );
    assert_eq!(settled(s, pending).await.0, "delivered");
    assert_eq!(later.sent().len(), 1);
    assert_eq!(
        header(&later.sent()[0], "bulwark-delivery"),
        pending.to_string()
    );
}

/// A verified report: messages from `senders` (in order), and attachments
/// `(msg_idx, idx, plaintext)` (`None`: hashes only, bytes not kept).
async fn seed_report(s: &Store, senders: &[&str], files: &[(i64, i64, Option<&[u8]>)]) -> i64 {
    let now = bulwark_store::now_ms();
    let id: i64 = sqlx::query(&s.sql(
        "INSERT INTO reports (received_at, submitted_by, status, reason, text, message_key) \
         VALUES (?, 'key1', 'queued', 'spam', 'reported from the app', ?) RETURNING id",
    ))
    .bind(now)
    .bind(bulwark_store::random_hex())
    .fetch_one(&s.pool)
    .await
    .unwrap()
    .try_get("id")
    .unwrap();
    for (idx, who) in senders.iter().enumerate() {
        sqlx::query(&s.sql(
            "INSERT INTO report_messages (report_id, idx, sender, conversation, accepted_at, content, \
             key_id, verified, message_id, epoch, stamper) VALUES (?, ?, ?, 'group-1', ?, ?, 1, 1, ?, 5, 'stamper-1')",
        ))
        .bind(id)
        .bind(idx as i64)
        .bind(*who)
        .bind(now)
        .bind(bulwark_franking::content::Content::text("hello there").to_bytes())
        .bind(format!("m-{id}-{idx}"))
        .execute(&s.pool)
        .await
        .unwrap();
    }
    for (mi, ai, bytes) in files {
        let hashes = json!({"kind": "photo", "md5": "00".repeat(16), "sha256": "11".repeat(32),
            "pdq": format!("{:064x}", mi * 10 + ai)});
        sqlx::query(&s.sql(
            "INSERT INTO report_attachments (report_id, msg_idx, idx, blob_id, media_type, size, \
             ciphertext_sha256, status, hashes, matches, plaintext) VALUES (?, ?, ?, ?, 'image/png', ?, 'x', 'opened', ?, '[]', ?)",
        ))
        .bind(id)
        .bind(mi)
        .bind(ai)
        .bind(format!("blob-{id}-{mi}-{ai}"))
        .bind(bytes.map_or(0, |b| b.len() as i64))
        .bind(hashes.to_string())
        .bind(bytes.map(<[u8]>::to_vec))
        .execute(&s.pool)
        .await
        .unwrap();
    }
    id
}

async fn confirm(s: &Store, item: &str) {
    sqlx::query(&s.sql(
        "INSERT INTO console_decisions (item, decision, category, note, banks, reviewer, at, queued_at) \
         VALUES (?, 'confirm', 'spam', NULL, '[]', 'rita', ?, 0)",
    ))
    .bind(item)
    .bind(bulwark_store::now_ms())
    .execute(&s.pool)
    .await
    .unwrap();
}

const FILE_A: &[u8] = b"benign test bytes: a blue square";
const FILE_B: &[u8] = b"benign test bytes: a green circle";

async fn evidence_and_cybertip(s: &Store) {
    // Another report first, so that ids and rows of two reports mix.
    let other = seed_report(s, &["zed"], &[(0, 0, Some(b"someone else's file"))]).await;
    let rid = seed_report(
        s,
        &["eve<b>&\"x\"", "mallory", "eve<b>&\"x\""],
        &[(0, 0, Some(FILE_A)), (0, 1, Some(FILE_B)), (2, 0, None)],
    )
    .await;
    let e = evidence::gather(s, "report", &rid.to_string())
        .await
        .unwrap();
    assert_eq!(e.item, format!("report:{rid}"));
    // Each sender once, in the order they first wrote.
    assert_eq!(e.accounts, ["eve<b>&\"x\"", "mallory"]);
    let names: Vec<&str> = e.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("report-{rid}-message-0-attachment-0"),
            format!("report-{rid}-message-0-attachment-1"),
            format!("report-{rid}-message-2-attachment-0"),
        ]
    );
    // Kept bytes are hashed from the bytes (not the stored hashes); the
    // unkept file carries the stored ones.
    for (f, bytes) in e.files.iter().zip([Some(FILE_A), Some(FILE_B), None]) {
        assert_eq!(f.bytes.as_deref(), bytes);
        match bytes {
            Some(b) => {
                assert_eq!(f.md5, Some(hex::encode(md5::Md5::digest(b))));
                assert_eq!(f.sha1, Some(hex::encode(sha1::Sha1::digest(b))));
                assert_eq!(f.sha256, Some(hex::encode(Sha256::digest(b))));
            }
            None => {
                assert_eq!(f.md5, Some("00".repeat(16)));
                assert_eq!(f.sha1, None);
                assert_eq!(f.sha256, Some("11".repeat(32)));
                assert_eq!(f.pdq, Some(format!("{:064x}", 20)));
            }
        }
    }
    assert_eq!(e.confirmed, None);
    let o = evidence::gather(s, "report", &other.to_string())
        .await
        .unwrap();
    assert_eq!(o.accounts, ["zed"]);
    assert_eq!(o.files.len(), 1);

    // The package: the same files with their bytes, and its own export in the trail.
    let doc = evidence::package(s, "report", &rid.to_string(), "console:lena", "lena")
        .await
        .unwrap();
    assert_eq!(doc["format"], "bulwark-evidence/1");
    assert_eq!(doc["exported_by"], "lena");
    assert_eq!(doc["accounts"], json!(["eve<b>&\"x\"", "mallory"]));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["content_base64"], b64.encode(FILE_A));
    assert_eq!(files[1]["size"], FILE_B.len());
    assert!(files[2]["content_base64"].is_null());
    let trail = doc["audit_trail"].as_array().unwrap();
    assert!(
        trail
            .iter()
            .any(|t| t["action"] == "console.export.evidence"
                && t["actor"] == "console:lena"
                && t["detail"]["item"] == format!("report:{rid}"))
    );
    assert_eq!(
        evidence::package(s, "ticket", "1", "console:lena", "lena")
            .await
            .unwrap_err()
            .kind,
        Kind::NotFound
    );

    // CyberTipline: refused until confirmed; then built, stored and audited.
    let reporter = Reporter {
        first_name: "Trust".into(),
        last_name: "Safety".into(),
        email: "t&s@example.invalid".into(),
    };
    let item = format!("report:{rid}");
    let err = cybertip::build(s, &reporter, &item, "console:lena", "lena")
        .await
        .unwrap_err();
    assert_eq!(err.kind, Kind::Conflict);
    for bad in ["report", "ticket:1"] {
        let err = cybertip::build(s, &reporter, bad, "console:lena", "lena")
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::BadRequest, "{bad}");
    }
    confirm(s, &item).await;
    let tid = cybertip::build(s, &reporter, &item, "console:lena", "lena")
        .await
        .unwrap();
    let xml: String = sqlx::query(&s.sql("SELECT xml FROM console_cybertips WHERE id = ?"))
        .bind(tid)
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .try_get("xml")
        .unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "report");
    let text = |path: &[&str]| -> Vec<String> {
        let mut nodes = vec![root];
        for p in path {
            nodes = nodes
                .iter()
                .flat_map(|n| n.children().filter(|c| c.tag_name().name() == *p))
                .collect();
        }
        nodes
            .iter()
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        text(&["incidentSummary", "incidentType"]),
        ["Child Pornography (possession, manufacture, and distribution)"]
    );
    assert_eq!(text(&["incidentSummary", "incidentDateTime"]).len(), 1);
    assert_eq!(
        text(&["reporter", "reportingPerson", "email"]),
        ["t&s@example.invalid"]
    );
    // One suspect (the API takes one personOrUserReported); the other
    // sender and the unkept file's hashes are in additionalInfo.
    assert_eq!(
        text(&["personOrUserReported", "espIdentifier"]),
        ["eve<b>&\"x\""]
    );
    let info = text(&["additionalInfo"]);
    assert_eq!(info.len(), 1);
    let lines: Vec<&str> = info[0].lines().collect();
    assert_eq!(
        lines[0],
        "Other accounts that sent the reported messages: mallory"
    );
    assert!(
        lines[1].contains(&format!(
            "report-{rid}-message-2-attachment-0 (MD5 {}",
            "00".repeat(16)
        )),
        "{}",
        lines[1]
    );
    let order: Vec<String> = root
        .descendants()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name().to_string())
        .collect();
    assert_eq!(
        order,
        [
            "report",
            "incidentSummary",
            "incidentType",
            "incidentDateTime",
            "incidentDateTimeDescription",
            "reporter",
            "reportingPerson",
            "firstName",
            "lastName",
            "email",
            "personOrUserReported",
            "espIdentifier",
            "screenName",
            "additionalInfo",
        ]
    );
    let built: i64 = sqlx::query(&s.sql(
        "SELECT COUNT(*) AS n FROM audit WHERE action = 'console.cybertip.build' AND actor = 'console:lena'",
    ))
    .fetch_one(&s.pool)
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert_eq!(built, 1);

    // Submission: refused by the API, nothing is recorded.
    let refuse = Recorder::new(|_, _| {
        Ok((
            200,
            b"<reportResponse><responseCode>3000</responseCode><responseDescription>bad</responseDescription></reportResponse>".to_vec(),
        ))
    });
    let err = cybertip::submit(s, refuse.as_ref(), Some("http://ncmec.invalid/ispws"), tid)
        .await
        .unwrap_err();
    assert_eq!(err.kind, Kind::Unprocessable);
    assert!(
        err.message.contains("responseCode Some(\"3000\")"),
        "{}",
        err.message
    );
    let submitted = |tid: i64| async move {
        let r = sqlx::query(
            &s.sql("SELECT submitted_at, ncmec_report_id FROM console_cybertips WHERE id = ?"),
        )
        .bind(tid)
        .fetch_one(&s.pool)
        .await
        .unwrap();
        (
            r.try_get::<Option<i64>, _>("submitted_at").unwrap(),
            r.try_get::<Option<String>, _>("ncmec_report_id").unwrap(),
        )
    };
    assert_eq!(submitted(tid).await, (None, None));
    // Accepted: the report, each kept file with its details, then finish.
    let accept = Recorder::new(|n, url| {
        let body = if url.ends_with("/upload") {
            format!(
                "<reportResponse><responseCode>0</responseCode><reportId>4242</reportId><fileId>f{n}</fileId></reportResponse>"
            )
        } else {
            "<reportResponse><responseCode>0</responseCode><reportId>4242</reportId></reportResponse>".to_string()
        };
        Ok((200, body.into_bytes()))
    });
    let rid_ncmec = cybertip::submit(s, accept.as_ref(), Some("http://ncmec.invalid/ispws/"), tid)
        .await
        .unwrap();
    assert_eq!(rid_ncmec, "4242");
    let sent = accept.sent();
    let paths: Vec<&str> = sent
        .iter()
        .map(|r| r.url.trim_start_matches("http://ncmec.invalid/ispws"))
        .collect();
    assert_eq!(
        paths,
        [
            "/submit",
            "/upload",
            "/fileinfo",
            "/upload",
            "/fileinfo",
            "/finish"
        ]
    );
    assert_eq!(sent[0].body, xml.as_bytes());
    for (upload, details, bytes) in [(1, 2, FILE_A), (3, 4, FILE_B)] {
        let mp = &sent[upload].body;
        assert!(
            mp.windows(bytes.len()).any(|w| w == bytes),
            "upload {upload}"
        );
        let fd = String::from_utf8(sent[details].body.clone()).unwrap();
        let d = roxmltree::Document::parse(&fd).unwrap();
        let get = |tag: &str| {
            d.descendants()
                .find(|n| n.tag_name().name() == tag)
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        assert_eq!(get("reportId").as_deref(), Some("4242"));
        assert_eq!(get("fileId"), Some(format!("f{upload}")));
        let md5 = d
            .descendants()
            .find(|n| n.attribute("hashType") == Some("MD5"))
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(md5, hex::encode(md5::Md5::digest(bytes)));
    }
    assert_eq!(sent[5].body, b"id=4242");
    let (at, ncmec) = submitted(tid).await;
    assert!(at.is_some());
    assert_eq!(ncmec.as_deref(), Some("4242"));
}

async fn open_queue(s: &Store, item: &str) -> Option<String> {
    sqlx::query(&s.sql("SELECT queue FROM console_open WHERE item = ?"))
        .bind(item)
        .fetch_optional(&s.pool)
        .await
        .unwrap()
        .map(|r| r.try_get("queue").unwrap())
}

async fn decisions_move_queues_and_send_webhooks(s: &Store) {
    let rid = seed_report(s, &["alice"], &[(0, 0, Some(FILE_A))]).await;
    let item = format!("report:{rid}");
    let id = rid.to_string();
    // The queued report is open in the reports' queue.
    assert_eq!(open_queue(s, &item).await.as_deref(), Some("report"));
    let http = Recorder::new(|_, _| Ok((204, Vec::new())));
    let hooks = WebhookConfig {
        url: Some("http://hooks.example.invalid/hook".into()),
        secret: String::from("k").into(),
        max_attempts: 1,
        backoff_ms: 5,
    };
    let banks = vec!["known".to_string()];
    let distances: std::collections::BTreeMap<String, i64> =
        [("known".to_string(), 4)].into_iter().collect();
    let decision = |decision, category, reviewer, effect| decisions::Decision {
        kind: "report",
        id: &id,
        decision,
        category,
        note: None,
        banks: &banks,
        distances: &distances,
        queued_at: 1000,
        reviewer,
        actor: if reviewer == "rita" {
            "console:rita"
        } else {
            "console:lena"
        },
        effect,
    };
    let escalated = decisions::record(
        s,
        &hooks,
        http.clone(),
        &decision("escalate", None, "rita", json!(null)),
    )
    .await
    .unwrap();
    assert_eq!(open_queue(s, &item).await.as_deref(), Some("escalated"));
    let confirmed = decisions::record(
        s,
        &hooks,
        http.clone(),
        &decision("confirm", Some("other_violation"), "lena", json!(null)),
    )
    .await
    .unwrap();
    assert!(confirmed > escalated);
    assert_eq!(
        open_queue(s, &item).await,
        None,
        "a final decision closes it"
    );
    let rows = sqlx::query(&s.sql(
        "SELECT id, decision, category, reviewer, banks FROM console_decisions WHERE item = ? ORDER BY id",
    ))
    .bind(&item)
    .fetch_all(&s.pool)
    .await
    .unwrap();
    let got: Vec<(i64, String, Option<String>, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("id").unwrap(),
                r.try_get("decision").unwrap(),
                r.try_get("category").unwrap(),
                r.try_get("reviewer").unwrap(),
                r.try_get("banks").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                escalated,
                "escalate".into(),
                None,
                "rita".into(),
                "known".into()
            ),
            (
                confirmed,
                "confirm".into(),
                Some("other_violation".into()),
                "lena".into(),
                "known".into()
            ),
        ]
    );
    let audits = sqlx::query(
        &s.sql("SELECT actor, detail FROM audit WHERE action = 'console.decide' ORDER BY id"),
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    let audits: Vec<(String, serde_json::Value)> = audits
        .iter()
        .map(|r| {
            let d: String = r.try_get("detail").unwrap();
            (
                r.try_get("actor").unwrap(),
                serde_json::from_str(&d).unwrap(),
            )
        })
        .collect();
    assert_eq!(audits.len(), 2);
    assert_eq!(audits[1].0, "console:lena");
    assert_eq!(audits[1].1["decision_id"], confirmed);
    assert_eq!(audits[1].1["item"], item);
    // Each decision's webhook: its event, signed.
    let start = Instant::now();
    while http.sent().len() < 2 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = http.sent();
    assert_eq!(sent.len(), 2);
    let events: Vec<serde_json::Value> = sent
        .iter()
        .map(|a| {
            assert!(verifies(
                b"k",
                header(a, "bulwark-timestamp"),
                &a.body,
                header(a, "bulwark-signature")
            ));
            serde_json::from_slice(&a.body).unwrap()
        })
        .collect();
    let by_id = |did: i64| events.iter().find(|e| e["decision_id"] == did).unwrap();
    assert_eq!(by_id(escalated)["action"], "none");
    let c = by_id(confirmed);
    assert_eq!(c["action"], "suspend_account_and_delete_content");
    assert_eq!(c["item"], item);
    assert_eq!(c["category"], "other_violation");
    assert_eq!(c["banks"], json!(["known"]));
}

#[tokio::test]
async fn decisions_on_sqlite() {
    let t = TestStore::sqlite().await;
    decisions_move_queues_and_send_webhooks(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn decisions_on_postgres() {
    let Some(t) = TestStore::postgres("review_decisions").await else {
        return;
    };
    decisions_move_queues_and_send_webhooks(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn webhooks_on_sqlite() {
    let t = TestStore::sqlite().await;
    webhooks_are_signed_retried_and_logged(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn webhooks_on_postgres() {
    let Some(t) = TestStore::postgres("review_webhooks").await else {
        return;
    };
    webhooks_are_signed_retried_and_logged(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn evidence_and_cybertip_on_sqlite() {
    let t = TestStore::sqlite().await;
    evidence_and_cybertip(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn evidence_and_cybertip_on_postgres() {
    let Some(t) = TestStore::postgres("review_evidence").await else {
        return;
    };
    evidence_and_cybertip(&t.store).await;
    t.cleanup().await;
}
