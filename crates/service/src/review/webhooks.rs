//! Signed webhooks of decisions: queued when a decision is recorded,
//! delivered with retries, every attempt in the delivery log.
//!
//! A webhook is `POST`ed as JSON with these headers:
//! - `Bulwark-Timestamp`: Unix seconds when it was signed;
//! - `Bulwark-Signature`: `v1=` and the hex HMAC-SHA256, keyed by the
//!   webhook secret, of `TIMESTAMP.BODY` (the timestamp, a dot, the exact body);
//! - `Bulwark-Delivery`: the delivery id (the same on retries, for de-duplication).
//!
//! A 2xx answer is delivered; anything else is retried after the backoff,
//! doubling, up to the maximum number of attempts, then given up (`failed`).

use std::sync::Arc;
use std::time::Duration;

use bulwark_store::console::actions as store;
use bulwark_store::{Store, now_ms};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

pub use bulwark_store::console::actions::DeliveryRow;

use super::Http;
use crate::error::Result;

/// How webhooks are sent (the console's `webhook_*` settings).
#[derive(Clone, Default)]
pub struct WebhookConfig {
    /// Where decisions are posted; none, no webhooks.
    pub url: Option<String>,
    /// The HMAC-SHA256 key of the signatures (empty when unset); zeroized
    /// when dropped.
    pub secret: Zeroizing<String>,
    /// Attempts before a webhook is given up (at least 1).
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubled on each retry.
    pub backoff_ms: u64,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .field("backoff_ms", &self.backoff_ms)
            .finish()
    }
}

/// How long one delivery attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The signature of a webhook body at time `ts` (Unix seconds): `v1=HEX`.
pub fn sign(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The headers of delivery `id` of `body`, signed at `ts` (Unix seconds).
pub fn headers(secret: &[u8], id: i64, ts: i64, body: &[u8]) -> [(&'static str, String); 4] {
    [
        ("content-type", "application/json".to_string()),
        ("bulwark-timestamp", ts.to_string()),
        ("bulwark-signature", sign(secret, ts, body)),
        ("bulwark-delivery", id.to_string()),
    ]
}

/// The wait after failed attempt number `attempts` (1-based): the backoff,
/// doubled for each attempt before it.
pub fn backoff(backoff_ms: u64, attempts: i64) -> Duration {
    Duration::from_millis(backoff_ms.saturating_mul(1 << (attempts - 1).clamp(0, 16)))
}

/// Queues a webhook of `event` for decision `decision_id` when a URL is
/// configured, and starts delivering it (a task of its own); returns its
/// delivery id.
pub async fn enqueue(
    store: &Store,
    cfg: &WebhookConfig,
    http: Arc<dyn Http>,
    decision_id: i64,
    event: &Value,
) -> Result<Option<i64>> {
    let Some(url) = &cfg.url else {
        return Ok(None);
    };
    let id = store::insert_webhook(store, decision_id, url, &event.to_string()).await?;
    tokio::spawn(deliver(store.clone(), cfg.clone(), http, id));
    Ok(Some(id))
}

/// Delivers one webhook, retrying with exponential backoff; every attempt
/// is written to the delivery log. Returns when it is delivered, given up,
/// no longer pending or gone.
pub async fn deliver(store: Store, cfg: WebhookConfig, http: Arc<dyn Http>, id: i64) {
    let s = &store;
    loop {
        let Ok(Some(store::WebhookRow {
            url,
            body,
            attempts,
            status,
        })) = store::webhook(s, id).await
        else {
            return;
        };
        if status != "pending" {
            return;
        }
        let ts = now_ms() / 1000;
        let headers = headers(cfg.secret.as_bytes(), id, ts, body.as_bytes());
        let r = http
            .request("POST", &url, &headers, body.into_bytes(), ATTEMPT_TIMEOUT)
            .await;
        let attempts = attempts + 1;
        let (code, err) = match &r {
            Ok((c, _)) => (Some(i64::from(*c)), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let ok = code.is_some_and(|c| (200..300).contains(&c));
        let new_status = if ok {
            "delivered"
        } else if attempts >= i64::from(cfg.max_attempts.max(1)) {
            "failed"
        } else {
            "pending"
        };
        let _ = store::record_attempt(
            s,
            id,
            &store::Attempt {
                attempts,
                status: new_status,
                last_status: code,
                last_error: err,
                delivered_at: ok.then(now_ms),
            },
        )
        .await;
        if new_status != "pending" {
            return;
        }
        tokio::time::sleep(backoff(cfg.backoff_ms, attempts)).await;
    }
}

/// Starts delivering every pending webhook (after a restart), each in a
/// task of its own; returns how many.
pub async fn resume_pending(
    store: &Store,
    cfg: &WebhookConfig,
    http: Arc<dyn Http>,
) -> Result<usize> {
    let ids = store::pending_webhooks(store).await?;
    for &id in &ids {
        tokio::spawn(deliver(store.clone(), cfg.clone(), http.clone(), id));
    }
    Ok(ids.len())
}

/// The delivery log, as the store keeps it.
pub async fn delivery_log(store: &Store) -> Result<Vec<DeliveryRow>> {
    Ok(store::delivery_log(store).await?)
}
