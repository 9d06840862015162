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

use crate::AppState;
use crate::db::Store;

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
    /// The HMAC-SHA256 key of webhook signatures.
    pub webhook_secret: Option<String>,
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
}

const CONSOLE_V1: &str = "
CREATE TABLE console_reviewers (id {pk}, name TEXT NOT NULL UNIQUE, password TEXT NOT NULL,
  role TEXT NOT NULL, totp TEXT, failed BIGINT NOT NULL, locked_until BIGINT,
  created_at BIGINT NOT NULL, disabled_at BIGINT);
CREATE TABLE console_sessions (token_sha256 TEXT PRIMARY KEY, reviewer_id BIGINT NOT NULL,
  csrf TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE TABLE console_policy (bank TEXT PRIMARY KEY, max_distance BIGINT NOT NULL);
CREATE TABLE console_matches (id {pk}, at BIGINT NOT NULL, actor TEXT NOT NULL, bank TEXT NOT NULL,
  content_id BIGINT NOT NULL, signal_type TEXT NOT NULL, distance BIGINT NOT NULL,
  pdq TEXT, md5 TEXT, sha256 TEXT, thumb {blob});
CREATE INDEX console_matches_pdq ON console_matches (pdq);
CREATE TABLE console_decisions (id {pk}, item TEXT NOT NULL, decision TEXT NOT NULL,
  category TEXT, note TEXT, banks TEXT NOT NULL, reviewer TEXT NOT NULL, at BIGINT NOT NULL,
  queued_at BIGINT NOT NULL);
CREATE INDEX console_decisions_item ON console_decisions (item, id);
CREATE TABLE console_reveals (reviewer_id BIGINT NOT NULL, item TEXT NOT NULL, media TEXT NOT NULL,
  day BIGINT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX console_reveals_day ON console_reveals (reviewer_id, day);
CREATE TABLE console_hidden (reviewer_id BIGINT NOT NULL, item TEXT NOT NULL, at BIGINT NOT NULL,
  PRIMARY KEY (reviewer_id, item));
CREATE TABLE console_webhooks (id {pk}, decision_id BIGINT NOT NULL, url TEXT NOT NULL,
  body TEXT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL, last_status BIGINT,
  last_error TEXT, created_at BIGINT NOT NULL, delivered_at BIGINT);
CREATE TABLE console_cybertips (id {pk}, item TEXT NOT NULL, xml TEXT NOT NULL,
  created_by TEXT NOT NULL, created_at BIGINT NOT NULL, submitted_at BIGINT, ncmec_report_id TEXT,
  response TEXT)
";

/// Video frame strips (extracted once, kept as grey PNGs of at most
/// `REVEALED_SIDE`); the distance of each decided item per bank (for the
/// false-positive rate per threshold); indexes that keep queue pages and the
/// dashboard from reading whole tables.
const CONSOLE_V2: &str = "
CREATE TABLE console_frames (item TEXT NOT NULL, media TEXT NOT NULL, at_ms BIGINT NOT NULL,
  png {blob}, error TEXT, PRIMARY KEY (item, media));
ALTER TABLE console_decisions ADD COLUMN distances TEXT;
CREATE INDEX console_decisions_at ON console_decisions (at);
CREATE INDEX console_decisions_kind ON console_decisions (decision, item);
CREATE INDEX console_psi_flagged ON psi_accounts (flagged, flagged_at, account)
";

/// The open items of every queue, so that a queue page or "next item" is one
/// range of an index that holds open items only: decided items are never
/// stepped over. `n`, `s` are the sort key (a report's or match's id and
/// `''`; a flagged account's flag time and name; an escalated item's queue
/// time and key), `t` the time it has waited since. Triggers on the sources
/// add a row when an item enters its queue (a queued report, a recorded
/// match, an account that becomes flagged, again after a clear) and remove it
/// when the source row goes (or the account is unflagged); a final decision
/// removes it and an escalation moves it to the `escalated` queue
/// ([`items::decide`]). Filled here from the existing rows, with the rules
/// the queues had before (an item with any decision is not in its kind's
/// queue).
const CONSOLE_V3: &str = "
CREATE TABLE console_open (item TEXT PRIMARY KEY, queue TEXT NOT NULL, n BIGINT NOT NULL,
  s TEXT NOT NULL, t BIGINT NOT NULL);
CREATE INDEX console_open_queue ON console_open (queue, n, s);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT 'report:' || r.id, 'report', r.id, '', r.received_at FROM reports r WHERE r.status = 'queued'
  AND NOT EXISTS (SELECT 1 FROM console_decisions d WHERE d.item = 'report:' || r.id);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT 'match:' || m.id, 'match', m.id, '', m.at FROM console_matches m
  WHERE NOT EXISTS (SELECT 1 FROM console_decisions d WHERE d.item = 'match:' || m.id);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT 'account:' || a.account, 'account', COALESCE(a.flagged_at, a.updated_at), a.account,
    COALESCE(a.flagged_at, a.updated_at) FROM psi_accounts a WHERE a.flagged = 1
  AND NOT EXISTS (SELECT 1 FROM console_decisions d WHERE d.item = 'account:' || a.account);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT e.item, 'escalated', e.queued_at, e.item, e.queued_at FROM console_decisions e
  WHERE e.decision = 'escalate'
  AND e.id = (SELECT MIN(x.id) FROM console_decisions x WHERE x.item = e.item AND x.decision = 'escalate')
  AND NOT EXISTS (SELECT 1 FROM console_decisions f WHERE f.item = e.item
    AND f.decision IN ('confirm', 'dismiss', 'clear', 'add_to_bank'))
  AND (e.item NOT LIKE 'account:%'
    OR EXISTS (SELECT 1 FROM psi_accounts a WHERE a.flagged = 1 AND 'account:' || a.account = e.item))
";

/// [`CONSOLE_V3`]'s triggers, SQLite's dialect.
const CONSOLE_V3_SQLITE: &str = "
CREATE TRIGGER console_open_report AFTER INSERT ON reports WHEN NEW.status = 'queued' BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('report:' || NEW.id, 'report', NEW.id, '', NEW.received_at); END;
CREATE TRIGGER console_close_report AFTER DELETE ON reports BEGIN
  DELETE FROM console_open WHERE item = 'report:' || OLD.id; END;
CREATE TRIGGER console_open_match AFTER INSERT ON console_matches BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('match:' || NEW.id, 'match', NEW.id, '', NEW.at); END;
CREATE TRIGGER console_close_match AFTER DELETE ON console_matches BEGIN
  DELETE FROM console_open WHERE item = 'match:' || OLD.id; END;
CREATE TRIGGER console_open_account AFTER INSERT ON psi_accounts WHEN NEW.flagged = 1 BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('account:' || NEW.account, 'account', COALESCE(NEW.flagged_at, NEW.updated_at), NEW.account,
    COALESCE(NEW.flagged_at, NEW.updated_at)); END;
CREATE TRIGGER console_reopen_account AFTER UPDATE OF flagged ON psi_accounts
  WHEN NEW.flagged = 1 AND OLD.flagged <> 1 BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('account:' || NEW.account, 'account', COALESCE(NEW.flagged_at, NEW.updated_at), NEW.account,
    COALESCE(NEW.flagged_at, NEW.updated_at)); END;
CREATE TRIGGER console_unflag_account AFTER UPDATE OF flagged ON psi_accounts
  WHEN NEW.flagged <> 1 AND OLD.flagged = 1 BEGIN
  DELETE FROM console_open WHERE item = 'account:' || NEW.account; END;
CREATE TRIGGER console_close_account AFTER DELETE ON psi_accounts BEGIN
  DELETE FROM console_open WHERE item = 'account:' || OLD.account; END
";

/// [`CONSOLE_V3`]'s triggers, PostgreSQL's dialect.
const CONSOLE_V3_POSTGRES: &str = "
CREATE FUNCTION console_open_report() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM console_open WHERE item = 'report:' || OLD.id;
  ELSIF NEW.status = 'queued' THEN
    INSERT INTO console_open (item, queue, n, s, t)
    VALUES ('report:' || NEW.id, 'report', NEW.id, '', NEW.received_at) ON CONFLICT (item) DO NOTHING;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER console_open_report AFTER INSERT OR DELETE ON reports
  FOR EACH ROW EXECUTE FUNCTION console_open_report();
CREATE FUNCTION console_open_match() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM console_open WHERE item = 'match:' || OLD.id;
  ELSE
    INSERT INTO console_open (item, queue, n, s, t)
    VALUES ('match:' || NEW.id, 'match', NEW.id, '', NEW.at) ON CONFLICT (item) DO NOTHING;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER console_open_match AFTER INSERT OR DELETE ON console_matches
  FOR EACH ROW EXECUTE FUNCTION console_open_match();
CREATE FUNCTION console_open_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM console_open WHERE item = 'account:' || OLD.account;
  ELSIF NEW.flagged = 1 AND (TG_OP = 'INSERT' OR OLD.flagged <> 1) THEN
    INSERT INTO console_open (item, queue, n, s, t)
    VALUES ('account:' || NEW.account, 'account', COALESCE(NEW.flagged_at, NEW.updated_at), NEW.account,
      COALESCE(NEW.flagged_at, NEW.updated_at)) ON CONFLICT (item) DO NOTHING;
  ELSIF TG_OP = 'UPDATE' AND NEW.flagged <> 1 AND OLD.flagged = 1 THEN
    DELETE FROM console_open WHERE item = 'account:' || NEW.account;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER console_open_account AFTER INSERT OR UPDATE OF flagged OR DELETE ON psi_accounts
  FOR EACH ROW EXECUTE FUNCTION console_open_account()
";

/// Runs the console's pending migrations (called by [`Store::open`]),
/// versioned by `meta.console_schema`.
pub async fn migrate(store: &Store) -> anyhow::Result<()> {
    let triggers = match store.backend {
        crate::db::Backend::Sqlite => CONSOLE_V3_SQLITE,
        crate::db::Backend::Postgres => CONSOLE_V3_POSTGRES,
    };
    let v3 = format!("{CONSOLE_V3};\n{triggers}");
    store
        .migrate_module("console_schema", "console", &[CONSOLE_V1, CONSOLE_V2, &v3])
        .await
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
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

#[cfg(test)]
mod config_tests {
    use super::ConsoleConfig;

    #[test]
    fn debug_output_never_shows_the_webhook_secret() {
        let c = ConsoleConfig {
            webhook_secret: Some("s3cr3t-webhook-key".into()),
            ..ConsoleConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-webhook-key"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
