-- Regression switch: drop the index behind GET /api/guest-lists/{wedding_id}.
-- Afterwards queries.GUESTS_BY_WEDDING plans as a (Parallel) Seq Scan over ~300,000 guests plus a
-- Sort (about 0.1 ms -> 30 ms per query on a laptop), which perfgate's EXPLAIN and latency budgets
-- should both catch. Undo with restore_guest_index.sql.
DROP INDEX IF EXISTS guests_wedding_name_idx;
