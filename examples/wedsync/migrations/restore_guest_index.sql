-- Undo drop_guest_index.sql: the same definition seed.sql creates, then fresh statistics.
CREATE INDEX IF NOT EXISTS guests_wedding_name_idx ON guests (wedding_id, name, id);
ANALYZE guests;
