-- Wake-ups between servers (LISTEN/NOTIFY). Channels belong to the database, not to a schema,
-- so conveyor_channel() (migration 0002) adds the schema to the name: two Conveyors in two
-- schemas of one database (tests, staging beside production) do not wake each other.

-- name: notify
-- $1 channel, $2 payload. pg_notify, not NOTIFY: a function call takes bind parameters, so it
-- can be prepared. PostgreSQL delivers it when the transaction commits, and never if it rolls
-- back, so a listener hears only of work that exists.
SELECT pg_notify(conveyor_channel($1::text), $2::text);
