
CREATE TABLE rule_banks (bank_id BIGINT PRIMARY KEY REFERENCES banks(id) ON DELETE CASCADE,
  language TEXT NOT NULL, spec TEXT NOT NULL, updated_at BIGINT NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE rescue_banks (id {pk}, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL,
  provider TEXT, threshold BIGINT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE rescue_photos (id {pk}, bank_id BIGINT NOT NULL REFERENCES rescue_banks(id) ON DELETE CASCADE,
  pdq TEXT NOT NULL, quality BIGINT, note TEXT, added_by TEXT NOT NULL, created_at BIGINT NOT NULL,
  UNIQUE (bank_id, pdq));
CREATE TABLE rescue_reviewers (key_id TEXT PRIMARY KEY, granted_by TEXT NOT NULL, granted_at BIGINT NOT NULL);
CREATE TABLE report_text_signals (report_id BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
  msg_idx BIGINT NOT NULL, signals TEXT NOT NULL, matches TEXT NOT NULL, PRIMARY KEY (report_id, msg_idx));
CREATE TABLE report_rescue_matches (report_id BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
  msg_idx BIGINT NOT NULL, idx BIGINT NOT NULL, matches TEXT NOT NULL, PRIMARY KEY (report_id, msg_idx, idx));
