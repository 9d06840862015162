-- What PostgreSQL alone needs to import PDQ lines into Bulwark's schema: the
-- import statement's work (content, signals and change rows, the unique
-- index's conflict check, the triggers), batch by batch, run inside the
-- server by a procedure. No client: no parsing, no round trips, no index
-- update in Bulwark. docs/benchmarks/serve.md, "One statement a batch on
-- PostgreSQL, and two references checked per statement", gives the figures.
--
-- Run on a database whose schema a Bulwark binary made (any run of
-- `bulwark bench import --database postgres://…/floor` on an empty database
-- named floor leaves one), then:
--
--   psql -h 127.0.0.1 -U postgres -d floor -f docs/benchmarks/postgres_floor.sql
--
-- It prints the time of each 200,000-line step, into a bank of its own, as
-- the table grows to 1,000,000 rows. Benign data only: random hex strings.
--
-- The statement has ON CONFLICT, as the import's has when the bank holds
-- some of a batch's keys. The import first tries it without (the store's
-- INSERT_FRESH_PLAIN), which this measures with the clause taken out:
--
--   sed 's/ON CONFLICT (bank_id, dedup_key) DO NOTHING //' \
--     docs/benchmarks/postgres_floor.sql | psql -h 127.0.0.1 -U postgres -d floor
--
-- (Until 2026-12-04 each step's last batch ran past the step's end, so the
-- next step began with about 700 keys the bank held.)
\timing off
SET client_min_messages = warning;
DROP TABLE IF EXISTS floor_lines;
CREATE UNLOGGED TABLE floor_lines AS
  SELECT g AS ord, md5(g::text || 'a') || md5(g::text || 'b') AS v
  FROM generate_series(1, 1000000) g;
CREATE INDEX ON floor_lines (ord);
ANALYZE floor_lines;
INSERT INTO banks (name, threshold, enabled, description, created_at, updated_at)
  VALUES ('floor ' || clock_timestamp()::text, 31, 1, '', 0, 0) RETURNING id AS bank \gset
CREATE OR REPLACE PROCEDURE floor_import(b BIGINT, first INT, n INT, step INT)
LANGUAGE plpgsql AS $$
DECLARE i INT := first; done INT;
BEGIN
  WHILE i < first + n LOOP
    WITH ins AS (
      INSERT INTO content (bank_id, kind, dedup_key, note, metadata, enabled, disabled_until,
        added_by, source, created_at, updated_at)
      SELECT b, 'signals', 'pdq:' || v, NULL, NULL, 1, NULL, 'floor', NULL, 0, 0
      FROM floor_lines WHERE ord > i AND ord <= LEAST(i + step, first + n) ORDER BY ord
      ON CONFLICT (bank_id, dedup_key) DO NOTHING RETURNING id, dedup_key),
    sig AS (
      INSERT INTO signals (content_id, bank_id, signal_type, value, quality)
      SELECT id, b, 'pdq', substr(dedup_key, 5), 100 FROM ins),
    ch AS (INSERT INTO changes (bank_id, content_id, at) SELECT b, id, 0 FROM ins ORDER BY id)
    SELECT COUNT(*) INTO done FROM ins;
    i := i + step;
    COMMIT;
  END LOOP;
END $$;
\timing on
CALL floor_import(:bank, 0, 200000, 2048);
CALL floor_import(:bank, 200000, 200000, 2048);
CALL floor_import(:bank, 400000, 200000, 2048);
CALL floor_import(:bank, 600000, 200000, 2048);
CALL floor_import(:bank, 800000, 200000, 2048);
\timing off
DROP PROCEDURE floor_import;
DROP TABLE floor_lines;
