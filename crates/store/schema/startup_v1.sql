-- Disabled content, for the catalog's start-up read (`WHERE enabled = 0`
-- scanned the whole content table: seconds at 10M rows). Partial: it holds
-- the disabled rows only, so enabling and adding content rarely touch it.
CREATE INDEX content_disabled ON content (id) WHERE enabled = 0;
