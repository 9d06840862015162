//! `bulwark serve` logs: no colour codes when stderr is not a terminal, and
//! one JSON object per line with `--log-format json`.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Starts `bulwark serve` with `extra` flags and returns its first log lines
/// (up to and including the "listening" line).
fn first_lines(extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let done = line.contains("listening on");
            lines.push(line);
            if done {
                break;
            }
        }
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    lines.expect("bulwark serve did not log that it is listening")
}

#[test]
fn text_logs_off_a_terminal_carry_no_colour_codes() {
    let lines = first_lines(&[]);
    let listening = lines.iter().find(|l| l.contains("listening on")).unwrap();
    assert!(listening.contains("INFO"), "{listening}");
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "an escape sequence in {l:?}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let lines = first_lines(&["--log-format", "json"]);
    let mut saw_listening = false;
    for l in lines.iter().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        if v["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening on"))
        {
            assert_eq!(v["level"], "INFO");
            saw_listening = true;
        }
    }
    assert!(saw_listening, "{lines:?}");
    // Lines that are not JSON come from `eprintln!` (the first-start admin key note), never from the logger.
    for l in lines.iter().filter(|l| !l.starts_with('{')) {
        assert!(
            l.starts_with("bulwark:"),
            "a log line that is not JSON: {l}"
        );
    }
}
