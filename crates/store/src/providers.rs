//! Hash-list providers (enrolled Ed25519 keys), their signatures on pdata
//! releases, publication, and the append-only log of signed roots.

use sqlx::Row;

use crate::{Backend, Store, now_ms};

/// Enrols a provider; whether it was new (neither its name nor its key
/// enrolled before).
pub async fn insert(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    name: &str,
    public_key: &str,
    enrolled_by: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&store.sql(
        "INSERT INTO providers (name, public_key, enrolled_at, enrolled_by) VALUES (?, ?, ?, ?) \
         ON CONFLICT DO NOTHING",
    ))
    .bind(name)
    .bind(public_key)
    .bind(now_ms())
    .bind(enrolled_by)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(done != 0)
}

/// A provider as stored.
#[derive(Debug, Clone)]
pub struct ProviderRow {
    /// Unique name.
    pub name: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Milliseconds.
    pub enrolled_at: i64,
    /// Milliseconds, once revoked.
    pub revoked_at: Option<i64>,
}

/// Every provider, revoked or not, by name.
pub async fn list(store: &Store) -> Result<Vec<ProviderRow>, sqlx::Error> {
    sqlx::query("SELECT name, public_key, enrolled_at, revoked_at FROM providers ORDER BY name")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ProviderRow {
                name: r.try_get("name")?,
                public_key: r.try_get("public_key")?,
                enrolled_at: r.try_get("enrolled_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revokes an enrolled provider; whether there was one not yet revoked.
pub async fn revoke(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        &store.sql("UPDATE providers SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"),
    )
    .bind(now_ms())
    .bind(name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(done != 0)
}

/// The public keys (hex) of enrolled, not revoked providers.
pub async fn enrolled_keys(tx: &mut sqlx::AnyConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query("SELECT public_key FROM providers WHERE revoked_at IS NULL")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("public_key"))
        .collect()
}

/// A release's pdata for providers to check, pending or published.
#[derive(Debug, Clone)]
pub struct ReleasePdata {
    /// The root, as text.
    pub root: String,
    /// The pdata bytes.
    pub pdata: Vec<u8>,
    /// When it was published (ms), if it was.
    pub published_at: Option<i64>,
}

/// Release `id`'s pdata.
pub async fn release_pdata(store: &Store, id: i64) -> Result<Option<ReleasePdata>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT root, pdata, published_at FROM pdata_releases WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| {
            Ok(ReleasePdata {
                root: r.try_get("root")?,
                pdata: r.try_get("pdata")?,
                published_at: r.try_get("published_at")?,
            })
        })
        .transpose()
}

/// Release `id`'s pdata and how many providers it needs, locked for
/// signing (`FOR UPDATE` on PostgreSQL; SQLite's writer lock serialises).
pub async fn release_for_signing(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<Option<(ReleasePdata, i64)>, sqlx::Error> {
    sqlx::query(&store.sql(&format!(
        "SELECT root, pdata, published_at, min_providers FROM pdata_releases WHERE id = ?{}",
        if store.backend == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        }
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| {
        Ok((
            ReleasePdata {
                root: r.try_get("root")?,
                pdata: r.try_get("pdata")?,
                published_at: r.try_get("published_at")?,
            },
            r.try_get("min_providers")?,
        ))
    })
    .transpose()
}

/// Stores a provider's signature on a release (a second one by the same
/// key is ignored).
pub async fn insert_signature(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    release_id: i64,
    public_key: &str,
    signature: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO pdata_signatures (release_id, public_key, signature, at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (release_id, public_key) DO NOTHING",
    ))
    .bind(release_id)
    .bind(public_key)
    .bind(signature)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Every stored signature on a release as (public key, signature), hex,
/// oldest first.
pub async fn signatures(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    release_id: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT public_key, signature FROM pdata_signatures WHERE release_id = ? ORDER BY at, public_key",
    ))
    .bind(release_id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("public_key")?, r.try_get("signature")?)))
    .collect()
}

/// Publishes a release: appends its signed root to the log at the next
/// index and records it on the release; returns the log index.
pub async fn publish(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    release_id: i64,
    signed_root: &[u8],
) -> Result<i64, sqlx::Error> {
    let idx: i64 = sqlx::query("SELECT COALESCE(MAX(idx), -1) + 1 AS n FROM pdata_log")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    sqlx::query(
        &store.sql("INSERT INTO pdata_log (idx, release_id, leaf, at) VALUES (?, ?, ?, ?)"),
    )
    .bind(idx)
    .bind(release_id)
    .bind(signed_root.to_vec())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    sqlx::query(&store.sql(
        "UPDATE pdata_releases SET published_at = ?, signed_root = ?, log_index = ? WHERE id = ?",
    ))
    .bind(now_ms())
    .bind(signed_root.to_vec())
    .bind(idx)
    .bind(release_id)
    .execute(&mut *tx)
    .await?;
    Ok(idx)
}

/// Every logged leaf as (release id, leaf), oldest first.
pub async fn log_leaves(store: &Store) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query("SELECT release_id, leaf FROM pdata_log ORDER BY idx")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("release_id")?, r.try_get("leaf")?)))
        .collect()
}

/// The newest published release's signed root and log index.
pub async fn latest_signed_root(store: &Store) -> Result<Option<(Vec<u8>, i64)>, sqlx::Error> {
    sqlx::query(
        "SELECT id, signed_root, log_index FROM pdata_releases WHERE published_at IS NOT NULL \
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&store.pool)
    .await?
    .map(|r| Ok((r.try_get("signed_root")?, r.try_get("log_index")?)))
    .transpose()
}
