//! Reviewer accounts, sign-in and sessions, and the admin's changes to
//! reviewers.
//!
//! Passwords are stored as argon2id PHC strings. A session token is 32
//! random bytes (hex) the caller keeps (bulwark-server: an `HttpOnly`
//! cookie); the store keeps only its SHA-256. After `max_failed` failed
//! sign-ins in a row an account is locked for `minutes`, whatever is
//! presented. With TOTP enrolled, sign-in also needs the current code.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use bulwark_store::Store;
use bulwark_store::console::accounts as store;
use bulwark_store::console::admin as admin_store;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{audit, totp};
use crate::error::{Error, Result};
use crate::secrets::Kek;

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
    fn from_str(s: &str) -> std::result::Result<Self, String> {
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

/// A signed-in reviewer, as the operations take it.
#[derive(Debug, Clone)]
pub struct Reviewer {
    /// Row id.
    pub id: i64,
    /// Sign-in name.
    pub name: String,
    /// Role.
    pub role: ConsoleRole,
}

impl Reviewer {
    /// The audit log's actor for this reviewer (`console:NAME`).
    pub fn actor(&self) -> String {
        format!("console:{}", self.name)
    }

    /// `forbidden` ("This needs the … role.") unless the role is at least `role`.
    pub fn require(&self, role: ConsoleRole) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "This needs the {} role.",
                role.name()
            )))
        }
    }
}

/// Lowercase hex SHA-256 of a session token (what the store keeps).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Hashes a password with argon2id (default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("hashing the password: {e}")))
}

/// Whether `password` is the one of the argon2id PHC string `stored`.
pub fn password_ok(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::internal)
}

/// Creates a reviewer account, audited (`console.reviewer.add`) as `actor`
/// (the CLI, or an admin in the console). The name is 1–64 of
/// `A–Z a–z 0–9 . _ - @`, the password at least 12 characters
/// (`bad_request` otherwise); a name taken is a `conflict`. With `totp`, a
/// new secret is sealed under `kek` and returned (base32) to give to the
/// authenticator app.
pub async fn add_reviewer(
    store: &Store,
    kek: &Kek,
    actor: &str,
    name: &str,
    role: ConsoleRole,
    password: &str,
    totp: bool,
) -> Result<Option<String>> {
    if !(!name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)))
    {
        return Err(Error::bad_request(
            "reviewer name must be 1–64 of A–Z a–z 0–9 . _ - @",
        ));
    }
    if password.chars().count() < 12 {
        return Err(Error::bad_request(
            "the password must be at least 12 characters",
        ));
    }
    let pw = password.to_string();
    let hashed = blocking(move || hash_password(&pw)).await??;
    let (sealed, shown) = if totp {
        let secret: [u8; 20] = rand::random();
        (
            Some(kek.seal(&format!("console-totp:{name}"), &secret)),
            Some(totp::base32(&secret)),
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
    .map_err(|e| Error::conflict(format!("adding reviewer {name:?}: {e}")))?;
    bulwark_store::audit(
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

/// When failed sign-ins lock an account (the console's
/// `max_failed_logins`, `lockout_minutes`).
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Failed sign-ins in a row that lock the account (at least 1).
    pub max_failed: u32,
    /// Minutes it stays locked.
    pub minutes: u64,
}

/// Signing in at `now` (ms): the reviewer's id when the name, password and
/// (if enrolled) TOTP code are right and the account is enabled and not
/// locked; otherwise `None`, the failure counted (and the account locked
/// after `lockout.max_failed` in a row) and audited
/// (`console.login.failed`, `.lockout`, `.locked`). An unknown name costs
/// the same password hashing as a known one.
pub async fn sign_in(
    store: &Store,
    kek: &Kek,
    lockout: Lockout,
    name: &str,
    password: &str,
    code: &str,
    now: i64,
) -> Result<Option<i64>> {
    let Some(row) = store::credentials(store, name).await? else {
        // Spend the same work as for a real account.
        let pw = password.to_string();
        blocking(move || {
            let _ = hash_password(&pw);
        })
        .await?;
        audit(
            store,
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
    let mut ok = blocking(move || password_ok(&stored, &pw)).await?;
    if let Some(sealed) = row.totp {
        let secret = kek
            .open(&format!("console-totp:{name}"), &sealed)
            .map_err(|e| Error::internal(format!("opening the TOTP secret: {e}")))?;
        let t = (now / 1000).max(0) as u64;
        ok &= totp::verify(&secret, code, t);
    }
    if ok && !locked {
        store::login_ok(store, id).await?;
        return Ok(Some(id));
    }
    let failed = row.failed + 1;
    let lock = (failed >= i64::from(lockout.max_failed.max(1)))
        .then(|| now + (lockout.minutes * 60_000) as i64);
    store::login_failed(store, id, if lock.is_some() { 0 } else { failed }, lock).await?;
    let action = if locked {
        "console.login.locked"
    } else if lock.is_some() {
        "console.login.lockout"
    } else {
        "console.login.failed"
    };
    audit(
        store,
        &format!("console:{name}"),
        action,
        json!({"name": name}),
    )
    .await?;
    Ok(None)
}

/// A new session's secrets, for the caller to hand to the reviewer.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session token (64 hex digits); the store keeps only its SHA-256.
    pub token: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// Starts a session of reviewer `id` (`name`) at `now` (ms) lasting `life`,
/// audited (`console.login`).
pub async fn start_session(
    store: &Store,
    id: i64,
    name: &str,
    life: Duration,
    now: i64,
) -> Result<NewSession> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    store::insert_session(
        store,
        &token_hash(&token),
        id,
        &csrf,
        now,
        now + life.as_millis() as i64,
    )
    .await?;
    audit(
        store,
        &format!("console:{name}"),
        "console.login",
        json!({}),
    )
    .await?;
    Ok(NewSession { token, csrf })
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its reviewer.
    pub reviewer: Reviewer,
    /// Its CSRF token.
    pub csrf: String,
    /// When it began (ms).
    pub since: i64,
}

/// The session of `token` at `now` (ms): `None` when there is none, it has
/// expired or its reviewer is disabled.
pub async fn session(store: &Store, token: &str, now: i64) -> Result<Option<Session>> {
    Ok(store::session(store, &token_hash(token), now)
        .await?
        .map(|r| Session {
            reviewer: Reviewer {
                id: r.id,
                name: r.name,
                role: r.role.parse().unwrap_or(ConsoleRole::Reviewer),
            },
            csrf: r.csrf,
            since: r.created_at,
        }))
}

/// Ends the session of `token` (signing out).
pub async fn end_session(store: &Store, token: &str) -> Result<()> {
    Ok(store::delete_session(store, &token_hash(token)).await?)
}

/// An admin's change to another reviewer, `action` one of `role` (to
/// `role`), `unlock` (reset failed sign-ins and lockout), `disable`
/// (signed out everywhere at once) or `enable`; in one transaction with its
/// audit entry (`console.reviewer.ACTION`, actor the admin). Refused, in
/// this order: the admin's own account (`conflict`), an unknown name
/// (`not_found`), an unknown role or action (`bad_request`).
pub async fn change_reviewer(
    store: &Store,
    admin: &Reviewer,
    name: &str,
    action: &str,
    role: &str,
) -> Result<()> {
    if name == admin.name {
        return Err(Error::conflict(
            "You cannot change your own account here; ask another admin.",
        ));
    }
    let Some((id, old_role)) = admin_store::reviewer_by_name(store, name).await? else {
        return Err(Error::not_found("No such reviewer."));
    };
    let mut tx = store.begin().await?;
    let (what, detail) = match action {
        "role" => {
            let Ok(role) = role.parse::<ConsoleRole>() else {
                return Err(Error::bad_request("Unknown role."));
            };
            admin_store::set_role(store, &mut tx, id, role.name()).await?;
            (
                "console.reviewer.role",
                json!({"reviewer": name, "from": old_role, "to": role.name()}),
            )
        }
        "unlock" => {
            admin_store::unlock(store, &mut tx, id).await?;
            ("console.reviewer.unlock", json!({"reviewer": name}))
        }
        "disable" => {
            // Signed out everywhere at once.
            admin_store::disable(store, &mut tx, id).await?;
            ("console.reviewer.disable", json!({"reviewer": name}))
        }
        "enable" => {
            admin_store::enable(store, &mut tx, id).await?;
            ("console.reviewer.enable", json!({"reviewer": name}))
        }
        _ => return Err(Error::bad_request("Unknown action.")),
    };
    bulwark_store::audit(store, &mut tx, &admin.actor(), what, None, None, detail).await?;
    tx.commit().await?;
    Ok(())
}
