
CREATE TABLE import_jobs (id TEXT PRIMARY KEY, bank_id BIGINT NOT NULL, bank TEXT NOT NULL,
  format TEXT NOT NULL, source TEXT, status TEXT NOT NULL, spool TEXT NOT NULL,
  idempotency_key TEXT, created_by TEXT NOT NULL, bytes_total BIGINT NOT NULL,
  bytes_done BIGINT NOT NULL, lines BIGINT NOT NULL, added BIGINT NOT NULL,
  duplicates BIGINT NOT NULL, rejected_count BIGINT NOT NULL, rejected TEXT NOT NULL,
  error TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, finished_at BIGINT);
CREATE UNIQUE INDEX import_jobs_idempotency ON import_jobs (created_by, idempotency_key);
CREATE INDEX import_jobs_status ON import_jobs (status, created_at);
CREATE INDEX import_jobs_bank ON import_jobs (bank, created_at)
