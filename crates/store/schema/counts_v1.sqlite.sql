
CREATE TABLE bank_counts (bank_id BIGINT PRIMARY KEY REFERENCES banks(id) ON DELETE CASCADE,
  content BIGINT NOT NULL, disabled BIGINT NOT NULL);
INSERT INTO bank_counts (bank_id, content, disabled)
  SELECT b.id, (SELECT COUNT(*) FROM content c WHERE c.bank_id = b.id),
    (SELECT COUNT(*) FROM content c WHERE c.bank_id = b.id AND c.enabled = 0) FROM banks b;
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
