//! API keys: only SHA-256 of each key's secret is stored.

use sqlx::Row;

use crate::Store;

/// What verifying a key needs of it.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// Role name.
    pub role: String,
    /// When it was revoked (ms), if it was.
    pub revoked_at: Option<i64>,
    /// A device key's account.
    pub account: Option<String>,
    /// A device key's device.
    pub device: Option<String>,
}

/// A key by id.
pub async fn by_id(store: &Store, id: &str) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query(
        &store.sql(
            "SELECT secret_sha256, role, revoked_at, account, device FROM api_keys WHERE id = ?",
        ),
    )
    .bind(id)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| {
        Ok(KeyRow {
            secret_sha256: r.try_get("secret_sha256")?,
            role: r.try_get("role")?,
            revoked_at: r.try_get("revoked_at")?,
            account: r.try_get("account")?,
            device: r.try_get("device")?,
        })
    })
    .transpose()
}

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Key id.
    pub id: &'a str,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: &'a str,
    /// Role name.
    pub role: &'a str,
    /// Name given at creation.
    pub name: &'a str,
    /// A device key's account and device.
    pub device: Option<(&'a str, &'a str)>,
}

/// Stores a key (inside the caller's transaction, or on a connection).
pub async fn insert(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    k: &NewKey<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO api_keys (id, secret_sha256, role, name, created_at, revoked_at, account, device) \
         VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
    ))
    .bind(k.id)
    .bind(k.secret_sha256)
    .bind(k.role)
    .bind(k.name)
    .bind(crate::now_ms())
    .bind(k.device.map(|d| d.0))
    .bind(k.device.map(|d| d.1))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A key as listed (never its secret).
#[derive(Debug, Clone)]
pub struct KeyListRow {
    /// Key id.
    pub id: String,
    /// Role name.
    pub role: String,
    /// Name given at creation.
    pub name: String,
    /// When (ms).
    pub created_at: i64,
    /// When revoked (ms).
    pub revoked_at: Option<i64>,
}

/// Every key, oldest first.
pub async fn list(store: &Store) -> Result<Vec<KeyListRow>, sqlx::Error> {
    sqlx::query(
        "SELECT id, role, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
    )
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(KeyListRow {
            id: r.try_get("id")?,
            role: r.try_get("role")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    })
    .collect()
}

/// Revokes a key; false when there is no such key not yet revoked.
pub async fn revoke(store: &Store, id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        &store.sql("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
    )
    .bind(crate::now_ms())
    .bind(id)
    .execute(&store.pool)
    .await?
    .rows_affected()
        > 0)
}

/// Whether the store holds any key at all.
pub async fn any(store: &Store) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 AS one FROM api_keys LIMIT 1")
        .fetch_optional(&store.pool)
        .await?
        .is_some())
}
