
CREATE TABLE console_frames (item TEXT NOT NULL, media TEXT NOT NULL, at_ms BIGINT NOT NULL,
  png {blob}, error TEXT, PRIMARY KEY (item, media));
ALTER TABLE console_decisions ADD COLUMN distances TEXT;
CREATE INDEX console_decisions_at ON console_decisions (at);
CREATE INDEX console_decisions_kind ON console_decisions (decision, item);
CREATE INDEX console_psi_flagged ON psi_accounts (flagged, flagged_at, account)
