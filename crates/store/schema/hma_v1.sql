
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
