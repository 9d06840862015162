
CREATE TABLE console_open (item TEXT PRIMARY KEY, queue TEXT NOT NULL, n BIGINT NOT NULL,
  s TEXT NOT NULL, t BIGINT NOT NULL);
CREATE INDEX console_open_queue ON console_open (queue, n, s);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT 'report:' || r.id, 'report', r.id, '', r.received_at FROM reports r WHERE r.status = 'queued'
  AND NOT EXISTS (SELECT 1 FROM console_decisions d WHERE d.item = 'report:' || r.id);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT 'match:' || m.id, 'match', m.id, '', m.at FROM console_matches m
  WHERE NOT EXISTS (SELECT 1 FROM console_decisions d WHERE d.item = 'match:' || m.id);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT 'account:' || a.account, 'account', COALESCE(a.flagged_at, a.updated_at), a.account,
    COALESCE(a.flagged_at, a.updated_at) FROM psi_accounts a WHERE a.flagged = 1
  AND NOT EXISTS (SELECT 1 FROM console_decisions d WHERE d.item = 'account:' || a.account);
INSERT INTO console_open (item, queue, n, s, t)
  SELECT e.item, 'escalated', e.queued_at, e.item, e.queued_at FROM console_decisions e
  WHERE e.decision = 'escalate'
  AND e.id = (SELECT MIN(x.id) FROM console_decisions x WHERE x.item = e.item AND x.decision = 'escalate')
  AND NOT EXISTS (SELECT 1 FROM console_decisions f WHERE f.item = e.item
    AND f.decision IN ('confirm', 'dismiss', 'clear', 'add_to_bank'))
  AND (e.item NOT LIKE 'account:%'
    OR EXISTS (SELECT 1 FROM psi_accounts a WHERE a.flagged = 1 AND 'account:' || a.account = e.item))
