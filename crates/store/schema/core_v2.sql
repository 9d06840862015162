
CREATE TABLE franking_keys (id BIGINT PRIMARY KEY, secret TEXT NOT NULL, created_at BIGINT NOT NULL,
  retired_at BIGINT);
CREATE TABLE reports (id {pk}, received_at BIGINT NOT NULL, submitted_by TEXT NOT NULL,
  status TEXT NOT NULL, reason TEXT, text TEXT, rejection TEXT);
CREATE INDEX reports_status ON reports (status, id);
CREATE TABLE report_messages (report_id BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
  idx BIGINT NOT NULL, sender TEXT NOT NULL, conversation TEXT NOT NULL, accepted_at BIGINT NOT NULL,
  content {blob} NOT NULL, key_id BIGINT NOT NULL, verified BIGINT NOT NULL, rejection TEXT,
  PRIMARY KEY (report_id, idx));
CREATE TABLE report_attachments (report_id BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
  msg_idx BIGINT NOT NULL, idx BIGINT NOT NULL, blob_id TEXT NOT NULL, media_type TEXT NOT NULL,
  size BIGINT NOT NULL, ciphertext_sha256 TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
  hashes TEXT, matches TEXT, plaintext {blob}, PRIMARY KEY (report_id, msg_idx, idx));
