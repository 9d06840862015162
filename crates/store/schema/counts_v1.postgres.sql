
CREATE TABLE bank_counts (bank_id BIGINT PRIMARY KEY REFERENCES banks(id) ON DELETE CASCADE,
  content BIGINT NOT NULL, disabled BIGINT NOT NULL);
INSERT INTO bank_counts (bank_id, content, disabled)
  SELECT b.id, (SELECT COUNT(*) FROM content c WHERE c.bank_id = b.id),
    (SELECT COUNT(*) FROM content c WHERE c.bank_id = b.id AND c.enabled = 0) FROM banks b;
CREATE FUNCTION bulwark_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bank_counts (bank_id, content, disabled)
    SELECT bank_id, COUNT(*), COUNT(*) FILTER (WHERE enabled = 0) FROM new_rows GROUP BY bank_id
    ON CONFLICT (bank_id) DO UPDATE SET content = bank_counts.content + excluded.content,
      disabled = bank_counts.disabled + excluded.disabled;
  RETURN NULL;
END $$;
CREATE FUNCTION bulwark_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE bank_counts b SET content = b.content - d.n, disabled = b.disabled - d.off
    FROM (SELECT bank_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE enabled = 0) AS off
          FROM old_rows GROUP BY bank_id) d
    WHERE b.bank_id = d.bank_id;
  RETURN NULL;
END $$;
CREATE FUNCTION bulwark_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE bank_counts b SET disabled = b.disabled + d.delta
    FROM (SELECT n.bank_id,
            SUM(CASE WHEN n.enabled = 0 THEN 1 ELSE 0 END - CASE WHEN o.enabled = 0 THEN 1 ELSE 0 END) AS delta
          FROM new_rows n JOIN old_rows o ON o.id = n.id GROUP BY n.bank_id) d
    WHERE b.bank_id = d.bank_id AND d.delta <> 0;
  RETURN NULL;
END $$;
CREATE TRIGGER bank_counts_insert AFTER INSERT ON content REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_counts_insert();
CREATE TRIGGER bank_counts_delete AFTER DELETE ON content REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_counts_delete();
CREATE TRIGGER bank_counts_update AFTER UPDATE ON content
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_counts_update();
