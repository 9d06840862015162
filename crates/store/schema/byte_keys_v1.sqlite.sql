-- Nothing on SQLite: it compares text as bytes (BINARY) already.
-- PostgreSQL's version gives the import's keys that collation, this version
-- exists so that both backends run the same number of versions of each
-- module
SELECT 1
