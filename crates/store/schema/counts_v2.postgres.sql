
CREATE TABLE signal_counts (bank_id BIGINT NOT NULL REFERENCES banks(id) ON DELETE CASCADE,
  signal_type TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (bank_id, signal_type));
INSERT INTO signal_counts (bank_id, signal_type, n)
  SELECT s.bank_id, s.signal_type, COUNT(*) FROM signals s
  WHERE s.bank_id IN (SELECT id FROM banks) GROUP BY s.bank_id, s.signal_type;
CREATE FUNCTION bulwark_signal_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO signal_counts (bank_id, signal_type, n)
    SELECT bank_id, signal_type, COUNT(*) FROM new_rows
    GROUP BY bank_id, signal_type ORDER BY bank_id, signal_type
    ON CONFLICT (bank_id, signal_type) DO UPDATE SET n = signal_counts.n + excluded.n;
  RETURN NULL;
END $$;
CREATE FUNCTION bulwark_signal_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE signal_counts c SET n = c.n - d.n
    FROM (SELECT bank_id, signal_type, COUNT(*) AS n FROM old_rows
          GROUP BY bank_id, signal_type) d
    WHERE c.bank_id = d.bank_id AND c.signal_type = d.signal_type;
  RETURN NULL;
END $$;
CREATE TRIGGER signal_counts_insert AFTER INSERT ON signals REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_signal_counts_insert();
CREATE TRIGGER signal_counts_delete AFTER DELETE ON signals REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_signal_counts_delete();
