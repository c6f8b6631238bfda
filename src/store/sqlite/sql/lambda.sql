-- Lambdas (settings remembered from workers and configuration) and gates.

-- name: lambdaUpsert
INSERT INTO lambdas (name, config, updated_at) VALUES (@name, @config, @updatedAt)
ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at;

-- name: lambdaList
SELECT name, config, updated_at FROM lambdas ORDER BY name;

-- name: gateSet
INSERT INTO gates (lambda, collection, mode, updated_at) VALUES (@lambda, @collection, @mode, @now)
ON CONFLICT (lambda, collection) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at;

-- name: gateForget
DELETE FROM gates WHERE mode = 'open' AND updated_at < @before;

-- name: gateList
SELECT lambda, collection, mode FROM gates WHERE mode <> 'open' ORDER BY lambda, collection;

-- name: gateChangedSince
SELECT lambda, collection, mode, updated_at FROM gates WHERE updated_at >= @since;
