//! The reviewer console's operations without HTTP (issue 14): reviewer
//! accounts, sign-in with lockouts and TOTP ([`totp`]), sessions and the
//! admin's changes to reviewers ([`accounts`]); the queues, "next item" and
//! the daily reveal budget, hiding an item ([`queue`]); which matches are
//! queued for review ([`policy`]); checking a decision, its effects
//! and recording it ([`decisions`]) and what it sets off — signed webhooks with retries and their delivery log
//! ([`webhooks`]), evidence packages ([`evidence`]) and CyberTipline
//! reports, built, stored and submitted ([`cybertip`]) — and the console's
//! audit entries ([`audit`]); what an item page shows besides the item
//! (similar items and history, [`item`]), its media as grey thumbnails and
//! video frame strips ([`media`]), and the match path's hook that records
//! the matches a review policy selects ([`matches`]). The SQL is `bulwark_store::console`; the pages
//! (forms, sessions, HTML) are bulwark-server's `console` module, which
//! parses a request, calls one of these and renders the answer.
//!
//! Outgoing requests (webhook deliveries, CyberTipline submissions) go
//! through an [`Http`] the caller supplies: bulwark-server's is its TLS
//! client (`console.tls_extra_roots`), tests can answer as they like.

pub mod accounts;
pub mod cybertip;
pub mod decisions;
pub mod evidence;
pub mod item;
pub mod matches;
pub mod media;
pub mod policy;
pub mod queue;
pub mod totp;
pub mod webhooks;

use std::time::Duration;

use bulwark_store::Store;
use futures_util::future::BoxFuture;

use crate::error::Result;

/// Sends one outgoing request: `method` to `url` with `headers` and `body`,
/// giving up after `timeout`; answers the status and (at most some bounded
/// part of) the body, or why it could not be sent.
pub trait Http: Send + Sync {
    /// One request.
    fn request<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        headers: &'a [(&'a str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<(u16, Vec<u8>)>>;
}

/// Writes one console audit entry (`actor` e.g. `console:NAME`, `action`
/// e.g. `console.decide`, `detail` a JSON object).
pub async fn audit(
    store: &Store,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    Ok(bulwark_store::audit(store, &mut conn, actor, action, None, None, detail).await?)
}
