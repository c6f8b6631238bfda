-- Transactional enqueue (conveyor_enqueue) is a PostgreSQL function: applications on SQLite
-- share no database transaction with Conveyor's server. This file changes nothing; it keeps
-- the migration numbers and names of both dialects in step (test/store/sql-names.test.ts), so
-- version 2 means the same on either store.
SELECT 1;
