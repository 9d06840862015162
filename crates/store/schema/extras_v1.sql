
CREATE TABLE IF NOT EXISTS pdq_extras (content_id BIGINT NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  bank_id BIGINT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, quality BIGINT NOT NULL,
  PRIMARY KEY (content_id, kind))
