-- Leases for singleton duties, and the cron bookkeeping that one of them keeps.

-- name: leaseTry
INSERT INTO leases (name, holder, expires_at) VALUES (@name, @holder, @until)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
 WHERE leases.holder = excluded.holder OR leases.expires_at <= @now
RETURNING holder;

-- name: leaseRelease
DELETE FROM leases WHERE name = @name AND holder = @holder;

-- name: cronGet
SELECT last_at FROM cron_state WHERE lambda = @lambda;

-- name: cronSet
INSERT INTO cron_state (lambda, last_at) VALUES (@lambda, @lastAt)
ON CONFLICT (lambda) DO UPDATE SET last_at = excluded.last_at WHERE excluded.last_at > cron_state.last_at;
