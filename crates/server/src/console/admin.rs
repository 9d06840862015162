//! The admin page (`/console/admin`, admin role only): reviewers (add,
//! disable and enable, change role, reset a lockout) and the banks' review
//! policies. Every change is a CSRF-checked `POST` and an audit entry
//! (`console.reviewer.*`, `console.policy`, actor `console:NAME`); the
//! reviewer changes and their checks are
//! `bulwark_service::review::accounts` (`add_reviewer`, `change_reviewer`).

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde_json::json;

use bulwark_service::review::accounts as review;
use bulwark_service::review::audit;

use super::accounts::{ConsoleRole, Reviewer};
use super::pages::{self, Page};
use crate::AppState;
use crate::db::console::admin as store;
use crate::db::{now_ms, rfc3339};

const ROLES: [ConsoleRole; 3] = [ConsoleRole::Reviewer, ConsoleRole::Lead, ConsoleRole::Admin];

/// `GET /console/admin`.
pub async fn page(State(state): State<AppState>, reviewer: Reviewer) -> Response {
    if let Err(r) = reviewer.require(ConsoleRole::Admin) {
        return r;
    }
    match page_inner(&state, &reviewer, None).await {
        Ok(p) => p.into_response(),
        Err(e) => pages::internal(&e),
    }
}

async fn page_inner(
    state: &AppState,
    reviewer: &Reviewer,
    notice: Option<maud::Markup>,
) -> anyhow::Result<Page> {
    let s = &state.store;
    audit(s, &reviewer.actor(), "console.admin.view", json!({})).await?;
    let rows = store::reviewers(s).await?;
    let policies: HashMap<String, i64> = crate::db::console::items::policies(s)
        .await?
        .into_iter()
        .collect();
    let banks = crate::db::banks(s).await?;
    let now = now_ms();
    let csrf = &reviewer.csrf;
    let body = html! {
        h1 { "Admin" }
        @if let Some(n) = notice { (n) }
        section aria-labelledby="rev-h" {
            h2 #rev-h { "Reviewers" }
            table #reviewers {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "TOTP" }
                    th scope="col" { "Sign-in" } th scope="col" { "Created" } th scope="col" { "Actions" } } }
                tbody { @for r in &rows {
                    @let name = r.name.as_str();
                    @let role = r.role.as_str();
                    @let locked = r.locked_until.filter(|t| *t > now);
                    @let disabled = r.disabled_at;
                    @let failed = r.failed;
                    tr id={"reviewer-" (name)} {
                        th scope="row" { (name) }
                        td { (role) }
                        td { @if r.totp { "enrolled" } @else { "no" } }
                        td {
                            @if let Some(d) = disabled { "disabled " (rfc3339(d)) }
                            @else if let Some(t) = locked { "locked until " (rfc3339(t)) }
                            @else if failed > 0 { (failed) " failed" }
                            @else { "ok" }
                        }
                        td { (rfc3339(r.created_at)) }
                        td {
                            @if name != reviewer.name {
                                form.inline method="post" action="/console/admin/reviewer" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="name" value=(name);
                                    input type="hidden" name="action" value="role";
                                    label.sr-only for={"role-" (name)} { "Role of " (name) }
                                    select id={"role-" (name)} name="role" {
                                        @for ro in ROLES { option value=(ro.name()) selected[ro.name() == role] { (ro.name()) } }
                                    }
                                    button type="submit" { "Change role" }
                                }
                                @if locked.is_some() || failed > 0 {
                                    form.inline method="post" action="/console/admin/reviewer" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="name" value=(name);
                                        button id={"unlock-" (name)} type="submit" name="action" value="unlock"
                                            aria-label={"Reset the lockout of " (name)} { "Reset lockout" }
                                    }
                                }
                                form.inline method="post" action="/console/admin/reviewer" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="name" value=(name);
                                    @if disabled.is_some() {
                                        button id={"enable-" (name)} type="submit" name="action" value="enable"
                                            aria-label={"Enable " (name)} { "Enable" }
                                    } @else {
                                        button id={"disable-" (name)} type="submit" name="action" value="disable"
                                            aria-label={"Disable " (name)} { "Disable" }
                                    }
                                }
                            } @else {
                                "(you)"
                            }
                        }
                    }
                } }
            }
            h3 { "Add a reviewer" }
            form #add-reviewer method="post" action="/console/admin/reviewer" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="add";
                label for="new-name" { "Name" }
                input #new-name type="text" name="name" required maxlength="64" autocomplete="off";
                label for="new-role" { "Role" }
                select #new-role name="role" { @for ro in ROLES { option value=(ro.name()) { (ro.name()) } } }
                label for="new-password" { "Password (at least 12 characters)" }
                input #new-password type="password" name="password" required minlength="12" autocomplete="new-password";
                label for="new-totp" { input #new-totp type="checkbox" name="totp" value="1"; " Enrol a one-time-code authenticator (TOTP)" }
                button #add type="submit" { "Add the reviewer" }
            }
        }
        section aria-labelledby="pol-h" {
            h2 #pol-h { "Review policies" }
            p.hint { "Matches of a bank at this PDQ distance or closer (and every exact MD5/SHA-256 match) are queued for review. Empty: the bank queues nothing." }
            table #policies {
                thead { tr { th scope="col" { "Bank" } th scope="col" { "Queue matches up to distance" } } }
                tbody { @for b in &banks {
                    tr {
                        th scope="row" { (b.name) }
                        td {
                            form.inline method="post" action="/console/policy" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="bank" value=(b.name);
                                label.sr-only for={"policy-" (b.name)} { "Largest distance for " (b.name) }
                                input id={"policy-" (b.name)} type="number" name="max_distance" min="0" max="256"
                                    value=[policies.get(&b.name)];
                                button type="submit" { "Save" }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(Page::for_reviewer("Admin", reviewer, state, body))
}

fn field<'a>(form: &'a HashMap<String, String>, k: &str) -> &'a str {
    form.get(k).map_or("", String::as_str)
}

/// `POST /console/admin/reviewer` (`action`: add, role, unlock, disable,
/// enable; `name`; `role`; `password`; `totp`).
pub async fn reviewer(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = reviewer
        .check_csrf(&form)
        .and_then(|_| reviewer.require(ConsoleRole::Admin))
    {
        return r;
    }
    match change(&state, &reviewer, &form).await {
        Ok(r) => r,
        Err(e) => pages::internal(&e),
    }
}

async fn change(
    state: &AppState,
    admin: &Reviewer,
    form: &HashMap<String, String>,
) -> anyhow::Result<Response> {
    let s = &state.store;
    let action = field(form, "action");
    let name = field(form, "name").trim();
    let bad = |m: &str| Ok(pages::error(StatusCode::BAD_REQUEST, m));
    if action == "add" {
        let Ok(role) = field(form, "role").parse::<ConsoleRole>() else {
            return bad("Unknown role.");
        };
        let totp = !field(form, "totp").is_empty();
        return match review::add_reviewer(
            s,
            &state.kek,
            &admin.actor(),
            name,
            role,
            field(form, "password"),
            totp,
        )
        .await
        {
            Ok(secret) => {
                let notice = html! {
                    p #added role="status" { "Added " (name) " (" (role.name()) ")." }
                    @if let Some(sec) = secret {
                        p #totp-secret { "Give this authenticator secret to " (name) " now; it is not shown again: "
                            code { (sec) } " (otpauth://totp/Bulwark:" (name) "?secret=" (sec) "&issuer=Bulwark)" }
                    }
                };
                Ok(page_inner(state, admin, Some(notice))
                    .await?
                    .into_response())
            }
            Err(e) => bad(&e.message),
        };
    }
    match review::change_reviewer(s, &admin.who(), name, action, field(form, "role")).await {
        Ok(()) => Ok(Redirect::to("/console/admin").into_response()),
        Err(e) => Ok(pages::refused(&e)),
    }
}
