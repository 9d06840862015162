//! Reviewer accounts, logins and sessions.
//!
//! Passwords are stored as argon2id PHC strings. A session is 32 random
//! bytes in an `HttpOnly`, `SameSite=Strict` (and by default `Secure`)
//! cookie; the database keeps only its SHA-256. Every form carries the
//! session's CSRF token, compared in constant time. After
//! `max_failed_logins` failures in a row an account is locked for
//! `lockout_minutes`, whatever is presented.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::pages::{self, Page};
use crate::AppState;
use crate::db::console::accounts as store;
use crate::db::{self, Store, now_ms};
use crate::secrets::Kek;

/// The session cookie.
pub const COOKIE_NAME: &str = "bulwark_console";
/// The login form's double-submit cookie (before there is a session).
pub const PRE_COOKIE: &str = "bulwark_console_login";

/// A reviewer's role: reviewer < lead < admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsoleRole {
    /// Looks, reveals within budget, confirms, dismisses, escalates.
    Reviewer,
    /// Also sees escalations, clears accounts, adds to banks, files CyberTipline reports.
    Lead,
    /// Also sets review policies.
    Admin,
}

impl ConsoleRole {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            ConsoleRole::Reviewer => "reviewer",
            ConsoleRole::Lead => "lead",
            ConsoleRole::Admin => "admin",
        }
    }
}

impl std::str::FromStr for ConsoleRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reviewer" => Ok(ConsoleRole::Reviewer),
            "lead" => Ok(ConsoleRole::Lead),
            "admin" => Ok(ConsoleRole::Admin),
            _ => Err(format!(
                "unknown reviewer role {s:?} (reviewer, lead or admin)"
            )),
        }
    }
}

/// A logged-in reviewer (the extractor of every console page).
#[derive(Debug, Clone)]
pub struct Reviewer {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Role.
    pub role: ConsoleRole,
    /// The session's CSRF token.
    pub csrf: String,
    /// When the session began (ms).
    pub since: i64,
}

impl Reviewer {
    /// The audit log's actor for this reviewer.
    pub fn actor(&self) -> String {
        format!("console:{}", self.name)
    }

    /// 403 unless the role is at least `role`.
    pub fn require(&self, role: ConsoleRole) -> Result<(), Response> {
        if self.role >= role {
            Ok(())
        } else {
            Err(pages::error(
                StatusCode::FORBIDDEN,
                &format!("This needs the {} role.", role.name()),
            ))
        }
    }

    /// 403 unless the form's `csrf` field is this session's token.
    pub fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), Response> {
        let sent = form.get("csrf").map_or(&[][..], |s| s.as_bytes());
        if bool::from(sent.ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(pages::error(
                StatusCode::FORBIDDEN,
                "The form's CSRF token is missing or wrong; reload the page and try again.",
            ))
        }
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl FromRequestParts<AppState> for Reviewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let Some(token) = cookie_value(&parts.headers, COOKIE_NAME) else {
            return Err(to_login());
        };
        let s = &state.store;
        let row = store::session(s, &sha256_hex(token), now_ms())
            .await
            .map_err(|e| pages::internal(&e))?;
        let Some(r) = row else { return Err(to_login()) };
        Ok(Reviewer {
            id: r.id,
            name: r.name,
            role: r.role.parse().unwrap_or(ConsoleRole::Reviewer),
            csrf: r.csrf,
            since: r.created_at,
        })
    }
}

/// Hashes a password with argon2id (default parameters, random salt).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

fn password_ok(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A reviewer account created; with `totp`, the secret to give the
/// authenticator app (base32) is returned.
pub async fn add_reviewer(
    store: &Store,
    kek: &Kek,
    name: &str,
    role: ConsoleRole,
    password: &str,
    totp: bool,
) -> anyhow::Result<Option<String>> {
    add_reviewer_as(store, kek, "cli", name, role, password, totp).await
}

/// [`add_reviewer`], audited as `actor` (the CLI, or an admin in the console).
pub async fn add_reviewer_as(
    store: &Store,
    kek: &Kek,
    actor: &str,
    name: &str,
    role: ConsoleRole,
    password: &str,
    totp: bool,
) -> anyhow::Result<Option<String>> {
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)),
        "reviewer name must be 1–64 of A–Z a–z 0–9 . _ - @"
    );
    anyhow::ensure!(
        password.chars().count() >= 12,
        "the password must be at least 12 characters"
    );
    let pw = password.to_string();
    let hashed = tokio::task::spawn_blocking(move || hash_password(&pw)).await??;
    let (sealed, shown) = if totp {
        let secret: [u8; 20] = rand::random();
        (
            Some(kek.seal(&format!("console-totp:{name}"), &secret)),
            Some(super::totp::base32(&secret)),
        )
    } else {
        (None, None)
    };
    let mut tx = store.begin().await?;
    store::insert_reviewer(
        store,
        &mut tx,
        &store::NewReviewer {
            name,
            password: &hashed,
            role: role.name(),
            totp: sealed.as_deref(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("adding reviewer {name:?}: {e}"))?;
    db::audit(
        store,
        &mut tx,
        actor,
        "console.reviewer.add",
        None,
        None,
        json!({"reviewer": name, "role": role.name(), "totp": totp}),
    )
    .await?;
    tx.commit().await?;
    Ok(shown)
}

fn cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.console.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let v = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""))
}

/// `GET /console/login`.
pub async fn login_page(State(state): State<AppState>) -> Response {
    let pre = db::random_hex();
    let mut resp = login_form(&pre, None).into_response();
    resp.headers_mut()
        .append(SET_COOKIE, cookie(&state, PRE_COOKIE, &pre, 3600));
    resp
}

fn login_form(pre: &str, error: Option<&str>) -> Page {
    Page::new(
        "Sign in",
        html! {
            h1 { "Sign in to the reviewer console" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(pre);
                label for="name" { "Name" }
                input #name type="text" name="name" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                label for="totp" { "One-time code (if enrolled)" }
                input #totp type="text" name="totp" inputmode="numeric" autocomplete="one-time-code";
                button #signin type="submit" { "Sign in" }
            }
        },
    )
}

/// `POST /console/login`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let pre = cookie_value(&headers, PRE_COOKIE).unwrap_or("");
    let sent = form.get("csrf").map_or("", String::as_str);
    if pre.is_empty() || !bool::from(pre.as_bytes().ct_eq(sent.as_bytes())) {
        return pages::error(
            StatusCode::FORBIDDEN,
            "The sign-in form expired; reload the page and try again.",
        );
    }
    let name = form.get("name").map_or("", String::as_str).trim();
    let password = form.get("password").cloned().unwrap_or_default();
    let code = form.get("totp").cloned().unwrap_or_default();
    match check_login(&state, name, &password, &code).await {
        Ok(Some(id)) => start_session(&state, id, name).await,
        Ok(None) => {
            let mut r = login_form(
                pre,
                Some("Wrong name, password or code, or the account is locked."),
            )
            .into_response();
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => pages::internal(&e),
    }
}

/// The reviewer id when the name, password and (if enrolled) TOTP code are
/// right and the account is not locked; counts failures and locks.
async fn check_login(
    state: &AppState,
    name: &str,
    password: &str,
    code: &str,
) -> anyhow::Result<Option<i64>> {
    let s = &state.store;
    let cfg = &state.config.console;
    let now = now_ms();
    let row = store::credentials(s, name).await?;
    let Some(row) = row else {
        // Spend the same work as for a real account.
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || {
            let _ = hash_password(&pw);
        })
        .await?;
        audit(
            state,
            "anonymous",
            "console.login.failed",
            json!({"name": name}),
        )
        .await?;
        return Ok(None);
    };
    let id = row.id;
    let locked = row.locked_until.is_some_and(|t| t > now);
    let stored = row.password;
    let pw = password.to_string();
    let mut ok = tokio::task::spawn_blocking(move || password_ok(&stored, &pw)).await?;
    if let Some(sealed) = row.totp {
        let secret = state
            .kek
            .open(&format!("console-totp:{name}"), &sealed)
            .map_err(|e| anyhow::anyhow!("opening the TOTP secret: {e}"))?;
        let t = (now / 1000).max(0) as u64;
        ok &= super::totp::verify(&secret, code, t);
    }
    if ok && !locked {
        store::login_ok(s, id).await?;
        return Ok(Some(id));
    }
    let failed = row.failed + 1;
    let lock = (failed >= i64::from(cfg.max_failed_logins.max(1)))
        .then(|| now + (cfg.lockout_minutes * 60_000) as i64);
    store::login_failed(s, id, if lock.is_some() { 0 } else { failed }, lock).await?;
    let action = if locked {
        "console.login.locked"
    } else if lock.is_some() {
        "console.login.lockout"
    } else {
        "console.login.failed"
    };
    audit(
        state,
        &format!("console:{name}"),
        action,
        json!({"name": name}),
    )
    .await?;
    Ok(None)
}

async fn start_session(state: &AppState, id: i64, name: &str) -> Response {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let now = now_ms();
    let life = state.config.console.session();
    let s = &state.store;
    let r = store::insert_session(
        s,
        &sha256_hex(&token),
        id,
        &csrf,
        now,
        now + life.as_millis() as i64,
    )
    .await;
    if let Err(e) = r {
        return pages::internal(&e);
    }
    if let Err(e) = audit(
        state,
        &format!("console:{name}"),
        "console.login",
        json!({}),
    )
    .await
    {
        return pages::internal(&e);
    }
    let mut resp = Redirect::to("/console/queue").into_response();
    resp.headers_mut().append(
        SET_COOKIE,
        cookie(state, COOKIE_NAME, &token, life.as_secs()),
    );
    resp.headers_mut()
        .append(SET_COOKIE, cookie(state, PRE_COOKIE, "", 0));
    resp
}

/// `POST /console/logout`.
pub async fn logout(
    State(state): State<AppState>,
    reviewer: Reviewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer.check_csrf(&form) {
        return r;
    }
    if let Some(token) = cookie_value(&headers, COOKIE_NAME) {
        let s = &state.store;
        if let Err(e) = store::delete_session(s, &sha256_hex(token)).await {
            return pages::internal(&e);
        }
    }
    let _ = audit(&state, &reviewer.actor(), "console.logout", json!({})).await;
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut()
        .append(SET_COOKIE, cookie(&state, COOKIE_NAME, "", 0));
    resp
}

/// One audit entry in its own transaction.
pub async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let s = &state.store;
    let mut conn = s.pool.acquire().await?;
    db::audit(s, &mut conn, actor, action, None, None, detail).await
}
