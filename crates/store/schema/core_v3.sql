
CREATE TABLE pdata_releases (id {pk}, root TEXT NOT NULL, params TEXT NOT NULL, pdata {blob} NOT NULL,
  entries {blob} NOT NULL, entry_count BIGINT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE psi_accounts (account TEXT PRIMARY KEY, state {blob} NOT NULL, flagged BIGINT NOT NULL,
  updated_at BIGINT NOT NULL);
CREATE TABLE psi_opened (account TEXT NOT NULL, content_id BIGINT NOT NULL, distance BIGINT NOT NULL,
  hash TEXT NOT NULL, derivative {blob} NOT NULL, opened_at BIGINT NOT NULL);
CREATE INDEX psi_opened_account ON psi_opened (account);
