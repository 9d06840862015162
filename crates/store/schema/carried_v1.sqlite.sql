-- A content row may carry its one signal, a PDQ hash, instead of a row of
-- signals (carried = 1: the hash is its de-duplication key after pdq:, and
-- carried_quality its quality), as the PostgreSQL version says at length.
-- The store's insert functions count a carried hash as a pdq signal when
-- they insert it (insert_counts v1), deleting one takes it from the
-- counters here, as deleting a signal row does
ALTER TABLE content ADD COLUMN carried BIGINT NOT NULL DEFAULT 0;
ALTER TABLE content ADD COLUMN carried_quality BIGINT;
CREATE TRIGGER carried_counts_delete AFTER DELETE ON content WHEN OLD.carried = 1 BEGIN
  UPDATE signal_counts SET n = n - 1 WHERE bank_id = OLD.bank_id AND signal_type = 'pdq';
END
