-- Leases for singleton duties, and the cron bookkeeping that one of them keeps.

-- name: leaseTry
-- $1 name, $2 holder, $3 now, $4 until
INSERT INTO leases (name, holder, expires_at) VALUES ($1::text, $2::text, $4::bigint)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
 WHERE leases.holder = excluded.holder OR leases.expires_at <= $3::bigint
RETURNING holder;

-- name: leaseRelease
-- $1 name, $2 holder
DELETE FROM leases WHERE name = $1::text AND holder = $2::text;

-- name: cronGet
-- $1 lambda
SELECT last_at FROM cron_state WHERE lambda = $1::text;

-- name: cronSet
-- $1 lambda, $2 last at
INSERT INTO cron_state (lambda, last_at) VALUES ($1::text, $2::bigint)
ON CONFLICT (lambda) DO UPDATE SET last_at = excluded.last_at WHERE excluded.last_at > cron_state.last_at;
