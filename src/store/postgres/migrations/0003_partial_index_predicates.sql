-- The SQLite store respelled two partial index predicates without IN lists in its migration 3
-- (there an IN list costs every state change a temporary table). PostgreSQL evaluates
-- `state IN (...)` as an array comparison with no such cost, so this file changes nothing; it
-- keeps the migration numbers and names of both dialects in step (test/store/sql-names.test.ts).
SELECT 1;
