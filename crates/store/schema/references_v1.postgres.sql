-- Two references are checked once per statement instead of once per row:
-- content's bank and a signal's content. As foreign keys, PostgreSQL ran a
-- query (with its own executor) per inserted row for each, a quarter of an
-- import's server time (docs/benchmarks/serve.md, "Two references checked
-- per statement on PostgreSQL"). The other foreign keys stay.
--
-- What the foreign keys did, and what does it now:
-- - an inserted content row names a bank that exists, and that bank cannot
--   be deleted until the inserting transaction ends: per statement, each
--   named bank is locked FOR KEY SHARE, as the foreign key's check locked
--   it, and a missing one is an error (SQLSTATE 23503, as before),
-- - an inserted signal row names content that exists: checked per
--   statement. It takes no lock: the store writes a signal only in the
--   transaction that writes its content (insert_content, insert_contents,
--   bulk_insert_pdq), and no other transaction can delete a row it cannot
--   see yet. Locking those rows cost as much as the per-row checks saved,
-- - deleting a bank deletes its content, and deleting content deletes its
--   signals (ON DELETE CASCADE): one statement per deleting statement,
-- - the keys of these references never change: a change of a bank id, a
--   content id, a content row's bank or a signal's content is refused. The
--   foreign keys refused the first two while referenced and let a row move
--   to another bank or content that exists, which no code does.
ALTER TABLE signals DROP CONSTRAINT IF EXISTS signals_content_id_fkey;
ALTER TABLE content DROP CONSTRAINT IF EXISTS content_bank_id_fkey;
CREATE FUNCTION bulwark_content_bank_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE named BIGINT; held BIGINT;
BEGIN
  SELECT COUNT(DISTINCT bank_id) INTO named FROM new_rows;
  SELECT COUNT(*) INTO held
    FROM (SELECT 1 FROM banks WHERE id IN (SELECT bank_id FROM new_rows) FOR KEY SHARE) b;
  IF held < named THEN
    RAISE EXCEPTION 'content names a bank that does not exist'
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION bulwark_signals_content_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows n
             WHERE NOT EXISTS (SELECT 1 FROM content c WHERE c.id = n.content_id)) THEN
    RAISE EXCEPTION 'a signal names content that does not exist'
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION bulwark_banks_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM content WHERE bank_id IN (SELECT id FROM old_rows);
  RETURN NULL;
END $$;
CREATE FUNCTION bulwark_content_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM signals WHERE content_id IN (SELECT id FROM old_rows);
  RETURN NULL;
END $$;
CREATE FUNCTION bulwark_reference_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '%.% is referenced and does not change', TG_TABLE_NAME, TG_ARGV[0]
    USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER content_bank_check AFTER INSERT ON content REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_content_bank_check();
CREATE TRIGGER signals_content_check AFTER INSERT ON signals REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_signals_content_check();
CREATE TRIGGER banks_cascade AFTER DELETE ON banks REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_banks_cascade();
CREATE TRIGGER content_cascade AFTER DELETE ON content REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_content_cascade();
CREATE TRIGGER banks_id_fixed BEFORE UPDATE OF id ON banks FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION bulwark_reference_fixed('id');
CREATE TRIGGER content_id_fixed BEFORE UPDATE OF id ON content FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION bulwark_reference_fixed('id');
CREATE TRIGGER content_bank_fixed BEFORE UPDATE OF bank_id ON content FOR EACH ROW
  WHEN (OLD.bank_id IS DISTINCT FROM NEW.bank_id) EXECUTE FUNCTION bulwark_reference_fixed('bank_id');
CREATE TRIGGER signals_content_fixed BEFORE UPDATE OF content_id ON signals FOR EACH ROW
  WHEN (OLD.content_id IS DISTINCT FROM NEW.content_id) EXECUTE FUNCTION bulwark_reference_fixed('content_id')
