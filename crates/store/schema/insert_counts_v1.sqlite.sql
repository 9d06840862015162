-- The insert triggers of the counters go. Each ran an upsert of its bank's
-- counter row for every inserted row, a tenth of a million-line import
-- (docs/benchmarks/serve.md, "Counters per call, not per row, on SQLite").
-- The store's insert functions (insert_content, insert_contents,
-- bulk_insert_pdq: the only statements that insert content or signals) add
-- to the counters once per call, in the same transaction. The triggers of
-- deletes and of changes to enabled stay. This runs after the dedup module,
-- whose rebuild of content made its insert trigger again
DROP TRIGGER IF EXISTS bank_counts_insert;
DROP TRIGGER IF EXISTS signal_counts_insert
