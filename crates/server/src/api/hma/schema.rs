//! The HMA surface's own tables, versioned by the `hma_schema` key in the
//! `meta` table (independent of the core schema in `db.rs`).

use sqlx::Row;

use crate::db::{Backend, Store};

/// Version 1: per-bank matching ratios, exchanges, their fetch status and
/// checkpoints, exchange API credentials (sealed), and the follower's map
/// of a leader's content ids to local ones.
const HMA_V1: &str = "
CREATE TABLE IF NOT EXISTS hma_bank_ratio (bank_id BIGINT PRIMARY KEY REFERENCES banks(id) ON DELETE CASCADE,
  enabled_ratio {real} NOT NULL);
CREATE TABLE IF NOT EXISTS hma_exchanges (name TEXT PRIMARY KEY, api TEXT NOT NULL, enabled BIGINT NOT NULL,
  config TEXT NOT NULL, interval_seconds BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS hma_exchange_status (name TEXT PRIMARY KEY REFERENCES hma_exchanges(name) ON DELETE CASCADE,
  checkpoint TEXT, checkpoint_ts BIGINT NOT NULL, running_fetch_start_ts BIGINT, last_fetch_complete_ts BIGINT,
  last_fetch_succeeded BIGINT, up_to_date BIGINT NOT NULL, fetched_items BIGINT NOT NULL, last_error TEXT);
CREATE TABLE IF NOT EXISTS hma_api_credentials (api TEXT PRIMARY KEY, sealed TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hma_follow_map (exchange TEXT NOT NULL, remote_id TEXT NOT NULL, local_id BIGINT NOT NULL,
  PRIMARY KEY (exchange, remote_id))
";

const VERSIONS: &[&str] = &[HMA_V1];

/// Runs the HMA migrations not yet applied (each once, in a transaction).
pub async fn migrate(store: &Store) -> anyhow::Result<()> {
    let mut conn = store.pool.acquire().await?;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock(7305543)")
            .execute(&mut *conn)
            .await?;
    }
    let result = async {
        let current: i64 = sqlx::query(&store.sql("SELECT value FROM meta WHERE key = ?"))
            .bind("hma_schema")
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get::<String, _>("value"))
            .transpose()?
            .map_or(Ok(0), |v| v.parse::<i64>())?;
        anyhow::ensure!(
            current as usize <= VERSIONS.len(),
            "the database has HMA schema version {current}, newer than this binary knows"
        );
        let real = match store.backend {
            Backend::Sqlite => "REAL",
            Backend::Postgres => "DOUBLE PRECISION",
        };
        for (i, m) in VERSIONS.iter().enumerate().skip(current as usize) {
            let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
            for stmt in m
                .replace("{real}", real)
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            sqlx::query(&store.sql(
                "INSERT INTO meta (key, value) VALUES ('hma_schema', ?) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ))
            .bind((i + 1).to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!("HMA tables migrated to version {}", i + 1);
        }
        Ok(())
    }
    .await;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7305543)")
            .execute(&mut *conn)
            .await?;
    }
    result
}
