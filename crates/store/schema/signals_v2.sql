
CREATE TABLE console_text_matches (match_id BIGINT PRIMARY KEY REFERENCES console_matches(id) ON DELETE CASCADE,
  query_signal TEXT, explanation TEXT NOT NULL, review_only BIGINT NOT NULL)
