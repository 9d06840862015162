//! Reviewer accounts, logins and sessions, as pages and cookies.
//!
//! The operations (argon2id passwords, sign-in with lockouts after
//! `max_failed_logins` failures in a row and TOTP, sessions, adding
//! reviewers) are `bulwark_service::review::accounts`. Here: a session is
//! its token in an `HttpOnly`, `SameSite=Strict` (and by default `Secure`)
//! cookie; every form carries the session's CSRF token, compared in
//! constant time.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bulwark_service::review::accounts as review;
use bulwark_service::review::audit;
use maud::html;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::pages::{self, Page};
use crate::AppState;
use crate::db::{self, Store, now_ms};
use crate::secrets::Kek;

/// The session cookie.
pub const COOKIE_NAME: &str = "bulwark_console";
/// The login form's double-submit cookie (before there is a session).
pub const PRE_COOKIE: &str = "bulwark_console_login";

pub use bulwark_service::review::accounts::{ConsoleRole, hash_password};

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

    /// This reviewer as the service's operations take it.
    pub fn who(&self) -> review::Reviewer {
        review::Reviewer {
            id: self.id,
            name: self.name.clone(),
            role: self.role,
        }
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

impl FromRequestParts<AppState> for Reviewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let Some(token) = cookie_value(&parts.headers, COOKIE_NAME) else {
            return Err(to_login());
        };
        let row = review::session(&state.store, token, now_ms())
            .await
            .map_err(|e| pages::internal(&e))?;
        let Some(r) = row else { return Err(to_login()) };
        Ok(Reviewer {
            id: r.reviewer.id,
            name: r.reviewer.name,
            role: r.reviewer.role,
            csrf: r.csrf,
            since: r.since,
        })
    }
}

/// A reviewer account created ([`review::add_reviewer`], audited as
/// `cli`); with `totp`, the secret to give the authenticator app (base32)
/// is returned.
pub async fn add_reviewer(
    store: &Store,
    kek: &Kek,
    name: &str,
    role: ConsoleRole,
    password: &str,
    totp: bool,
) -> anyhow::Result<Option<String>> {
    review::add_reviewer(store, kek, "cli", name, role, password, totp)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))
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
    let cfg = &state.config.console;
    let lockout = review::Lockout {
        max_failed: cfg.max_failed_logins,
        minutes: cfg.lockout_minutes,
    };
    match review::sign_in(
        &state.store,
        &state.kek,
        lockout,
        name,
        &password,
        &code,
        now_ms(),
    )
    .await
    {
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

async fn start_session(state: &AppState, id: i64, name: &str) -> Response {
    let life = state.config.console.session();
    let token = match review::start_session(&state.store, id, name, life, now_ms()).await {
        Ok(s) => s.token,
        Err(e) => return pages::internal(&e),
    };
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
    if let Some(token) = cookie_value(&headers, COOKIE_NAME)
        && let Err(e) = review::end_session(&state.store, token).await
    {
        return pages::internal(&e);
    }
    let _ = audit(&state.store, &reviewer.actor(), "console.logout", json!({})).await;
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut()
        .append(SET_COOKIE, cookie(&state, COOKIE_NAME, "", 0));
    resp
}
