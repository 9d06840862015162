
ALTER TABLE api_keys ADD COLUMN account TEXT;
ALTER TABLE api_keys ADD COLUMN device TEXT;
CREATE TABLE devices (account TEXT NOT NULL, device TEXT NOT NULL, public_key TEXT NOT NULL,
  key_id TEXT NOT NULL, enrolled_at BIGINT NOT NULL, enrolled_by TEXT NOT NULL, revoked_at BIGINT,
  PRIMARY KEY (account, device));
ALTER TABLE reports ADD COLUMN message_key TEXT;
CREATE UNIQUE INDEX reports_message_key ON reports (message_key);
CREATE TABLE report_reporters (report_id BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
  account TEXT NOT NULL, device TEXT NOT NULL, signature TEXT NOT NULL, submitted_by TEXT NOT NULL,
  reason TEXT, text TEXT, at BIGINT NOT NULL, PRIMARY KEY (report_id, account));
ALTER TABLE report_messages ADD COLUMN message_id TEXT;
ALTER TABLE report_messages ADD COLUMN epoch BIGINT;
ALTER TABLE report_messages ADD COLUMN recipients TEXT;
ALTER TABLE report_messages ADD COLUMN stamper TEXT;
CREATE TABLE psi_pending (id {pk}, account TEXT NOT NULL, device TEXT NOT NULL, release_id BIGINT NOT NULL,
  voucher {blob} NOT NULL, received_at BIGINT NOT NULL);
CREATE TABLE psi_states (account TEXT NOT NULL, release_id BIGINT NOT NULL, state {blob} NOT NULL,
  entries BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (account, release_id));
ALTER TABLE psi_accounts ADD COLUMN flagged_at BIGINT;
ALTER TABLE psi_accounts ADD COLUMN cleared_at BIGINT;
ALTER TABLE psi_accounts ADD COLUMN cleared_by TEXT;
ALTER TABLE psi_opened ADD COLUMN release_id BIGINT;
ALTER TABLE banks ADD COLUMN min_quality BIGINT NOT NULL DEFAULT 50;
CREATE TABLE providers (name TEXT PRIMARY KEY, public_key TEXT NOT NULL UNIQUE, enrolled_at BIGINT NOT NULL,
  enrolled_by TEXT NOT NULL, revoked_at BIGINT);
ALTER TABLE pdata_releases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pdata_releases ADD COLUMN min_providers BIGINT NOT NULL DEFAULT 2;
ALTER TABLE pdata_releases ADD COLUMN published_at BIGINT;
ALTER TABLE pdata_releases ADD COLUMN signed_root {blob};
ALTER TABLE pdata_releases ADD COLUMN log_index BIGINT;
CREATE TABLE pdata_signatures (release_id BIGINT NOT NULL REFERENCES pdata_releases(id) ON DELETE CASCADE,
  public_key TEXT NOT NULL, signature TEXT NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (release_id, public_key));
CREATE TABLE pdata_log (idx BIGINT PRIMARY KEY, release_id BIGINT NOT NULL, leaf {blob} NOT NULL, at BIGINT NOT NULL);
