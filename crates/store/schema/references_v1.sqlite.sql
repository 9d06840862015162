-- Nothing on SQLite: its foreign keys stay. PostgreSQL's version checks two
-- of them per statement instead, this version exists so that both backends
-- run the same number of versions of each module
SELECT 1
