-- Transactional enqueue: an application creates a task inside its own transaction, so the task
-- exists if and only if the business write beside it commits (no task for a rolled-back order,
-- no order without its task; no dual write to reconcile).
--
--   BEGIN;
--   INSERT INTO orders (id, total) VALUES (42, 99.50);
--   SELECT conveyor_enqueue('send-receipt', '{"order": 42}');
--   COMMIT;
--
-- The functions run with the search_path of the migration (SET search_path below), so they find
-- Conveyor's tables whatever the caller's search_path; a caller outside the schema names it:
-- SELECT my_schema.conveyor_enqueue(...). docs/operations.md has the full guide.
--
-- Functions of this file are history like any migration: a later change gets a later migration
-- (CREATE OR REPLACE there), and state names are spelled out, not macros.

-- Pin the search_path of the functions below (SET search_path FROM CURRENT) to the schema the
-- tables were just created in, resolved now: '"$user", public' would resolve per caller.
SELECT set_config('search_path', quote_ident(current_schema()), true);

-- The name a channel of this schema's Conveyor travels under. Channels belong to the database,
-- not to a schema: the schema in the name keeps two Conveyors in one database apart. A channel
-- name is an identifier (63 bytes at most), so a long one uses the schema's md5 instead.
CREATE FUNCTION conveyor_channel(name text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
  SELECT CASE WHEN octet_length(name || ':' || current_schema()) <= 63 THEN name || ':' || current_schema()
              ELSE name || ':' || md5(current_schema()) END
$$;

-- A task id as core/ids.ts makes them: a ULID, 26 Crockford base32 characters, 48 bits of
-- epoch milliseconds then 80 random bits, so ids sort by creation time to the millisecond and
-- mix with the servers' ids in one primary key. The random bits come from gen_random_uuid()
-- (built in since PostgreSQL 13, a cryptographic generator, no pgcrypto needed): bytes 0-4 and
-- 10-14 of a version 4 UUID, clear of its version (byte 6) and variant (byte 8) bits. Unlike the
-- servers' generator, two ids of one millisecond are not in creation order.
CREATE FUNCTION conveyor_ulid() RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL SAFE
AS $$
DECLARE
  alphabet CONSTANT text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  r bytea := uuid_send(gen_random_uuid());
  hi bigint := 0;
  lo bigint := 0;
  out text := '';
BEGIN
  FOR i IN 0..4 LOOP
    hi := (hi << 8) | get_byte(r, i);
    lo := (lo << 8) | get_byte(r, 10 + i);
  END LOOP;
  FOR i IN REVERSE 9..0 LOOP
    out := out || substr(alphabet, ((ms >> (5 * i)) & 31)::int + 1, 1);
  END LOOP;
  FOR i IN REVERSE 7..0 LOOP
    out := out || substr(alphabet, ((hi >> (5 * i)) & 31)::int + 1, 1);
  END LOOP;
  FOR i IN REVERSE 7..0 LOOP
    out := out || substr(alphabet, ((lo >> (5 * i)) & 31)::int + 1, 1);
  END LOOP;
  RETURN out;
END
$$;

-- Creates a task in the caller's transaction and answers its id.
--
--   lambda           a registered lambda (table lambdas); an unknown one raises SQLSTATE CV001
--   payload          any JSON value, handed to the handler; stored as JSON text
--   run_at           not before this time (NULL or omitted: now)
--   priority         higher starts first (NULL: the lambda's priority)
--   idempotency_key  a key seen before (within retention) answers that task's id, creating nothing
--   collection, key  as in POST /v1/tasks (ordered tasks and dependsOn are not offered here)
--   max_attempts, timeout_ms   NULL: the lambda's settings
--
-- The task goes in as NEW with next_check_at = run_at, as a submit with a future runAt would:
-- the scheduler's sweep then places it (gates, ENQUEUED, claim), so the placement rules stay in
-- core/placement.ts instead of being re-encoded here. The NOTIFY wakes the server holding the
-- sweep duty at commit, so the task starts within milliseconds instead of at the next sweep
-- (sweepIntervalMs); its payload is the servers' signal format (server/signals.ts): sender
-- "sql", due time "d" in epoch ms.
CREATE FUNCTION conveyor_enqueue(
  lambda          text,
  payload         jsonb       DEFAULT 'null',
  run_at          timestamptz DEFAULT NULL,
  priority        integer     DEFAULT NULL,
  idempotency_key text        DEFAULT NULL,
  collection      text        DEFAULT NULL,
  key             text        DEFAULT NULL,
  max_attempts    integer     DEFAULT NULL,
  timeout_ms      bigint      DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
  config jsonb;
  now_ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  due_ms bigint;
  new_id text;
  found_id text;
BEGIN
  SELECT l.config::jsonb INTO config FROM lambdas l WHERE l.name = conveyor_enqueue.lambda;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'conveyor_enqueue: no lambda named "%" is registered', conveyor_enqueue.lambda
      USING ERRCODE = 'CV001',
            HINT = 'A lambda is registered when a worker that runs it connects or a server configured with it starts; check the name and the schema.';
  END IF;
  -- The bounds of core/lambda.ts LIMITS for what is indexed or counted.
  IF octet_length(conveyor_enqueue.key) > 512 OR octet_length(conveyor_enqueue.collection) > 128
     OR octet_length(conveyor_enqueue.idempotency_key) > 512 THEN
    RAISE EXCEPTION 'conveyor_enqueue: key and idempotency_key hold at most 512 bytes, collection 128'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF conveyor_enqueue.max_attempts NOT BETWEEN 1 AND 1000 OR conveyor_enqueue.timeout_ms NOT BETWEEN 1 AND 2147483647 THEN
    RAISE EXCEPTION 'conveyor_enqueue: max_attempts must be 1 to 1000 and timeout_ms 1 to 2147483647'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  IF conveyor_enqueue.idempotency_key IS NOT NULL THEN
    SELECT t.id INTO found_id FROM tasks t WHERE t.idempotency_key = conveyor_enqueue.idempotency_key;
    IF FOUND THEN
      RETURN found_id;
    END IF;
  END IF;

  due_ms := coalesce(floor(extract(epoch FROM conveyor_enqueue.run_at) * 1000)::bigint, now_ms);
  new_id := conveyor_ulid();
  -- ON CONFLICT DO NOTHING: a concurrent transaction inserting the same idempotency key makes
  -- this insert wait for it; if that one commits, this one inserts nothing and answers its id.
  INSERT INTO tasks (id, lambda, collection, state, payload, priority, run_at, key, ordered, idempotency_key,
                     max_attempts, timeout_ms, deps_pending, created_at, updated_at, next_check_at)
  VALUES (new_id, conveyor_enqueue.lambda, conveyor_enqueue.collection, 'NEW',
          coalesce(conveyor_enqueue.payload, 'null'::jsonb)::text,
          coalesce(conveyor_enqueue.priority, (config->>'priority')::int, 0),
          due_ms, conveyor_enqueue.key, false, conveyor_enqueue.idempotency_key,
          coalesce(conveyor_enqueue.max_attempts, (config->>'maxAttempts')::int, 5),
          coalesce(conveyor_enqueue.timeout_ms, (config->>'timeoutMs')::bigint, 300000),
          0, now_ms, now_ms, due_ms)
  ON CONFLICT DO NOTHING
  RETURNING id INTO found_id;
  IF found_id IS NULL THEN
    SELECT t.id INTO found_id FROM tasks t WHERE t.idempotency_key = conveyor_enqueue.idempotency_key;
    IF found_id IS NULL THEN
      -- Only under REPEATABLE READ or SERIALIZABLE: the other task is not in this snapshot.
      RAISE EXCEPTION 'conveyor_enqueue: idempotency key "%" was taken by a concurrent transaction; retry', conveyor_enqueue.idempotency_key
        USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN found_id;
  END IF;
  PERFORM pg_notify(conveyor_channel('conveyor'), json_build_object('s', 'sql', 'd', due_ms)::text);
  RETURN new_id;
END
$$;
