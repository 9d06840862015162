//! Enrolled devices: an account's devices with their Ed25519 public keys and
//! the API key each got.

use sqlx::Row;

use crate::Store;

/// A device as stored.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    /// The device id.
    pub device: String,
    /// Its Ed25519 public key, hex.
    pub public_key: String,
    /// When it was enrolled (ms).
    pub enrolled_at: i64,
    /// When it was revoked (ms), if it was.
    pub revoked_at: Option<i64>,
}

/// Whether the device id was ever enrolled for the account (revoked ids
/// count: they are not reused).
pub async fn exists(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    account: &str,
    device: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("SELECT 1 AS one FROM devices WHERE account = ? AND device = ?"))
            .bind(account)
            .bind(device)
            .fetch_optional(&mut *tx)
            .await?
            .is_some(),
    )
}

/// Records an enrolled device.
pub async fn insert(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    account: &str,
    device: &str,
    public_key: &str,
    key_id: &str,
    enrolled_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO devices (account, device, public_key, key_id, enrolled_at, enrolled_by) VALUES (?, ?, ?, ?, ?, ?)",
    ))
    .bind(account)
    .bind(device)
    .bind(public_key)
    .bind(key_id)
    .bind(crate::now_ms())
    .bind(enrolled_by)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Revokes an enrolled device and its API key; false when there is no such
/// enrolled (not revoked) device.
pub async fn revoke(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    account: &str,
    device: &str,
) -> Result<bool, sqlx::Error> {
    let Some(row) =
        sqlx::query(&store.sql(
            "SELECT key_id FROM devices WHERE account = ? AND device = ? AND revoked_at IS NULL",
        ))
        .bind(account)
        .bind(device)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(false);
    };
    let key_id: String = row.try_get("key_id")?;
    let now = crate::now_ms();
    sqlx::query(&store.sql("UPDATE devices SET revoked_at = ? WHERE account = ? AND device = ?"))
        .bind(now)
        .bind(account)
        .bind(device)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&store.sql("UPDATE api_keys SET revoked_at = ? WHERE id = ?"))
        .bind(now)
        .bind(&key_id)
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

/// An account's devices, revoked ones included, by id.
pub async fn of_account(store: &Store, account: &str) -> Result<Vec<DeviceRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT device, public_key, enrolled_at, revoked_at FROM devices WHERE account = ? ORDER BY device",
    ))
    .bind(account)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(DeviceRow {
            device: r.try_get("device")?,
            public_key: r.try_get("public_key")?,
            enrolled_at: r.try_get("enrolled_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    })
    .collect()
}

/// The public key (hex) of an enrolled, not revoked device.
pub async fn public_key(
    store: &Store,
    account: &str,
    device: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT public_key FROM devices WHERE account = ? AND device = ? AND revoked_at IS NULL",
    ))
    .bind(account)
    .bind(device)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| r.try_get("public_key"))
    .transpose()
}
