-- A content row may carry its one signal instead of a row of signals: an
-- item of kind signals whose only signal is a PDQ hash and whose
-- de-duplication key is that hash (pdq:<hex>), as each line of a PDQ list
-- is. carried = 1 says so: the hash is the key after its four-character
-- prefix and carried_quality is its quality (NULL when the list gave
-- none). Such an item has no row in signals. Its key is in the unique
-- index already, and the signal row was a third of what PostgreSQL did
-- for each imported line (docs/benchmarks/serve.md, "PDQ list lines carry
-- their hash"). Readers of an item's signals read both (the store's
-- signals_of, signals_of_many, carried_page, export_page and the index's
-- reads). The counters count a carried hash as a signal of type pdq: the
-- content triggers below add and take it, and an import job that defers
-- its counts adds its own (imports::add_counts). Existing rows keep their
-- signal rows (carried = 0)
ALTER TABLE content ADD COLUMN carried BIGINT NOT NULL DEFAULT 0;
ALTER TABLE content ADD COLUMN carried_quality BIGINT;
CREATE OR REPLACE FUNCTION bulwark_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('bulwark.defer_counts', true) = 'on' THEN
    RETURN NULL;
  END IF;
  INSERT INTO bank_counts (bank_id, content, disabled)
    SELECT bank_id, COUNT(*), COUNT(*) FILTER (WHERE enabled = 0) FROM new_rows GROUP BY bank_id
    ON CONFLICT (bank_id) DO UPDATE SET content = bank_counts.content + excluded.content,
      disabled = bank_counts.disabled + excluded.disabled;
  INSERT INTO signal_counts (bank_id, signal_type, n)
    SELECT bank_id, 'pdq', COUNT(*) FROM new_rows WHERE carried = 1
    GROUP BY bank_id ORDER BY bank_id
    ON CONFLICT (bank_id, signal_type) DO UPDATE SET n = signal_counts.n + excluded.n;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION bulwark_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE bank_counts b SET content = b.content - d.n, disabled = b.disabled - d.off
    FROM (SELECT bank_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE enabled = 0) AS off
          FROM old_rows GROUP BY bank_id) d
    WHERE b.bank_id = d.bank_id;
  UPDATE signal_counts c SET n = c.n - d.n
    FROM (SELECT bank_id, COUNT(*) AS n FROM old_rows WHERE carried = 1 GROUP BY bank_id) d
    WHERE c.bank_id = d.bank_id AND c.signal_type = 'pdq';
  RETURN NULL;
END $$
