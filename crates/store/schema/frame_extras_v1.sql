
CREATE TABLE IF NOT EXISTS video_frame_extras (content_id BIGINT NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  bank_id BIGINT NOT NULL, frame BIGINT NOT NULL, kind TEXT NOT NULL, quality BIGINT NOT NULL, hash TEXT NOT NULL,
  PRIMARY KEY (content_id, frame, kind))
