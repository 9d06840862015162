//! Banks: create, read, update, delete. Reads of all banks and by name are
//! [`crate::banks`](fn@crate::banks) and [`crate::bank_by_name`].

use crate::{BankRow, Store};

/// A bank to create.
#[derive(Debug, Clone)]
pub struct NewBank<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Largest PDQ distance that matches.
    pub threshold: i64,
    /// Lowest PDQ quality banked and matched.
    pub min_quality: i64,
    /// Matching enabled.
    pub enabled: bool,
    /// Free text.
    pub description: &'a str,
    /// Who provides the list.
    pub provider: Option<&'a str>,
}

/// Creates a bank; `None` when the name is taken.
pub async fn insert(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    b: &NewBank<'_>,
) -> Result<Option<BankRow>, sqlx::Error> {
    let now = crate::now_ms();
    sqlx::query(&store.sql(
        "INSERT INTO banks (name, threshold, enabled, description, provider, created_at, updated_at, min_quality) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING *",
    ))
    .bind(b.name)
    .bind(b.threshold)
    .bind(i64::from(b.enabled))
    .bind(b.description)
    .bind(b.provider)
    .bind(now)
    .bind(now)
    .bind(b.min_quality)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| BankRow::from_row(&r))
    .transpose()
}

/// A bank by name, inside a transaction.
pub async fn by_name_in(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    name: &str,
) -> Result<Option<BankRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM banks WHERE name = ?"))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| BankRow::from_row(&r))
        .transpose()
}

/// Writes a bank's settings (all but its id, name and creation time).
pub async fn update(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    b: &BankRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE banks SET threshold = ?, enabled = ?, description = ?, provider = ?, updated_at = ?, \
         min_quality = ? WHERE id = ?",
    ))
    .bind(b.threshold)
    .bind(i64::from(b.enabled))
    .bind(&b.description)
    .bind(&b.provider)
    .bind(b.updated_at)
    .bind(b.min_quality)
    .bind(b.id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes a bank and (by cascade) its content; returns how many content
/// items it held.
pub async fn delete(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
) -> Result<i64, sqlx::Error> {
    let (content, _) = crate::bank_counts(store, &mut *tx, bank_id).await?;
    sqlx::query(&store.sql("DELETE FROM banks WHERE id = ?"))
        .bind(bank_id)
        .execute(&mut *tx)
        .await?;
    Ok(content)
}
