//! The accept loop: HTTP/1.1 connections with limits that a slow or hostile
//! client cannot outlast.
//!
//! `axum::serve` keeps a connection for as long as the client wants: a client
//! that sends half a request head, or opens a keep-alive connection and goes
//! quiet, holds a file descriptor forever, and 20,000 of them exhaust the
//! process. Here every connection must send a complete request head within
//! [`Limits::header_read_timeout`] (also between keep-alive requests), at most
//! [`Limits::max_connections`] are served at once (further ones wait in the
//! kernel's accept queue), and the descriptor limit is raised at start so the
//! cap, not the limit, is what binds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A connection must send a complete request head within this time after
    /// it opens or after its previous response; otherwise it is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

/// Descriptors kept for the database, snapshots, media temp files and logs.
const RESERVED_FDS: u64 = 256;

/// Raises the soft limit on open files to the hard limit and returns the
/// number of connections that fit under it (at most `wanted`).
pub fn fit_connections(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("could not raise the open-file limit: {e}");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(_) => return wanted,
            }
        }
    };
    let room = usize::try_from(limit.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
    if room < wanted {
        tracing::warn!(
            "open-file limit {limit} allows {room} connections, fewer than max_connections = {wanted}"
        );
    }
    wanted.min(room)
}

/// Serves `router` on `listener` until `shutdown` completes, then waits up
/// to [`Limits::drain_timeout`] for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot first: beyond the cap, clients queue in the
        // kernel instead of costing a descriptor each.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|r: Request<Incoming>| r.map(axum::body::Body::new)),
        );
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection closed: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("shutting down with requests still in flight");
        }
    }
}
