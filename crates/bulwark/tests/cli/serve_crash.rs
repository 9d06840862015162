//! Every write the service acknowledged survives `kill -9`.
#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};

use bulwark_client::http::Http;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `bulwark serve`, its log in `log`.
fn start(dir: &std::path::Path, port: u16, log: &std::path::Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "bulwark serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// One request; the status and body, or None when the connection failed.
fn http(port: u16, method: &str, path: &str, key: &str, body: &str) -> Option<(u16, String)> {
    let client = Http::with_timeout(
        &format!("http://127.0.0.1:{port}"),
        Some(Duration::from_secs(10)),
    );
    let r = client
        .call(
            method,
            path,
            Some(key),
            Some(("application/json", body.as_bytes())),
        )
        .ok()?;
    Some((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start(dir.path(), port, &logs.path().join("first.log"));
    let key = std::fs::read_to_string(dir.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_string();
    let (s, _) = http(port, "POST", "/v1/banks", &key, r#"{"name":"crash"}"#).unwrap();
    assert_eq!(s, 201);

    // Two writers add content as fast as they can; the process is killed mid-stream.
    let acked = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u8)
        .map(|w| {
            let (acked, stop, key) = (Arc::clone(&acked), Arc::clone(&stop), key.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // Half the bits set, as a real image hash (an all-but-zero hash is
                    // refused by the bank's quality floor).
                    let mut bytes = [0x0fu8; 32];
                    bytes[0] = w;
                    bytes[28..].copy_from_slice(&i.to_be_bytes());
                    let hash = bulwark_pdq::PdqHash::from_bytes(bytes).to_string();
                    let body = format!(r#"{{"signals":{{"pdq":"{hash}"}}}}"#);
                    if let Some((201, resp)) =
                        http(port, "POST", "/v1/banks/crash/content", &key, &body)
                    {
                        let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push((hash, v["id"].as_i64().unwrap()));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let t = Instant::now();
    while acked.lock().unwrap().len() < 60 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Long enough for the index journal to be written (every 0.5 s) while
    // the writers go on.
    std::thread::sleep(Duration::from_millis(1200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "only {} writes acknowledged",
        acked.len()
    );

    // Restarted, the service has every acknowledged item, and matches it.
    let log = logs.path().join("second.log");
    let mut child = start(dir.path(), port, &log);
    // Its index came from the snapshot and the journal, not from a full
    // read of the store.
    let loaded = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .find(|l| l.contains("index loaded"))
        .map(str::to_string)
        .unwrap_or_default();
    let journal_records: usize = loaded
        .split("entries, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        loaded.contains("index loaded from snapshot") && journal_records > 0,
        "the restart did not use the index journal: {loaded:?}"
    );
    for (hash, id) in &acked {
        let (s, body) = http(
            port,
            "GET",
            &format!("/v1/banks/crash/content/{id}"),
            &key,
            "",
        )
        .unwrap();
        assert_eq!(s, 200, "acknowledged content {id} lost: {body}");
        assert!(body.contains(hash.as_str()));
    }
    for (hash, id) in &acked {
        let (s, body) = http(
            port,
            "POST",
            "/v1/match",
            &key,
            &format!(r#"{{"signals":{{"pdq":"{hash}"}}}}"#),
        )
        .unwrap();
        assert_eq!(s, 200);
        assert!(body.contains(&format!("\"content_id\":{id}")), "{body}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
