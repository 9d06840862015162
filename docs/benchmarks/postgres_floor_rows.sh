#!/bin/sh
# What each row an import writes per line costs PostgreSQL: the import's
# statement (as docs/benchmarks/postgres_floor.sql, without ON CONFLICT, the
# bank's counters deferred as an import job defers them) run inside the
# server by a procedure, 2,048 lines a commit, 400,000 lines into a new bank
# per run, one session, in four forms taken in turn each round:
#   all      content, signal and change rows (what an import wrote before
#            store module carried);
#   no-sig   no signal rows (what it writes since: the content row carries
#            the hash, docs/benchmarks/serve.md, "PDQ list lines carry
#            their hash");
#   no-ch    one change row a batch instead of one a line;
#   content  content rows only (and one change row a batch).
# docs/benchmarks/serve.md, "The index journal's sync is not a single
# write", gives the figures. Benign data only: random hex strings.
#
# Run on a database whose schema a Bulwark binary made (any run of
# `bulwark bench import --database postgres://…/floor` on an empty database
# named floor leaves one):
#
#   sh docs/benchmarks/postgres_floor_rows.sh floor [rounds]
set -eu
db=$1
rounds=${2:-3}
P="psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d $db"
$P <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS floor_lines;
CREATE UNLOGGED TABLE floor_lines AS
  SELECT g AS ord, md5(g::text || 'a') || md5(g::text || 'b') AS v
  FROM generate_series(1, 400000) g;
CREATE INDEX ON floor_lines (ord);
ANALYZE floor_lines;
CREATE OR REPLACE PROCEDURE floor_rows(b BIGINT, n INT, step INT, tag TEXT, sig BOOL, per_line BOOL)
LANGUAGE plpgsql AS $$
DECLARE i INT := 0; done INT;
BEGIN
  WHILE i < n LOOP
    WITH ins AS (
      INSERT INTO content (bank_id, kind, dedup_key, note, metadata, enabled, disabled_until,
        added_by, source, created_at, updated_at)
      SELECT b, 'signals', 'pdq:' || tag || v, NULL, NULL, 1, NULL, 'floor', NULL, 0, 0
      FROM floor_lines WHERE ord > i AND ord <= LEAST(i + step, n) ORDER BY ord
      RETURNING id, dedup_key),
    s AS (
      INSERT INTO signals (content_id, bank_id, signal_type, value, quality)
      SELECT id, b, 'pdq', substr(dedup_key, 5), 100 FROM ins WHERE sig),
    ch AS (
      INSERT INTO changes (bank_id, content_id, at)
      SELECT b, id, 0 FROM ins WHERE per_line
      UNION ALL SELECT b, min(id), 0 FROM ins WHERE NOT per_line
      ORDER BY 2)
    SELECT COUNT(*) INTO done FROM ins;
    i := i + step;
    COMMIT;
  END LOOP;
END $$;
SQL
now() { date +%s.%N; }
for r in $(seq 1 "$rounds"); do
  for form in all no-sig no-ch content; do
    case $form in
      all) sig=true; per_line=true ;;
      no-sig) sig=false; per_line=true ;;
      no-ch) sig=true; per_line=false ;;
      content) sig=false; per_line=false ;;
    esac
    tag="r$r-$form-$(date +%s%N)"
    bank=$($P -At -c "INSERT INTO banks (name, threshold, enabled, description, created_at, updated_at)
      VALUES ('floor $tag', 31, 1, '', 0, 0) RETURNING id" | head -1)
    start=$(now)
    $P -c "SET bulwark.defer_counts = 'on'" -c "CALL floor_rows($bank, 400000, 2048, '$tag', $sig, $per_line)"
    end=$(now)
    echo "round $r, $form: $(echo "400000 / ($end - $start)" | bc) lines/s"
  done
done
$P -c "DROP PROCEDURE floor_rows" -c "DROP TABLE floor_lines"
