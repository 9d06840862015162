
CREATE TRIGGER console_open_report AFTER INSERT ON reports WHEN NEW.status = 'queued' BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('report:' || NEW.id, 'report', NEW.id, '', NEW.received_at); END;
CREATE TRIGGER console_close_report AFTER DELETE ON reports BEGIN
  DELETE FROM console_open WHERE item = 'report:' || OLD.id; END;
CREATE TRIGGER console_open_match AFTER INSERT ON console_matches BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('match:' || NEW.id, 'match', NEW.id, '', NEW.at); END;
CREATE TRIGGER console_close_match AFTER DELETE ON console_matches BEGIN
  DELETE FROM console_open WHERE item = 'match:' || OLD.id; END;
CREATE TRIGGER console_open_account AFTER INSERT ON psi_accounts WHEN NEW.flagged = 1 BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('account:' || NEW.account, 'account', COALESCE(NEW.flagged_at, NEW.updated_at), NEW.account,
    COALESCE(NEW.flagged_at, NEW.updated_at)); END;
CREATE TRIGGER console_reopen_account AFTER UPDATE OF flagged ON psi_accounts
  WHEN NEW.flagged = 1 AND OLD.flagged <> 1 BEGIN
  INSERT OR IGNORE INTO console_open (item, queue, n, s, t)
  VALUES ('account:' || NEW.account, 'account', COALESCE(NEW.flagged_at, NEW.updated_at), NEW.account,
    COALESCE(NEW.flagged_at, NEW.updated_at)); END;
CREATE TRIGGER console_unflag_account AFTER UPDATE OF flagged ON psi_accounts
  WHEN NEW.flagged <> 1 AND OLD.flagged = 1 BEGIN
  DELETE FROM console_open WHERE item = 'account:' || NEW.account; END;
CREATE TRIGGER console_close_account AFTER DELETE ON psi_accounts BEGIN
  DELETE FROM console_open WHERE item = 'account:' || OLD.account; END
