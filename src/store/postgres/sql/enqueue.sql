-- Transactional enqueue from an application's own connection (store/postgres/transactional-enqueue.ts):
-- a call of conveyor_enqueue (migration 0002), not a query of the servers.

-- name: taskEnqueueCall
-- $1 lambda, $2 payload (JSON text), $3 run at, $4 delay ms, $5 priority, $6 idempotency key,
-- $7 collection, $8 key, $9 max attempts, $10 timeout ms. Named arguments, so the call reads
-- the same as the documented signature; a NULL means "the lambda's default" (run_at: now). The
-- delay is added on the database's clock, the one conveyor_enqueue reads "now" from.
SELECT conveyor_enqueue(
         lambda => $1::text,
         payload => $2::text::jsonb,
         run_at => coalesce($3::timestamptz, clock_timestamp() + make_interval(secs => $4::float8 / 1000)),
         priority => $5::int,
         idempotency_key => $6::text,
         collection => $7::text,
         key => $8::text,
         max_attempts => $9::int,
         timeout_ms => $10::bigint) AS id;
