-- Lambdas (settings remembered from workers and configuration) and gates.

-- name: lambdaUpsert
-- $1 names, $2 configs (JSON text), $3 updated ats. One statement for the batch; DISTINCT ON
-- keeps the last row of a repeated name (as SQLite's row-by-row upserts would), because one
-- INSERT ... ON CONFLICT DO UPDATE may not touch a row twice.
INSERT INTO lambdas (name, config, updated_at)
SELECT DISTINCT ON (name) name, config, updated_at
  FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS v(name, config, updated_at, n)
 ORDER BY name, n DESC
ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at;

-- name: lambdaList
SELECT name, config, updated_at FROM lambdas ORDER BY name;

-- name: gateSet
-- $1 lambda, $2 collection, $3 mode, $4 now
INSERT INTO gates (lambda, collection, mode, updated_at) VALUES ($1::text, $2::text, $3::text, $4::bigint)
ON CONFLICT (lambda, collection) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at;

-- name: gateForget
-- $1 before. Opened gates stay on record a while, for the second pass over their tasks.
DELETE FROM gates WHERE mode = 'open' AND updated_at < $1::bigint;

-- name: gateList
SELECT lambda, collection, mode FROM gates WHERE mode <> 'open' ORDER BY lambda, collection;

-- name: gateChangedSince
-- $1 since
SELECT lambda, collection, mode, updated_at FROM gates WHERE updated_at >= $1::bigint;
