
CREATE TABLE signal_counts (bank_id BIGINT NOT NULL REFERENCES banks(id) ON DELETE CASCADE,
  signal_type TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (bank_id, signal_type)) WITHOUT ROWID;
INSERT INTO signal_counts (bank_id, signal_type, n)
  SELECT s.bank_id, s.signal_type, COUNT(*) FROM signals s
  WHERE s.bank_id IN (SELECT id FROM banks) GROUP BY s.bank_id, s.signal_type;
CREATE TRIGGER signal_counts_insert AFTER INSERT ON signals BEGIN
  INSERT INTO signal_counts (bank_id, signal_type, n) VALUES (NEW.bank_id, NEW.signal_type, 1)
    ON CONFLICT (bank_id, signal_type) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER signal_counts_delete AFTER DELETE ON signals BEGIN
  UPDATE signal_counts SET n = n - 1
    WHERE bank_id = OLD.bank_id AND signal_type = OLD.signal_type;
END;
