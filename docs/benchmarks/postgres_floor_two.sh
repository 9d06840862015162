#!/bin/sh
# What PostgreSQL alone does with an import's statements from one session
# and from two at once: the content, signal and change rows of a batch in
# one statement (as docs/benchmarks/postgres_floor.sql, without ON
# CONFLICT, as an import batch first runs it), 2,048 lines a transaction,
# 400,000 lines into a new bank per run. With two sessions each takes half
# of the lines, as an import job's two connections do
# (crates/service/src/imports.rs, two_at_once). The statement triggers run
# (the bank's counter rows included: each session commits at once, so the
# counter row is held only from a statement's end to its commit).
# docs/benchmarks/serve.md, "Two batches at once on PostgreSQL", gives the
# figures. Benign data only: random hex strings.
#
# Run on a database whose schema a Bulwark binary made (any run of
# `bulwark bench import --database postgres://…/floor` on an empty
# database named floor leaves one):
#
#   sh docs/benchmarks/postgres_floor_two.sh floor [rounds]
set -eu
db=$1
rounds=${2:-2}
P="psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d $db"
$P <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS floor_lines;
CREATE UNLOGGED TABLE floor_lines AS
  SELECT g AS ord, md5(g::text || 'a') || md5(g::text || 'b') AS v
  FROM generate_series(1, 400000) g;
CREATE INDEX ON floor_lines (ord);
ANALYZE floor_lines;
CREATE OR REPLACE PROCEDURE floor_two(b BIGINT, first INT, n INT, step INT, tag TEXT)
LANGUAGE plpgsql AS $$
DECLARE i INT := first; done INT;
BEGIN
  WHILE i < first + n LOOP
    WITH ins AS (
      INSERT INTO content (bank_id, kind, dedup_key, note, metadata, enabled, disabled_until,
        added_by, source, created_at, updated_at)
      SELECT b, 'signals', 'pdq:' || tag || v, NULL, NULL, 1, NULL, 'floor', NULL, 0, 0
      FROM floor_lines WHERE ord > i AND ord <= LEAST(i + step, first + n) ORDER BY ord
      RETURNING id, dedup_key),
    sig AS (
      INSERT INTO signals (content_id, bank_id, signal_type, value, quality)
      SELECT id, b, 'pdq', substr(dedup_key, 5), 100 FROM ins),
    ch AS (INSERT INTO changes (bank_id, content_id, at) SELECT b, id, 0 FROM ins ORDER BY id)
    SELECT COUNT(*) INTO done FROM ins;
    i := i + step;
    COMMIT;
  END LOOP;
END $$;
SQL
now() { date +%s.%N; }
for r in $(seq 1 "$rounds"); do
  for sessions in 1 2; do
    tag="r$r-s$sessions-$(date +%s%N)"
    bank=$($P -At -c "INSERT INTO banks (name, threshold, enabled, description, created_at, updated_at)
      VALUES ('floor $tag', 31, 1, '', 0, 0) RETURNING id" | head -1)
    start=$(now)
    if [ "$sessions" = 1 ]; then
      $P -c "CALL floor_two($bank, 0, 400000, 2048, '$tag')"
    else
      $P -c "CALL floor_two($bank, 0, 200000, 2048, '$tag')" &
      $P -c "CALL floor_two($bank, 200000, 200000, 2048, '$tag')" &
      wait
    fi
    end=$(now)
    echo "round $r, $sessions session(s): $(echo "400000 / ($end - $start)" | bc) lines/s"
  done
done
$P -c "DROP PROCEDURE floor_two" -c "DROP TABLE floor_lines"
