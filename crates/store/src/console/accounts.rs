//! Reviewer accounts and sessions.

use sqlx::Row;

use crate::Store;

/// The reviewer of a live session.
#[derive(Debug, Clone)]
pub struct SessionReviewer {
    /// Reviewer id.
    pub id: i64,
    /// Sign-in name.
    pub name: String,
    /// `reviewer`, `lead` or `admin`.
    pub role: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// When the session began (ms).
    pub created_at: i64,
}

/// The enabled reviewer whose session token hashes to `token_sha256`, if the
/// session has not expired at `now` (ms).
pub async fn session(
    store: &Store,
    token_sha256: &str,
    now: i64,
) -> Result<Option<SessionReviewer>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT r.id, r.name, r.role, s.csrf, s.created_at FROM console_sessions s \
         JOIN console_reviewers r ON r.id = s.reviewer_id \
         WHERE s.token_sha256 = ? AND s.expires_at > ? AND r.disabled_at IS NULL",
    ))
    .bind(token_sha256)
    .bind(now)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| {
        Ok(SessionReviewer {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            role: r.try_get("role")?,
            csrf: r.try_get("csrf")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
}

/// A reviewer to add.
#[derive(Debug, Clone)]
pub struct NewReviewer<'a> {
    /// Sign-in name.
    pub name: &'a str,
    /// The argon2id password hash.
    pub password: &'a str,
    /// `reviewer`, `lead` or `admin`.
    pub role: &'a str,
    /// The TOTP secret, sealed.
    pub totp: Option<&'a str>,
}

/// Adds a reviewer; fails on a name taken.
pub async fn insert_reviewer(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    r: &NewReviewer<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_reviewers (name, password, role, totp, failed, locked_until, created_at) \
         VALUES (?, ?, ?, ?, 0, NULL, ?)",
    ))
    .bind(r.name)
    .bind(r.password)
    .bind(r.role)
    .bind(r.totp)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What signing in checks.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Reviewer id.
    pub id: i64,
    /// The argon2id password hash.
    pub password: String,
    /// The TOTP secret, sealed, if enrolled.
    pub totp: Option<String>,
    /// Failed sign-ins in a row.
    pub failed: i64,
    /// Locked until (ms).
    pub locked_until: Option<i64>,
}

/// An enabled reviewer's credentials by name.
pub async fn credentials(store: &Store, name: &str) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT id, password, totp, failed, locked_until FROM console_reviewers \
         WHERE name = ? AND disabled_at IS NULL",
    ))
    .bind(name)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| {
        Ok(Credentials {
            id: r.try_get("id")?,
            password: r.try_get("password")?,
            totp: r.try_get("totp")?,
            failed: r.try_get("failed")?,
            locked_until: r.try_get("locked_until")?,
        })
    })
    .transpose()
}

/// A successful sign-in: no failed ones in a row, no lockout.
pub async fn login_ok(store: &Store, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        &store.sql("UPDATE console_reviewers SET failed = 0, locked_until = NULL WHERE id = ?"),
    )
    .bind(id)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// A failed sign-in: `failed` in a row, and locked until `lock` (ms) if set.
pub async fn login_failed(
    store: &Store,
    id: i64,
    failed: i64,
    lock: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE console_reviewers SET failed = ?, locked_until = COALESCE(?, locked_until) WHERE id = ?",
    ))
    .bind(failed)
    .bind(lock)
    .bind(id)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Starts a session.
pub async fn insert_session(
    store: &Store,
    token_sha256: &str,
    reviewer_id: i64,
    csrf: &str,
    created_at: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_sessions (token_sha256, reviewer_id, csrf, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(token_sha256)
    .bind(reviewer_id)
    .bind(csrf)
    .bind(created_at)
    .bind(expires_at)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Ends a session.
pub async fn delete_session(store: &Store, token_sha256: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("DELETE FROM console_sessions WHERE token_sha256 = ?"))
        .bind(token_sha256)
        .execute(&store.pool)
        .await?;
    Ok(())
}
