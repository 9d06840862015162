-- PostgreSQL keeps content's UNIQUE (bank_id, dedup_key): several replicas
-- may write to one database, and the in-memory check of SQLite
-- (crates/store/src/dedup.rs) holds for one writer only. The value index
-- of signals keeps the exact types only, as on SQLite
DROP INDEX signals_value;
CREATE INDEX signals_value ON signals (signal_type, value) WHERE signal_type <> 'pdq';
