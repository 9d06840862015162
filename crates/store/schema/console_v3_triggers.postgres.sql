
CREATE FUNCTION console_open_report() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM console_open WHERE item = 'report:' || OLD.id;
  ELSIF NEW.status = 'queued' THEN
    INSERT INTO console_open (item, queue, n, s, t)
    VALUES ('report:' || NEW.id, 'report', NEW.id, '', NEW.received_at) ON CONFLICT (item) DO NOTHING;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER console_open_report AFTER INSERT OR DELETE ON reports
  FOR EACH ROW EXECUTE FUNCTION console_open_report();
CREATE FUNCTION console_open_match() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM console_open WHERE item = 'match:' || OLD.id;
  ELSE
    INSERT INTO console_open (item, queue, n, s, t)
    VALUES ('match:' || NEW.id, 'match', NEW.id, '', NEW.at) ON CONFLICT (item) DO NOTHING;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER console_open_match AFTER INSERT OR DELETE ON console_matches
  FOR EACH ROW EXECUTE FUNCTION console_open_match();
CREATE FUNCTION console_open_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM console_open WHERE item = 'account:' || OLD.account;
  ELSIF NEW.flagged = 1 AND (TG_OP = 'INSERT' OR OLD.flagged <> 1) THEN
    INSERT INTO console_open (item, queue, n, s, t)
    VALUES ('account:' || NEW.account, 'account', COALESCE(NEW.flagged_at, NEW.updated_at), NEW.account,
      COALESCE(NEW.flagged_at, NEW.updated_at)) ON CONFLICT (item) DO NOTHING;
  ELSIF TG_OP = 'UPDATE' AND NEW.flagged <> 1 AND OLD.flagged = 1 THEN
    DELETE FROM console_open WHERE item = 'account:' || NEW.account;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER console_open_account AFTER INSERT OR UPDATE OF flagged OR DELETE ON psi_accounts
  FOR EACH ROW EXECUTE FUNCTION console_open_account()
