
CREATE TABLE console_reviewers (id {pk}, name TEXT NOT NULL UNIQUE, password TEXT NOT NULL,
  role TEXT NOT NULL, totp TEXT, failed BIGINT NOT NULL, locked_until BIGINT,
  created_at BIGINT NOT NULL, disabled_at BIGINT);
CREATE TABLE console_sessions (token_sha256 TEXT PRIMARY KEY, reviewer_id BIGINT NOT NULL,
  csrf TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE TABLE console_policy (bank TEXT PRIMARY KEY, max_distance BIGINT NOT NULL);
CREATE TABLE console_matches (id {pk}, at BIGINT NOT NULL, actor TEXT NOT NULL, bank TEXT NOT NULL,
  content_id BIGINT NOT NULL, signal_type TEXT NOT NULL, distance BIGINT NOT NULL,
  pdq TEXT, md5 TEXT, sha256 TEXT, thumb {blob});
CREATE INDEX console_matches_pdq ON console_matches (pdq);
CREATE TABLE console_decisions (id {pk}, item TEXT NOT NULL, decision TEXT NOT NULL,
  category TEXT, note TEXT, banks TEXT NOT NULL, reviewer TEXT NOT NULL, at BIGINT NOT NULL,
  queued_at BIGINT NOT NULL);
CREATE INDEX console_decisions_item ON console_decisions (item, id);
CREATE TABLE console_reveals (reviewer_id BIGINT NOT NULL, item TEXT NOT NULL, media TEXT NOT NULL,
  day BIGINT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX console_reveals_day ON console_reveals (reviewer_id, day);
CREATE TABLE console_hidden (reviewer_id BIGINT NOT NULL, item TEXT NOT NULL, at BIGINT NOT NULL,
  PRIMARY KEY (reviewer_id, item));
CREATE TABLE console_webhooks (id {pk}, decision_id BIGINT NOT NULL, url TEXT NOT NULL,
  body TEXT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL, last_status BIGINT,
  last_error TEXT, created_at BIGINT NOT NULL, delivered_at BIGINT);
CREATE TABLE console_cybertips (id {pk}, item TEXT NOT NULL, xml TEXT NOT NULL,
  created_by TEXT NOT NULL, created_at BIGINT NOT NULL, submitted_at BIGINT, ncmec_report_id TEXT,
  response TEXT)
