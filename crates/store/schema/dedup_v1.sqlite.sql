-- bulwark: foreign keys off
-- Content without UNIQUE (bank_id, dedup_key): on SQLite the store checks
-- the rule against its in-memory map (crates/store/src/dedup.rs), because
-- a B-tree keyed by a hash puts every new row on a random page and WAL mode
-- logs each such page whole at every commit. The table is rebuilt (SQLite
-- cannot drop a table constraint) the way SQLite's documentation says: with
-- foreign keys off for the migration's connection (so that dropping the old
-- table does not cascade to signals, frames and extras), the same ids, the
-- AUTOINCREMENT counter kept, its index and the counter triggers made again,
-- and a foreign key check before the commit. content_bank serves a bank's
-- rows in id order (what the unique index's bank prefix served). The value
-- index of signals keeps the exact types only: PDQ hashes are matched from
-- memory, never looked up by value
CREATE TEMP TABLE dedup_v1_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'content';
CREATE TABLE content_v2 (id {pk}, bank_id BIGINT NOT NULL REFERENCES banks(id) ON DELETE CASCADE,
  kind TEXT NOT NULL, dedup_key TEXT NOT NULL, note TEXT, metadata TEXT, enabled BIGINT NOT NULL,
  disabled_until BIGINT, added_by TEXT NOT NULL, source TEXT, created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL);
INSERT INTO content_v2 (id, bank_id, kind, dedup_key, note, metadata, enabled, disabled_until,
  added_by, source, created_at, updated_at)
  SELECT id, bank_id, kind, dedup_key, note, metadata, enabled, disabled_until, added_by, source,
  created_at, updated_at FROM content ORDER BY id;
DROP TABLE content;
ALTER TABLE content_v2 RENAME TO content;
DELETE FROM sqlite_sequence WHERE name IN ('content', 'content_v2');
INSERT INTO sqlite_sequence (name, seq) SELECT 'content',
  MAX(COALESCE((SELECT seq FROM dedup_v1_seq), 0), COALESCE((SELECT MAX(id) FROM content), 0));
DROP TABLE dedup_v1_seq;
CREATE INDEX content_bank ON content (bank_id, id);
CREATE INDEX content_disabled ON content (id) WHERE enabled = 0;
CREATE TRIGGER bank_counts_insert AFTER INSERT ON content BEGIN
  INSERT INTO bank_counts (bank_id, content, disabled)
    VALUES (NEW.bank_id, 1, CASE WHEN NEW.enabled = 0 THEN 1 ELSE 0 END)
    ON CONFLICT (bank_id) DO UPDATE SET content = content + 1,
      disabled = disabled + excluded.disabled;
END;
CREATE TRIGGER bank_counts_delete AFTER DELETE ON content BEGIN
  UPDATE bank_counts SET content = content - 1,
    disabled = disabled - CASE WHEN OLD.enabled = 0 THEN 1 ELSE 0 END
    WHERE bank_id = OLD.bank_id;
END;
CREATE TRIGGER bank_counts_update AFTER UPDATE OF enabled ON content
  WHEN (OLD.enabled = 0) <> (NEW.enabled = 0) BEGIN
  UPDATE bank_counts SET disabled = disabled + CASE WHEN NEW.enabled = 0 THEN 1 ELSE -1 END
    WHERE bank_id = NEW.bank_id;
END;
DROP INDEX signals_value;
CREATE INDEX signals_value ON signals (signal_type, value) WHERE signal_type <> 'pdq';
