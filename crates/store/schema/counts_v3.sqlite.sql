-- Nothing on SQLite: its imports write from one connection at a time and
-- count in the store's insert functions. PostgreSQL's version lets an
-- import batch add to the counters itself, after its statement. This
-- version exists so that both backends run the same number of versions of
-- each module
SELECT 1
