
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, role TEXT NOT NULL,
  name TEXT NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT);
CREATE TABLE banks (id {pk}, name TEXT NOT NULL UNIQUE, threshold BIGINT NOT NULL,
  enabled BIGINT NOT NULL, description TEXT NOT NULL, provider TEXT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE content (id {pk}, bank_id BIGINT NOT NULL REFERENCES banks(id) ON DELETE CASCADE,
  kind TEXT NOT NULL, dedup_key TEXT NOT NULL, note TEXT, metadata TEXT, enabled BIGINT NOT NULL,
  disabled_until BIGINT, added_by TEXT NOT NULL, source TEXT, created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL, UNIQUE (bank_id, dedup_key));
CREATE TABLE signals (id {pk}, content_id BIGINT NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  bank_id BIGINT NOT NULL, signal_type TEXT NOT NULL, value TEXT NOT NULL, quality BIGINT);
CREATE INDEX signals_content ON signals (content_id);
CREATE INDEX signals_value ON signals (signal_type, value);
CREATE TABLE video_frames (content_id BIGINT NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  frame BIGINT NOT NULL, quality BIGINT NOT NULL, hash TEXT NOT NULL, ts {real} NOT NULL,
  PRIMARY KEY (content_id, frame));
CREATE TABLE changes (seq {pk}, bank_id BIGINT, content_id BIGINT, at BIGINT NOT NULL);
CREATE TABLE audit (id {pk}, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  bank TEXT, content_id BIGINT, detail TEXT NOT NULL);
CREATE INDEX audit_bank ON audit (bank, id);
