-- Lambdas (settings remembered from workers and configuration) and gates.

-- name: lambdaUpsert
INSERT INTO lambdas (name, config, updated_at) VALUES (@name, @config, @updatedAt)
ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at;

-- name: lambdaList
SELECT name, config, updated_at FROM lambdas ORDER BY name;

-- name: gateSet
INSERT INTO gates (lambda, collection, mode, updated_at) VALUES (@lambda, @collection, @mode, @now)
ON CONFLICT (lambda, collection) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at;

-- name: gateDelete
DELETE FROM gates WHERE lambda = @lambda AND collection = @collection;

-- name: gateList
SELECT lambda, collection, mode FROM gates ORDER BY lambda, collection;
