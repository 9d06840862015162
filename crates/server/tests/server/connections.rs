//! Slow and idle clients: the accept loop closes connections that do not send
//! a request head in time and serves at most `max_connections` at once.
//!
//! Each test attacks a real listener over TCP. Waits are bounded generously
//! so a slow machine cannot make them flaky; none measures speed.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::time::Duration;

use bulwark_server::listen::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the real service router behind [`serve`] with these limits.
async fn start(limits: Limits) -> (std::net::SocketAddr, support::TestApp) {
    let app = support::TestApp::sqlite().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(serve(listener, router, limits, std::future::pending()));
    (addr, app)
}

fn limits(header_read_timeout: Duration, max_connections: usize) -> Limits {
    Limits {
        header_read_timeout,
        max_connections,
        drain_timeout: Duration::from_secs(1),
    }
}

/// Reads until the peer closes; panics if it is still open after `bound`.
async fn closed_within(s: &mut TcpStream, bound: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(bound, s.read_to_end(&mut got))
        .await
        .expect("the server kept the connection open")
        .ok();
    got
}

const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n";

/// Reads one response head and body from a keep-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed before a response");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= head_end + 4 + len {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let (addr, _app) = start(limits(Duration::from_millis(500), 64)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    closed_within(&mut s, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed() {
    let (addr, _app) = start(limits(Duration::from_millis(500), 64)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut s, Duration::from_secs(30)).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "a partial head must not be answered as a request"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_response() {
    let (addr, _app) = start(limits(Duration::from_millis(500), 64)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(HEALTH).await.unwrap();
    let first = read_response(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The same connection, now idle, is closed rather than held forever.
    closed_within(&mut s, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let (addr, _app) = start(limits(Duration::from_secs(120), 2)).await;
    // Two clients hold both slots: each made one request and keeps the connection.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(HEALTH).await.unwrap();
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        holders.push(s);
    }
    // A third is accepted by the kernel but not served while both are held.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served over the cap");
    // One holder leaves: the third is served.
    drop(holders.pop());
    let answer = read_response(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn the_open_file_limit_is_raised_to_fit_the_connections() {
    let fitted = bulwark_server::listen::fit_connections(1000);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    // The soft limit is raised to the hard one (Linux allows it unprivileged) ...
    #[cfg(target_os = "linux")]
    assert_eq!(soft, hard, "soft limit not raised");
    // ... and the cap never exceeds what the limit leaves room for.
    assert!(fitted as u64 <= soft.saturating_sub(256).max(16));
    assert!(fitted <= 1000);
}
