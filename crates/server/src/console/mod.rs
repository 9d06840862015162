//! The reviewer console: server-rendered pages under `/console` for people
//! (reviewer accounts with passwords, not API keys) to look at what Bulwark
//! found — verified reports, flagged accounts, recorded matches — safely,
//! decide, act (signed webhooks) and report (CyberTipline XML, evidence
//! packages). See docs/CONSOLE.md.
//!
//! Its tables are versioned by the `console_schema` key of `meta`, apart
//! from the service's own migrations.

// Guards such as `check_csrf` and `require` fail with the page to answer
// (an axum `Response`), which the handler returns at once: boxing it would
// only add an allocation to the refusal path.
#![allow(clippy::result_large_err)]

pub mod accounts;
pub mod actions;
pub mod admin;
pub mod items;
pub mod pages;
pub mod text;
pub mod totp;
pub mod video;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::AppState;

/// Console settings (`[console]` in the configuration file). `Debug` never
/// prints the webhook secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Mark session cookies `Secure` (HTTPS only). Turn off only for tests on
    /// plain-HTTP localhost.
    pub secure_cookies: bool,
    /// Hours a session lasts.
    pub session_hours: u64,
    /// Failed logins in a row before an account is locked.
    pub max_failed_logins: u32,
    /// Minutes a locked account stays locked.
    pub lockout_minutes: u64,
    /// Images one reviewer may reveal (un-blur) per UTC day.
    pub daily_reveal_budget: u32,
    /// Minutes of continuous review before the break reminder shows.
    pub break_after_minutes: u64,
    /// Frames of a video shown as its blurred strip.
    pub video_frames: u32,
    /// Where decisions are posted (`https://` or `http://`).
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of webhook signatures (zeroized when dropped).
    pub webhook_secret: Option<Zeroizing<String>>,
    /// Delivery attempts before a webhook is given up.
    pub webhook_max_attempts: u32,
    /// First retry delay in milliseconds; doubled on each retry.
    pub webhook_backoff_ms: u64,
    /// The CyberTipline Reporting API base URL (e.g.
    /// `https://report.cybertip.org/ispws`).
    pub cybertip_url: Option<String>,
    /// A PEM file of extra CA certificates trusted (besides the built-in
    /// web roots) for the webhook and CyberTipline HTTPS connections.
    pub tls_extra_roots: Option<std::path::PathBuf>,
    /// The reporting organisation's contact, for the `reporter` element.
    pub reporter_first_name: String,
    /// See [`ConsoleConfig::reporter_first_name`].
    pub reporter_last_name: String,
    /// See [`ConsoleConfig::reporter_first_name`].
    pub reporter_email: String,
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("secure_cookies", &self.secure_cookies)
            .field("session_hours", &self.session_hours)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("lockout_minutes", &self.lockout_minutes)
            .field("daily_reveal_budget", &self.daily_reveal_budget)
            .field("break_after_minutes", &self.break_after_minutes)
            .field("video_frames", &self.video_frames)
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("webhook_backoff_ms", &self.webhook_backoff_ms)
            .field("cybertip_url", &self.cybertip_url)
            .field("tls_extra_roots", &self.tls_extra_roots)
            .field("reporter_first_name", &self.reporter_first_name)
            .field("reporter_last_name", &self.reporter_last_name)
            .field("reporter_email", &self.reporter_email)
            .finish()
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            secure_cookies: true,
            session_hours: 8,
            max_failed_logins: 5,
            lockout_minutes: 15,
            daily_reveal_budget: 50,
            break_after_minutes: 25,
            video_frames: 4,
            webhook_url: None,
            webhook_secret: None,
            webhook_max_attempts: 6,
            webhook_backoff_ms: 2000,
            cybertip_url: None,
            tls_extra_roots: None,
            reporter_first_name: "Trust".into(),
            reporter_last_name: "Safety".into(),
            reporter_email: "trust-safety@example.invalid".into(),
        }
    }
}

impl ConsoleConfig {
    /// The session lifetime.
    pub fn session(&self) -> Duration {
        Duration::from_secs(self.session_hours.max(1) * 3600)
    }

    /// The webhook settings, as the service's delivery takes them.
    pub fn webhooks(&self) -> bulwark_service::review::webhooks::WebhookConfig {
        bulwark_service::review::webhooks::WebhookConfig {
            url: self.webhook_url.clone(),
            secret: self.webhook_secret.clone().unwrap_or_default(),
            max_attempts: self.webhook_max_attempts,
            backoff_ms: self.webhook_backoff_ms,
        }
    }

    /// The reporting organisation's contact of CyberTipline reports.
    pub fn reporter(&self) -> bulwark_service::review::cybertip::Reporter {
        bulwark_service::review::cybertip::Reporter {
            first_name: self.reporter_first_name.clone(),
            last_name: self.reporter_last_name.clone(),
            email: self.reporter_email.clone(),
        }
    }
}

/// The console's routes (merged into the service's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::dashboard))
        .route("/console/", get(pages::dashboard))
        .route("/console/static/console.css", get(pages::css))
        .route("/console/static/console.js", get(pages::js))
        .route(
            "/console/login",
            get(accounts::login_page).post(accounts::login),
        )
        .route("/console/logout", post(accounts::logout))
        .route("/console/queue", get(items::queue))
        .route("/console/item/{kind}/{id}", get(items::item))
        .route("/console/media/{kind}/{id}/{media}", get(items::media))
        .route("/console/reveal", post(items::reveal))
        .route("/console/hide", post(items::hide))
        .route("/console/decide", post(items::decide))
        .route("/console/next", get(items::next))
        .route("/console/export/{kind}/{id}", get(actions::evidence))
        .route("/console/cybertip", post(actions::cybertip_build))
        .route("/console/cybertip/{id}", get(actions::cybertip_show))
        .route(
            "/console/cybertip/{id}/submit",
            post(actions::cybertip_submit),
        )
        .route("/console/webhooks", get(actions::webhook_log))
        .route("/console/policy", post(items::set_policy))
        .route("/console/admin", get(admin::page))
        .route("/console/admin/reviewer", post(admin::reviewer))
}

/// Resumes webhook deliveries left pending by a previous run.
pub fn spawn_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = actions::resume_pending(&state).await {
            tracing::warn!("resuming console webhooks failed: {e:#}");
        }
    })
}

/// The UTC day number of a time in milliseconds.
pub use bulwark_service::review::queue::day_of;

#[cfg(test)]
mod config_tests {
    use super::ConsoleConfig;

    #[test]
    fn debug_output_never_shows_the_webhook_secret() {
        let c = ConsoleConfig {
            webhook_secret: Some(String::from("s3cr3t-webhook-key").into()),
            ..ConsoleConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-webhook-key"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    /// The secret still reads from the config file's `[console]` section
    /// now that it is held in a zeroizing buffer, and reaches the webhook
    /// signer unchanged.
    #[test]
    fn the_webhook_secret_reads_from_the_config_file() {
        let c: ConsoleConfig = toml::from_str(
            "webhook_url = \"https://a.invalid/\"\nwebhook_secret = \"whsec-file\"\n",
        )
        .unwrap();
        assert_eq!(
            c.webhook_secret.as_deref().map(String::as_str),
            Some("whsec-file")
        );
        assert_eq!(c.webhooks().secret.as_str(), "whsec-file");
        let unset: ConsoleConfig = toml::from_str("").unwrap();
        assert_eq!(unset.webhooks().secret.as_str(), "");
    }
}
