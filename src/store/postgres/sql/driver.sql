-- The driver's own statements (transactions, durability, migrations), not queries of the
-- Queries interface: each dialect does these its own way (SQLite with pragmas and BEGIN
-- IMMEDIATE), so test/store/sql-names.test.ts leaves this file out of its comparison.

-- name: ping
SELECT 1;

-- name: txBegin
-- The first statement of every write transaction: SET LOCAL as function calls, so it can be a
-- prepared statement. Every write of the store reaches its rows by key (a batch of ids probing
-- the primary key, a claim walking a partial index), but on a queue table the statistics
-- rarely match the rows: states move by the thousand between two ANALYZEs, and a new table
-- has none. Taking a batch's 500 ids for more work than the ~100 rows it expected in CLAIMED
-- or PROCESSING, the planner read the whole table for each completion batch instead, by hash
-- join, materialized or nested (auto_explain in the bulk benchmark: 20,000 rows read to update
-- 500, 5-13 ms a batch). With sequential scans priced out for the transaction, the nested loop
-- over the index is the plan whatever the statistics say. Reads run outside transactions and
-- keep the planner's choice (a count wants the full scan).
SELECT set_config('enable_seqscan', 'off', true);

-- name: txBeginAsyncCommit
-- txBegin, and this transaction's COMMIT returns without waiting for the WAL flush (see
-- PostgresDriver.transaction).
SELECT set_config('enable_seqscan', 'off', true), set_config('synchronous_commit', 'off', true);

-- name: walFlush
-- A WAL record in its own transaction: its COMMIT (synchronous_commit on) waits until the WAL
-- is flushed up to it, and so past every commit before it. A transaction that wrote no WAL of
-- its own (SELECT pg_current_xact_id(), for one) commits without a flush, so that shortcut
-- would not do. pg_logical_emit_message is executable by every role and needs no table.
SELECT pg_logical_emit_message(true, 'conveyor.durable', '') AS lsn;

-- name: migrationLock
-- $1 lock name. Held until the migrating transaction ends: servers starting together apply
-- each migration once, and one schema's migration does not wait for another's.
SELECT pg_advisory_xact_lock(hashtext($1::text));

-- name: schemaCreateStatement
-- $1 schema. Identifiers cannot be bind parameters: format's %I quotes the name for the
-- CREATE SCHEMA the driver runs next.
SELECT format('CREATE SCHEMA IF NOT EXISTS %I', $1::text) AS ddl;

-- name: migrationTable
CREATE TABLE IF NOT EXISTS conveyor_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT   NOT NULL,
  applied_at BIGINT NOT NULL
);

-- name: migrationList
SELECT version FROM conveyor_migrations;

-- name: migrationRecord
-- $1 version, $2 name
INSERT INTO conveyor_migrations (version, name, applied_at)
VALUES ($1::int, $2::text, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);

-- name: schemaDropStatement
-- $1 schema. For tests and benchmarks that give each run a schema of its own.
SELECT format('DROP SCHEMA IF EXISTS %I CASCADE', $1::text) AS ddl;

-- name: txNoStatementTimeout
-- Migrations may rebuild indexes on big tables and wait for another server's migration lock:
-- the connections' statement_timeout (PostgresDriver) does not apply to them.
SELECT set_config('statement_timeout', '0', true);

-- name: notifyChannel
-- $1 channel: the name this store's notifications on that channel travel under (see
-- conveyor_channel in migration 0002), for LISTEN.
SELECT conveyor_channel($1::text) AS channel;
