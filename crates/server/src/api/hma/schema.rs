//! The HMA surface's own tables, versioned by the `hma_schema` key in the
//! `meta` table (independent of the core schema in `db.rs`).

use crate::db::Store;

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
    store.migrate_module("hma_schema", "HMA", VERSIONS).await
}
