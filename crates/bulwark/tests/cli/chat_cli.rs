//! `bulwark chat` and `bulwark delivery serve` as a script uses them: two
//! users, a group, a text and an image, `read --json`, a report that the
//! matcher service verifies. (Vouchers, thresholds and forged reports are
//! covered by crates/chat/tests/chat/e2e.rs.)
#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(30), "port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chat(dir: &Path, args: &[&str]) -> String {
    let out = bin()
        .arg("chat")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn chat_cli_group_image_read_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (mport, dport) = (free_port(), free_port());
    let data = dir.path().join("server");
    let _server = KillOnDrop(
        bin()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{mport}"),
                "--data-dir",
            ])
            .arg(&data)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(mport);
    // CI once got an empty key here (cause not found: perhaps the server's
    // start-up still writing its store) and the chat failed later with an
    // unexplained 401: retry a failed `keys create`, and say why if it never
    // works.
    let stamper = {
        let mut last = String::new();
        let mut key = None;
        for _ in 0..20 {
            let out = bin()
                .args(["keys", "create", "--role", "stamper", "--data-dir"])
                .arg(&data)
                .output()
                .unwrap();
            let stdout = String::from_utf8(out.stdout).unwrap().trim().to_string();
            if out.status.success() && !stdout.is_empty() {
                key = Some(stdout);
                break;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        key.unwrap_or_else(|| panic!("bulwark keys create failed: {last}"))
    };
    let _ds = KillOnDrop(
        bin()
            .args([
                "delivery",
                "serve",
                "--listen",
                &format!("127.0.0.1:{dport}"),
            ])
            .arg("--database")
            .arg(dir.path().join("delivery.db"))
            .args(["--matcher", &format!("http://127.0.0.1:{mport}")])
            .env("BULWARK_STAMPER_KEY", &stamper)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(dport);
    let (ds, m) = (
        format!("http://127.0.0.1:{dport}"),
        format!("http://127.0.0.1:{mport}"),
    );
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for (d, u) in [(&alice, "alice"), (&bob, "bob")] {
        chat(d, &["register", "--ds", &ds, "--matcher", &m, "--user", u]);
    }
    chat(&alice, &["group", "create", "pals", "bob"]);
    let image: PathBuf = std::env::var("BULWARK_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
        .join("pdq/images/misc-images/c.png");
    let sent = chat(
        &alice,
        &[
            "send",
            "--group",
            "pals",
            "--image",
            image.to_str().unwrap(),
            "hello bob",
        ],
    );
    let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
    let id = sent["message_id"].as_str().unwrap().to_string();
    let read: serde_json::Value = serde_json::from_str(&chat(&bob, &["read", "--json"])).unwrap();
    assert_eq!(read["joined"][0], "pals", "{read}");
    let msg = &read["messages"][0];
    assert_eq!(msg["text"], "hello bob");
    assert_eq!(msg["sender"], "alice");
    let saved = msg["attachments"][0]["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read(saved).unwrap(),
        std::fs::read(&image).unwrap()
    );
    // A 1:1 back.
    chat(&bob, &["send", "--to", "alice", "hi alice"]);
    let read = chat(&alice, &["read"]);
    assert!(read.contains("<bob>: hi alice"), "{read}");
    // Bob reports alice's message: the matcher service verifies it.
    let rep: serde_json::Value =
        serde_json::from_str(&chat(&bob, &["report", &id, "--reason", "spam"])).unwrap();
    assert_eq!(rep["status"], "queued", "{rep}");
    // Alice cannot report her own sent message: she never received it.
    let out = bin()
        .arg("chat")
        .arg("--dir")
        .arg(&alice)
        .args(["report", &id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
