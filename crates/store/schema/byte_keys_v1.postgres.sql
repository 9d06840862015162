-- The keys an import looks up and inserts by compare as bytes (collation
-- "C"), whatever the database's collation: content's de-duplication key
-- (UNIQUE (bank_id, dedup_key), probed twice per inserted row, by the
-- conflict check and by the insert) and a signal's type and value (the
-- value index). Under a libc collation, even C.UTF-8, each comparison
-- copied both texts and called strcoll, and the comparisons were most of
-- the unique index's cost (docs/benchmarks/serve.md, "Byte-ordered keys
-- and one statement a batch on PostgreSQL"). Equality is the same under
-- both (every libc collation PostgreSQL 15 uses is deterministic), no
-- query orders by these columns, and SQLite compares them as bytes
-- already (BINARY). The table rows are not rewritten, their indexes are
-- rebuilt: a one-time cost when an existing store is upgraded
ALTER TABLE content ALTER COLUMN dedup_key TYPE TEXT COLLATE "C";
ALTER TABLE signals ALTER COLUMN signal_type TYPE TEXT COLLATE "C",
  ALTER COLUMN value TYPE TEXT COLLATE "C"
