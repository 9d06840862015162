//! The admin page's reads and reviewer changes (review policies are in
//! [`super::items`]).

use sqlx::Row;

use crate::Store;

/// A reviewer as the admin page lists it.
#[derive(Debug, Clone)]
pub struct ReviewerLine {
    /// Sign-in name.
    pub name: String,
    /// `reviewer`, `lead` or `admin`.
    pub role: String,
    /// Whether TOTP is enrolled.
    pub totp: bool,
    /// Failed sign-ins in a row.
    pub failed: i64,
    /// Locked until (ms).
    pub locked_until: Option<i64>,
    /// When it was created (ms).
    pub created_at: i64,
    /// When it was disabled (ms).
    pub disabled_at: Option<i64>,
}

/// Reviewers by name (at most 1,000).
pub async fn reviewers(store: &Store) -> Result<Vec<ReviewerLine>, sqlx::Error> {
    sqlx::query(
        "SELECT name, role, totp, failed, locked_until, created_at, disabled_at \
         FROM console_reviewers ORDER BY name LIMIT 1000",
    )
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(ReviewerLine {
            name: r.try_get("name")?,
            role: r.try_get("role")?,
            totp: r.try_get::<Option<String>, _>("totp")?.is_some(),
            failed: r.try_get("failed")?,
            locked_until: r.try_get("locked_until")?,
            created_at: r.try_get("created_at")?,
            disabled_at: r.try_get("disabled_at")?,
        })
    })
    .collect()
}

/// A reviewer's id and role by name.
pub async fn reviewer_by_name(
    store: &Store,
    name: &str,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT id, role FROM console_reviewers WHERE name = ?"))
        .bind(name)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| Ok((r.try_get("id")?, r.try_get("role")?)))
        .transpose()
}

/// Changes a reviewer's role.
pub async fn set_role(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
    role: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("UPDATE console_reviewers SET role = ? WHERE id = ?"))
        .bind(role)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Resets a reviewer's failed sign-ins and lockout.
pub async fn unlock(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        &store.sql("UPDATE console_reviewers SET failed = 0, locked_until = NULL WHERE id = ?"),
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Disables a reviewer and ends all their sessions (signed out everywhere
/// at once).
pub async fn disable(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("UPDATE console_reviewers SET disabled_at = ? WHERE id = ?"))
        .bind(crate::now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&store.sql("DELETE FROM console_sessions WHERE reviewer_id = ?"))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Enables a reviewer again, with no failed sign-ins or lockout.
pub async fn enable(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE console_reviewers SET disabled_at = NULL, failed = 0, locked_until = NULL WHERE id = ?",
    ))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
