#!/usr/bin/env python3
"""What SQLite itself allows for a bank import, without Bulwark.

Writes N random PDQ hashes into the service's content, signals and changes
tables (same columns and indexes as crates/store/schema/core_v1.sql), B rows
per transaction, WAL with synchronous=NORMAL as the import job's connection
uses, and prints the rate per 200,000 lines. Python's per-row cost is small
next to SQLite's here; the point is how the rate falls as the two indexes
keyed by the hash (content's UNIQUE (bank_id, dedup_key), signals_value)
grow: each batch dirties about one page of each per line once they are
larger than the batch, and WAL mode writes whole pages.

    python3 docs/benchmarks/sqlite_import_ceiling.py N B CACHE_KIB AUTOCHECKPOINT_PAGES [INDEXES]
    python3 docs/benchmarks/sqlite_import_ceiling.py 1000000 2000 65536 1000
    python3 docs/benchmarks/sqlite_import_ceiling.py 1000000 2000 65536 1000 none

INDEXES is `hash` (default: the schema as shipped) or `none`: the same
tables without the two indexes keyed by the hash, to show what a schema
that deduplicates elsewhere (against the in-memory index) would allow.
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

n, batch, cache_kib, autocheckpoint = (int(a) for a in sys.argv[1:5])
indexes = sys.argv[5] if len(sys.argv) > 5 else "hash"
if indexes not in ("hash", "none"):
    sys.exit("INDEXES must be `hash` or `none`")
path = os.path.join(tempfile.mkdtemp(), "ceiling.db")
db = sqlite3.connect(path, isolation_level=None)
for pragma in ("journal_mode = WAL", "synchronous = NORMAL", f"cache_size = -{cache_kib}",
               f"wal_autocheckpoint = {autocheckpoint}"):
    db.execute("PRAGMA " + pragma)
unique = ",\n  UNIQUE (bank_id, dedup_key)" if indexes == "hash" else ""
value_index = "CREATE INDEX signals_value ON signals (signal_type, value);" if indexes == "hash" else ""
db.executescript(f"""
CREATE TABLE content (id INTEGER PRIMARY KEY, bank_id BIGINT NOT NULL, kind TEXT NOT NULL,
  dedup_key TEXT NOT NULL, note TEXT, metadata TEXT, enabled BIGINT NOT NULL, disabled_until BIGINT,
  added_by TEXT NOT NULL, source TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL{unique});
CREATE TABLE signals (id INTEGER PRIMARY KEY, content_id BIGINT NOT NULL, bank_id BIGINT NOT NULL,
  signal_type TEXT NOT NULL, value TEXT NOT NULL, quality BIGINT);
CREATE INDEX signals_content ON signals (content_id);
{value_index}
CREATE TABLE changes (seq INTEGER PRIMARY KEY, bank_id BIGINT, content_id BIGINT, at BIGINT NOT NULL);
""")
rng = random.Random(1)
start = last = time.time()
next_id = 1
for b in range(n // batch):
    hashes = ["%064x" % rng.getrandbits(256) for _ in range(batch)]
    ids = range(next_id, next_id + batch)
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO content (id, bank_id, kind, dedup_key, enabled, added_by, created_at,"
                   " updated_at) VALUES (?, 1, 'signals', ?, 1, 'bench', 0, 0)",
                   [(i, "pdq:" + h) for i, h in zip(ids, hashes)])
    db.executemany("INSERT INTO signals (content_id, bank_id, signal_type, value) VALUES (?, 1, 'pdq', ?)",
                   list(zip(ids, hashes)))
    db.executemany("INSERT INTO changes (bank_id, content_id, at) VALUES (1, ?, 0)", [(i,) for i in ids])
    db.execute("COMMIT")
    next_id += batch
    done = (b + 1) * batch
    if done % 200_000 == 0:
        now = time.time()
        wal = os.path.getsize(path + "-wal") >> 20
        print(f"{done:>9} lines: {200_000 / (now - last):7.0f} lines/s over the last 200,000 (WAL file {wal} MiB)")
        last = now
print(f"all {n} lines: {n / (time.time() - start):.0f} lines/s")
