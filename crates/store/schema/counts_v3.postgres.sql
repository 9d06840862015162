-- The insert counters can be left to the inserting transaction: with
-- bulwark.defer_counts set to on (SET LOCAL), an insert statement does not
-- add to bank_counts and signal_counts, and the transaction adds its rows
-- itself before it commits (crates/store/src/imports.rs, add_counts). An
-- import job on two connections does so: the counter rows are then locked
-- in the order its batches commit, not the order their statements end, so
-- a later batch never holds a counter an earlier one waits for while the
-- job waits for the earlier one to commit. Deletes and updates count as
-- before
CREATE OR REPLACE FUNCTION bulwark_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('bulwark.defer_counts', true) = 'on' THEN
    RETURN NULL;
  END IF;
  INSERT INTO bank_counts (bank_id, content, disabled)
    SELECT bank_id, COUNT(*), COUNT(*) FILTER (WHERE enabled = 0) FROM new_rows GROUP BY bank_id
    ON CONFLICT (bank_id) DO UPDATE SET content = bank_counts.content + excluded.content,
      disabled = bank_counts.disabled + excluded.disabled;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION bulwark_signal_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('bulwark.defer_counts', true) = 'on' THEN
    RETURN NULL;
  END IF;
  INSERT INTO signal_counts (bank_id, signal_type, n)
    SELECT bank_id, signal_type, COUNT(*) FROM new_rows
    GROUP BY bank_id, signal_type ORDER BY bank_id, signal_type
    ON CONFLICT (bank_id, signal_type) DO UPDATE SET n = signal_counts.n + excluded.n;
  RETURN NULL;
END $$
