//! The HMA-compatible surface's own tables: banks' matching ratios
//! (`hma_bank_ratio`), exchanges and their fetch status
//! (`hma_exchanges`, `hma_exchange_status`), the map of fetched items to
//! content (`hma_follow_map`) and exchange APIs' sealed credentials
//! (`hma_api_credentials`); with the reads of content, signals and changes
//! that the HMA routes make.

use std::collections::HashMap;

use sqlx::Row;

use crate::{ContentRow, Store};

// ---- banks and content, as HMA curates them ----

/// Every bank's HMA matching ratio, where one was set.
pub async fn ratios(store: &Store) -> Result<HashMap<i64, f64>, sqlx::Error> {
    sqlx::query("SELECT bank_id, enabled_ratio FROM hma_bank_ratio")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("bank_id")?, r.try_get("enabled_ratio")?)))
        .collect()
}

/// Sets a bank's ratio, and enables it when the ratio is above 0 (disables
/// it at 0).
pub async fn set_ratio(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    ratio: f64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO hma_bank_ratio (bank_id, enabled_ratio) VALUES (?, ?) \
         ON CONFLICT (bank_id) DO UPDATE SET enabled_ratio = excluded.enabled_ratio",
    ))
    .bind(bank_id)
    .bind(ratio)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&store.sql("UPDATE banks SET enabled = ?, updated_at = ? WHERE id = ?"))
        .bind(i64::from(ratio > 0.0))
        .bind(crate::now_ms())
        .bind(bank_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Renames a bank, and the exchange of the same name with it: its fetch
/// status and its map of fetched items follow. The status refers to the
/// exchange's name without `ON UPDATE CASCADE`, so renaming the exchange row
/// in place failed the foreign key (a 500 on SQLite); instead the row is
/// copied under the new name, the dependent rows moved, and the old row
/// deleted.
pub async fn rename_bank(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    old_name: &str,
    new_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("UPDATE banks SET name = ?, updated_at = ? WHERE id = ?"))
        .bind(new_name)
        .bind(crate::now_ms())
        .bind(bank_id)
        .execute(&mut *tx)
        .await?;
    let copied = sqlx::query(&store.sql(
        "INSERT INTO hma_exchanges (name, api, enabled, config, interval_seconds, created_at, updated_at) \
         SELECT ?, api, enabled, config, interval_seconds, created_at, updated_at \
         FROM hma_exchanges WHERE name = ?",
    ))
    .bind(new_name)
    .bind(old_name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if copied == 0 {
        return Ok(());
    }
    for sql in [
        "UPDATE hma_exchange_status SET name = ? WHERE name = ?",
        "UPDATE hma_follow_map SET exchange = ? WHERE exchange = ?",
    ] {
        sqlx::query(&store.sql(sql))
            .bind(new_name)
            .bind(old_name)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&store.sql("DELETE FROM hma_exchanges WHERE name = ?"))
        .bind(old_name)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A content item of a bank.
pub async fn content_in_bank(
    store: &Store,
    bank_id: i64,
    id: i64,
) -> Result<Option<ContentRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank_id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| ContentRow::from_row(&r))
        .transpose()
}

/// A content item, in whatever bank.
pub async fn content(store: &Store, id: i64) -> Result<Option<ContentRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM content WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| ContentRow::from_row(&r))
        .transpose()
}

/// Writes a content item's matching state and note.
pub async fn update_content(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    c: &ContentRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE content SET enabled = ?, disabled_until = ?, note = ?, updated_at = ? WHERE id = ?",
    ))
    .bind(i64::from(c.enabled))
    .bind(c.disabled_until)
    .bind(&c.note)
    .bind(crate::now_ms())
    .bind(c.id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Number of stored signals of a type (its name in `signals`).
pub async fn signal_count(store: &Store, signal_type: &str) -> Result<i64, sqlx::Error> {
    // The counters triggers keep (store module `counts` v2), not a scan of
    // `signals`: one row per bank.
    sqlx::query(&store.sql(
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM signal_counts WHERE signal_type = ?",
    ))
    .bind(signal_type)
    .fetch_one(&store.pool)
    .await?
    .try_get("n")
}

// ---- the change log, as HMA's index status reads it ----

/// Time (ms) of the newest change, by sequence (the primary key; `at` has
/// no index).
pub async fn newest_change_at(store: &Store) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT at FROM changes ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("at"))
        .transpose()
}

/// Sequence numbers of up to 1000 changes after `after` written before
/// `before` (ms).
pub async fn changes_before(
    store: &Store,
    after: i64,
    before: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT seq FROM changes WHERE seq > ? AND at < ? ORDER BY seq LIMIT 1000"),
    )
    .bind(after)
    .bind(before)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| r.try_get("seq"))
    .collect()
}

/// Time (ms) of the newest change at or below `seq`.
pub async fn change_at_or_below(store: &Store, seq: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT at FROM changes WHERE seq <= ? ORDER BY seq DESC LIMIT 1"))
        .bind(seq)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("at"))
        .transpose()
}

/// `(seq, content id)` of up to `limit` content changes of a bank after
/// `after`, in order.
pub async fn bank_content_changes(
    store: &Store,
    bank_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT seq, content_id FROM changes WHERE seq > ? AND bank_id = ? AND content_id IS NOT NULL \
         ORDER BY seq LIMIT ?",
    ))
    .bind(after)
    .bind(bank_id)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("seq")?, r.try_get("content_id")?)))
    .collect()
}

// ---- exchanges ----

/// An exchange as stored.
#[derive(Debug, Clone)]
pub struct ExchangeRow {
    /// Its name (and its bank's).
    pub name: String,
    /// Its API's name.
    pub api: String,
    /// Fetched on schedule.
    pub enabled: bool,
    /// API-specific settings, JSON object text (secrets sealed).
    pub config: String,
    /// Seconds between fetches.
    pub interval_seconds: i64,
}

/// An exchange by name.
pub async fn exchange(store: &Store, name: &str) -> Result<Option<ExchangeRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM hma_exchanges WHERE name = ?"))
        .bind(name)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| {
            Ok(ExchangeRow {
                name: r.try_get("name")?,
                api: r.try_get("api")?,
                enabled: r.try_get::<i64, _>("enabled")? != 0,
                config: r.try_get("config")?,
                interval_seconds: r.try_get("interval_seconds")?,
            })
        })
        .transpose()
}

/// Every exchange's name, in order.
pub async fn exchange_names(store: &Store) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query("SELECT name FROM hma_exchanges ORDER BY name")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect()
}

/// Stores a new exchange, then its empty fetch status (two statements, no
/// transaction).
pub async fn insert_exchange(store: &Store, e: &ExchangeRow) -> Result<(), sqlx::Error> {
    let now = crate::now_ms();
    sqlx::query(&store.sql(
        "INSERT INTO hma_exchanges (name, api, enabled, config, interval_seconds, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(&e.name)
    .bind(&e.api)
    .bind(i64::from(e.enabled))
    .bind(&e.config)
    .bind(e.interval_seconds)
    .bind(now)
    .bind(now)
    .execute(&store.pool)
    .await?;
    sqlx::query(&store.sql(
        "INSERT INTO hma_exchange_status (name, checkpoint_ts, up_to_date, fetched_items) VALUES (?, 0, 0, 0)",
    ))
    .bind(&e.name)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Writes an exchange's settings (all but its name and API).
pub async fn update_exchange(store: &Store, e: &ExchangeRow) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE hma_exchanges SET enabled = ?, interval_seconds = ?, config = ?, updated_at = ? WHERE name = ?",
    ))
    .bind(i64::from(e.enabled))
    .bind(e.interval_seconds)
    .bind(&e.config)
    .bind(crate::now_ms())
    .bind(&e.name)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Deletes an exchange: its status, its map of fetched items, then itself
/// (three statements, no transaction; its bank is not touched).
pub async fn delete_exchange(store: &Store, name: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM hma_exchange_status WHERE name = ?",
        "DELETE FROM hma_follow_map WHERE exchange = ?",
        "DELETE FROM hma_exchanges WHERE name = ?",
    ] {
        sqlx::query(&store.sql(sql))
            .bind(name)
            .execute(&store.pool)
            .await?;
    }
    Ok(())
}

/// An exchange's fetch status as stored (times in ms).
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeStatusRow {
    /// The checkpoint, JSON text.
    pub checkpoint: Option<String>,
    /// The checkpoint's time, Unix seconds.
    pub checkpoint_ts: i64,
    /// When the running fetch started.
    pub running_fetch_start_ts: Option<i64>,
    /// When the last fetch ended.
    pub last_fetch_complete_ts: Option<i64>,
    /// Whether it succeeded.
    pub last_fetch_succeeded: Option<bool>,
    /// The last page said no more followed.
    pub up_to_date: bool,
    /// Items applied over every fetch.
    pub fetched_items: i64,
    /// Why the last fetch failed.
    pub last_error: Option<String>,
}

/// An exchange's fetch status (an error when it has none).
pub async fn exchange_status(store: &Store, name: &str) -> Result<ExchangeStatusRow, sqlx::Error> {
    let r = sqlx::query(&store.sql("SELECT * FROM hma_exchange_status WHERE name = ?"))
        .bind(name)
        .fetch_one(&store.pool)
        .await?;
    Ok(ExchangeStatusRow {
        checkpoint: r.try_get("checkpoint")?,
        checkpoint_ts: r.try_get("checkpoint_ts")?,
        running_fetch_start_ts: r.try_get("running_fetch_start_ts")?,
        last_fetch_complete_ts: r.try_get("last_fetch_complete_ts")?,
        last_fetch_succeeded: r
            .try_get::<Option<i64>, _>("last_fetch_succeeded")?
            .map(|v| v != 0),
        up_to_date: r.try_get::<i64, _>("up_to_date")? != 0,
        fetched_items: r.try_get("fetched_items")?,
        last_error: r.try_get("last_error")?,
    })
}

/// Marks a fetch of the exchange running since `started` (ms), unless one
/// started less than an hour before; whether it did.
pub async fn claim_fetch(store: &Store, name: &str, started: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&store.sql(
        "UPDATE hma_exchange_status SET running_fetch_start_ts = ? WHERE name = ? \
         AND (running_fetch_start_ts IS NULL OR running_fetch_start_ts < ?)",
    ))
    .bind(started)
    .bind(name)
    .bind(started - 3_600_000)
    .execute(&store.pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// An exchange's checkpoint, JSON text (an error when it has no status).
pub async fn checkpoint(store: &Store, name: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT checkpoint FROM hma_exchange_status WHERE name = ?"))
        .bind(name)
        .fetch_one(&store.pool)
        .await?
        .try_get("checkpoint")
}

/// Records a fetched page: its checkpoint, the checkpoint's time (Unix
/// seconds), the items it applied and whether the exchange is up to date.
pub async fn record_page(
    store: &Store,
    name: &str,
    checkpoint: &str,
    checkpoint_ts: i64,
    applied: i64,
    up_to_date: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE hma_exchange_status SET checkpoint = ?, checkpoint_ts = ?, \
         fetched_items = fetched_items + ?, up_to_date = ? WHERE name = ?",
    ))
    .bind(checkpoint)
    .bind(checkpoint_ts)
    .bind(applied)
    .bind(i64::from(up_to_date))
    .bind(name)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Ends a fetch at `at` (ms): not running, and how it went.
pub async fn finish_fetch(
    store: &Store,
    name: &str,
    at: i64,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE hma_exchange_status SET running_fetch_start_ts = NULL, last_fetch_complete_ts = ?, \
         last_fetch_succeeded = ?, last_error = ? WHERE name = ?",
    ))
    .bind(at)
    .bind(i64::from(error.is_none()))
    .bind(error)
    .bind(name)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// `(name, interval seconds, last fetch's end in ms)` of every enabled
/// exchange.
pub async fn enabled_exchanges(
    store: &Store,
) -> Result<Vec<(String, i64, Option<i64>)>, sqlx::Error> {
    sqlx::query(
        "SELECT e.name, e.interval_seconds, st.last_fetch_complete_ts FROM hma_exchanges e \
         JOIN hma_exchange_status st ON st.name = e.name WHERE e.enabled = 1",
    )
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get("name")?,
            r.try_get("interval_seconds")?,
            r.try_get("last_fetch_complete_ts")?,
        ))
    })
    .collect()
}

// ---- the map of fetched items to content ----

/// The content a fetched item was banked as.
pub async fn followed(
    store: &Store,
    exchange: &str,
    remote: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT local_id FROM hma_follow_map WHERE exchange = ? AND remote_id = ?"),
    )
    .bind(exchange)
    .bind(remote)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| r.try_get("local_id"))
    .transpose()
}

/// Every fetched item's remote id an exchange holds.
pub async fn followed_ids(store: &Store, exchange: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT remote_id FROM hma_follow_map WHERE exchange = ?"))
        .bind(exchange)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| r.try_get("remote_id"))
        .collect()
}

/// Maps a fetched item to the content it was banked as.
pub async fn follow(
    store: &Store,
    exchange: &str,
    remote: &str,
    local: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO hma_follow_map (exchange, remote_id, local_id) VALUES (?, ?, ?) \
         ON CONFLICT (exchange, remote_id) DO UPDATE SET local_id = excluded.local_id",
    ))
    .bind(exchange)
    .bind(remote)
    .bind(local)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Forgets a fetched item.
pub async fn unfollow(store: &Store, exchange: &str, remote: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("DELETE FROM hma_follow_map WHERE exchange = ? AND remote_id = ?"))
        .bind(exchange)
        .bind(remote)
        .execute(&store.pool)
        .await?;
    Ok(())
}

// ---- exchange APIs' credentials ----

/// An API's sealed credentials.
pub async fn credentials(store: &Store, api: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT sealed FROM hma_api_credentials WHERE api = ?"))
        .bind(api)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("sealed"))
        .transpose()
}

/// Whether an API's credentials are set.
pub async fn has_credentials(store: &Store, api: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("SELECT api FROM hma_api_credentials WHERE api = ?"))
            .bind(api)
            .fetch_optional(&store.pool)
            .await?
            .is_some(),
    )
}

/// Sets an API's sealed credentials.
pub async fn set_credentials(store: &Store, api: &str, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO hma_api_credentials (api, sealed) VALUES (?, ?) \
         ON CONFLICT (api) DO UPDATE SET sealed = excluded.sealed",
    ))
    .bind(api)
    .bind(sealed)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Unsets an API's credentials.
pub async fn delete_credentials(store: &Store, api: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("DELETE FROM hma_api_credentials WHERE api = ?"))
        .bind(api)
        .execute(&store.pool)
        .await?;
    Ok(())
}
