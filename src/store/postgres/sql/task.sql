-- Task queries for PostgreSQL, under the same names as sqlite/sql/task.sql. {from:move} and
-- {to:move} expand to the states of core/task-state.ts, {terminal} and {leased} to those
-- lists (see store/sql-files.ts). Parameters are positional ($1, $2...); each statement lists
-- them above its text.
--
-- Where SQLite runs one call per row, these take the whole batch in one statement: the rows
-- arrive as one array per column and unnest() zips them back into rows. Measured on the 2-core
-- reference machine with batches of 500: an insert costs 31-34 us a row this way against
-- 87-130 us with one statement per row (prepared, awaited or pipelined), and a succeed 20 us
-- a row against 89 us. json_to_recordset was about even (34 us a row on insert); unnest won
-- on clarity: each column's type is in the statement, and no payload is escaped into JSON
-- text to be parsed out again.

-- name: taskInsert
-- $1 ids, $2 lambdas, $3 collections, $4 states, $5 payloads, $6 priorities, $7 run_ats,
-- $8 keys, $9 ordered, $10 idempotency keys, $11 max attempts, $12 timeouts, $13 reasons,
-- $14 holds, $15 deps pending, $16 next checks, $17 finished ats, $18 attempts (also the
-- tries: 1 for a task handed out as it is inserted, see store/insert.ts), $19 workers (arrays), $20 now.
-- Booleans travel as 0/1 (here and in taskPlace): postgres.js would declare an array of JS
-- booleans as one boolean parameter. ON CONFLICT without a target skips a taken id and a
-- taken idempotency key alike; RETURNING names the rows that went in.
INSERT INTO tasks (id, lambda, collection, state, payload, priority, run_at, key, ordered, idempotency_key,
                   max_attempts, timeout_ms, reason, hold, deps_pending, next_check_at, finished_at,
                   attempt, tries, worker_id, created_at, updated_at)
SELECT id, lambda, collection, state, payload, priority, run_at, key, ordered <> 0, idempotency_key,
       max_attempts, timeout_ms, reason, hold, deps_pending, next_check_at, finished_at,
       attempt, attempt, worker_id, $20::bigint, $20::bigint
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bigint[], $8::text[],
              $9::int[], $10::text[], $11::int[], $12::bigint[], $13::text[], $14::text[], $15::int[],
              $16::bigint[], $17::bigint[], $18::int[], $19::text[])
       AS v(id, lambda, collection, state, payload, priority, run_at, key, ordered, idempotency_key,
            max_attempts, timeout_ms, reason, hold, deps_pending, next_check_at, finished_at, attempt, worker_id)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: taskInsertUniform
-- taskInsert for a batch whose rows differ only in id, payload and run_at (see uniformRows in
-- store/driver.ts): three arrays instead of nineteen, the other columns bound once. Measured
-- with batches of 500: 17.4 us a row against 22-25 in all, and the client's CPU to encode the
-- parameters 4 us a row against 7-9.
-- $1 ids, $2 payloads, $3 run_ats (arrays); $4 lambda, $5 collection, $6 state, $7 priority,
-- $8 key, $9 ordered (0/1), $10 max attempts, $11 timeout, $12 reason, $13 hold, $14 deps
-- pending, $15 next check, $16 finished at, $17 attempt (also the tries), $18 worker, $19 now.
INSERT INTO tasks (id, lambda, collection, state, payload, priority, run_at, key, ordered, idempotency_key,
                   max_attempts, timeout_ms, reason, hold, deps_pending, next_check_at, finished_at,
                   attempt, tries, worker_id, created_at, updated_at)
SELECT v.id, $4::text, $5::text, $6::text, v.payload, $7::int, v.run_at, $8::text, $9::int <> 0, NULL,
       $10::int, $11::bigint, $12::text, $13::text, $14::int, $15::bigint, $16::bigint, $17::int, $17::int,
       $18::text, $19::bigint, $19::bigint
  FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(id, payload, run_at)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: taskById
-- $1 ids
SELECT * FROM tasks WHERE id = ANY($1::text[]);

-- name: taskByIdForUpdate
-- $1 ids. The parents an insert names in dependsOn. Writers run side by side at READ COMMITTED:
-- a parent read as running, that ended and committed before the insert marked it as having
-- children, would never release them. Locked, its end waits for the insert and then sees the
-- children; one that ended first is read ended. In id order, so that two inserts naming the
-- same parents take them in the same order. (NO KEY UPDATE, the lock the insert's own update of
-- has_children takes: a weaker one would have to be upgraded there, and two inserts could
-- deadlock on that.)
SELECT * FROM tasks WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE;

-- name: keyLock
-- $1 lambdas, $2 keys. Transaction-level advisory locks on a 64-bit hash of each ordered key
-- (the lengths first, so that no two pairs spell the same text), and of the schema: advisory
-- locks belong to the database, and another Conveyor in another schema (staging beside
-- production) must not wait for this one's keys,
-- taken before its head is looked up (an insert, a re-placement) or released (an end): two
-- inserts could otherwise both find a free key and both run, and an end could look for the
-- next task of its key before a task an insert is adding there is committed. Distinct and
-- sorted, so that writers locking several keys take them in one order. A hash collision only
-- makes two keys take turns.
SELECT pg_advisory_xact_lock(s.h)
  FROM (SELECT DISTINCT hashtextextended('conveyor key ' || length(current_schema()) || ' ' || current_schema()
                                          || length(v.lambda) || ' ' || v.lambda || v.key, 0) AS h
          FROM unnest($1::text[], $2::text[]) AS v(lambda, key)
         ORDER BY 1) AS s
 ORDER BY s.h;

-- name: taskByIdempotencyKey
-- $1 idempotency keys
SELECT * FROM tasks WHERE idempotency_key = ANY($1::text[]);

-- name: taskOrderedBusy
-- $1 lambdas, $2 keys, $3 ids to leave out. The head of a key is its one open ordered task
-- that does not wait for the key. One that waits for its parents counts only for the tasks
-- after it: it may have come while an earlier task waited for the key (parents are waited for
-- first), and that earlier task goes first.
SELECT v.lambda, v.key
  FROM unnest($1::text[], $2::text[], $3::text[]) AS v(lambda, key, except_id)
 WHERE EXISTS (SELECT 1 FROM tasks t
                WHERE t.lambda = v.lambda AND t.key = v.key AND t.ordered AND t.state NOT IN {terminal}
                  AND (t.hold IS NULL OR t.hold <> 'key') AND t.id <> v.except_id
                  AND (t.hold IS NULL OR t.hold <> 'deps' OR t.id < v.except_id));

-- name: depInsert
-- $1 child ids, $2 parent ids
INSERT INTO task_deps (child_id, parent_id)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT DO NOTHING;

-- name: taskMarkHasChildren
-- $1 ids
UPDATE tasks SET has_children = true WHERE id = ANY($1::text[]) AND NOT has_children;

-- name: taskClaimReady
-- $1 lambda, $2 limit, $3 worker id, $4 now, $5 lease until.
-- FOR UPDATE SKIP LOCKED: concurrent claimers (other servers) pass over rows another one is
-- taking instead of queueing behind its lock; the lock sits below the LIMIT, so a row that
-- stopped being ENQUEUED meanwhile is dropped and never more than $2 rows are taken. The
-- state condition of the UPDATE keeps the claim a conditional move all the same.
-- The gate test runs once a statement when the lambda has no closed gate (an uncorrelated
-- InitPlan that the OR checks first), and per row only when it has one: 280 gate probes cost a
-- claim of 280 rows about 1 of its 5.5 ms (EXPLAIN ANALYZE on 20,000 ENQUEUED rows).
WITH picked AS (
  SELECT t.id FROM tasks t
   WHERE t.state = 'ENQUEUED' AND t.lambda = $1::text
     AND (NOT EXISTS (SELECT 1 FROM gates WHERE lambda = $1::text AND mode <> 'open')
          OR NOT EXISTS (SELECT 1 FROM gates g
                          WHERE g.lambda = t.lambda AND g.collection IN (t.collection, '*') AND g.mode <> 'open'))
   ORDER BY t.priority DESC, t.id
   LIMIT $2::int
   FOR UPDATE OF t SKIP LOCKED)
UPDATE tasks
   SET state = {to:claim}, attempt = attempt + 1, tries = tries + 1, worker_id = $3::text,
       next_check_at = $5::bigint, started_at = NULL, updated_at = $4::bigint
  FROM picked
 WHERE tasks.id = picked.id AND tasks.state IN {from:claim}
RETURNING tasks.id, tasks.lambda, tasks.collection, tasks.payload, tasks.priority, tasks.key, tasks.attempt,
          tasks.tries, tasks.max_attempts, tasks.timeout_ms, tasks.run_at;

-- name: taskClaimOverdue
-- $1 lambda, $2 limit, $3 worker id, $4 now, $5 lease until
WITH picked AS (
  SELECT t.id FROM tasks t
   WHERE t.state = 'ENQUEUED' AND t.lambda = $1::text AND t.next_check_at <= $4::bigint
     AND (NOT EXISTS (SELECT 1 FROM gates WHERE lambda = $1::text AND mode <> 'open')
          OR NOT EXISTS (SELECT 1 FROM gates g
                          WHERE g.lambda = t.lambda AND g.collection IN (t.collection, '*') AND g.mode <> 'open'))
   ORDER BY t.next_check_at
   LIMIT $2::int
   FOR UPDATE OF t SKIP LOCKED)
UPDATE tasks
   SET state = {to:claim}, attempt = attempt + 1, tries = tries + 1, worker_id = $3::text,
       next_check_at = $5::bigint, started_at = NULL, updated_at = $4::bigint
  FROM picked
 WHERE tasks.id = picked.id AND tasks.state IN {from:claim}
RETURNING tasks.id, tasks.lambda, tasks.collection, tasks.payload, tasks.priority, tasks.key, tasks.attempt,
          tasks.tries, tasks.max_attempts, tasks.timeout_ms, tasks.run_at;

-- name: taskStartBatch
-- $1 ids, $2 attempts, $3 started ats, $4 worker ids, $5 lease until, $6 now
UPDATE tasks SET state = {to:start}, started_at = v.started_at, worker_id = v.worker_id, next_check_at = $5::bigint,
       updated_at = $6::bigint
  FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[]) AS v(id, attempt, started_at, worker_id)
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {from:start}
RETURNING tasks.id;

-- name: taskRenewBatch
-- $1 ids, $2 attempts, $3 lease until
UPDATE tasks SET next_check_at = $3::bigint
  FROM unnest($1::text[], $2::int[]) AS v(id, attempt)
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {leased}
RETURNING tasks.id;

-- name: taskSucceedBatch
-- $1 ids, $2 attempts, $3 started ats, $4 worker ids, $5 results, $6 now, $7 retain until
UPDATE tasks
   SET state = {to:succeed}, result = v.result, error = NULL, worker_id = v.worker_id, started_at = COALESCE(v.started_at, tasks.started_at),
       finished_at = $6::bigint, next_check_at = $7::bigint, updated_at = $6::bigint
  FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[]) AS v(id, attempt, started_at, worker_id, result)
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {from:succeed}
RETURNING tasks.id, tasks.lambda, tasks.key, tasks.ordered, tasks.has_children, tasks.state;

-- name: taskFail
-- $1 ids, $2 attempts, $3 due by (rescue only), $4 worker ids, $5 started ats, $6 states,
-- $7 next checks, $8 tries deltas, $9 errors, $10 now
UPDATE tasks
   SET state = v.state, error = v.error, tries = tries + v.tries_delta, worker_id = COALESCE(v.worker_id, tasks.worker_id),
       started_at = COALESCE(v.started_at, tasks.started_at), next_check_at = v.next_check_at, updated_at = $10::bigint,
       finished_at = CASE WHEN v.state = {to:fail_fatal} THEN $10::bigint ELSE NULL END
  FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::int[], $9::text[])
       AS v(id, attempt, due_by, worker_id, started_at, state, next_check_at, tries_delta, error)
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {from:fail}
   AND (v.due_by IS NULL OR tasks.next_check_at <= v.due_by)
RETURNING tasks.id, tasks.lambda, tasks.key, tasks.ordered, tasks.has_children, tasks.state;

-- name: taskRelease
-- $1 ids, $2 attempts, $3 next check, $4 now
UPDATE tasks SET state = {to:release}, tries = tries - 1, worker_id = NULL, next_check_at = $3::bigint, updated_at = $4::bigint
  FROM unnest($1::text[], $2::int[]) AS v(id, attempt)
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {from:release}
RETURNING tasks.id, tasks.lambda, tasks.collection;

-- name: attemptInsert
-- $1 task ids, $2 attempts, $3 worker ids, $4 started ats, $5 finished ats, $6 outcomes, $7 errors
INSERT INTO task_attempts (task_id, attempt, worker_id, started_at, finished_at, outcome, error)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])
ON CONFLICT DO NOTHING;

-- name: taskPlace
-- $1 ids, $2 from states (each a comma-separated list: unnest cannot zip an array of arrays),
-- $3 any hold (0/1), $4 from holds, $5 states, $6 holds, $7 next checks, $8 reasons, $9 finished ats, $10 now
UPDATE tasks
   SET state = v.state, hold = v.hold, next_check_at = v.next_check_at, reason = COALESCE(v.reason, tasks.reason),
       finished_at = COALESCE(v.finished_at, tasks.finished_at), updated_at = $10::bigint
  FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::bigint[])
       AS v(id, from_states, any_hold, from_hold, state, hold, next_check_at, reason, finished_at)
 WHERE tasks.id = v.id AND tasks.state = ANY(string_to_array(v.from_states, ','))
   AND (v.any_hold <> 0 OR tasks.hold IS NOT DISTINCT FROM v.from_hold)
RETURNING tasks.id, tasks.lambda, tasks.key, tasks.ordered, tasks.has_children, tasks.state;

-- name: taskRedrive
-- $1 id, $2 now, $3 parents not succeeded: a child with some waits for them (hold 'deps', no next check).
UPDATE tasks
   SET state = {to:redrive}, tries = 0, result = NULL, error = NULL, reason = NULL, worker_id = NULL,
       hold = CASE WHEN $3::int > 0 THEN 'deps' END, deps_pending = $3::int,
       started_at = NULL, finished_at = NULL, run_at = $2::bigint,
       next_check_at = CASE WHEN $3::int > 0 THEN NULL ELSE $2::bigint END, updated_at = $2::bigint
 WHERE id = $1::text AND state IN {from:redrive};

-- name: taskDue
-- $1 now, $2 limit, $3 leased too
SELECT * FROM tasks
 WHERE next_check_at <= $1::bigint AND state <> 'ENQUEUED' AND next_check_at IS NOT NULL
   AND ($3::boolean OR state NOT IN {leased})
 ORDER BY next_check_at
 LIMIT $2::int;

-- name: depParents
-- $1 child id
SELECT parent_id AS id FROM task_deps WHERE child_id = $1::text;

-- name: depWaitingChildren
-- $1 parent ids. A child appears once per parent in the list: each is one success to count.
SELECT d.child_id AS id FROM task_deps d JOIN tasks t ON t.id = d.child_id
 WHERE d.parent_id = ANY($1::text[]) AND t.hold = 'deps';

-- name: taskDepResolve
-- $1 child ids, one entry per succeeded parent (so a child may come more than once); answers
-- the children left with no parent pending.
WITH resolved AS (
  UPDATE tasks SET deps_pending = GREATEST(tasks.deps_pending - v.n, 0)
    FROM (SELECT id, count(*)::int AS n FROM unnest($1::text[]) AS u(id) GROUP BY id) AS v
   WHERE tasks.id = v.id AND tasks.hold = 'deps' AND tasks.deps_pending > 0
  RETURNING tasks.*)
SELECT * FROM resolved WHERE deps_pending = 0;

-- name: taskKeyNext
-- $1 lambda, $2 key
SELECT * FROM tasks
 WHERE lambda = $1::text AND key = $2::text AND hold = 'key'
 ORDER BY id LIMIT 1;

-- name: taskOfGateReady
-- $1 lambda, $2 collection (null: all), $3 limit, $4 after id, $5 after priority.
-- Keyset pages in claim order (priority, then age): a pass over a big gate stays cheap per page.
SELECT * FROM tasks
 WHERE state = 'ENQUEUED' AND lambda = $1::text AND ($2::text IS NULL OR collection = $2::text)
   AND ($4::text IS NULL OR priority < $5::int OR (priority = $5::int AND id > $4::text))
 ORDER BY priority DESC, id
 LIMIT $3::int;

-- name: taskOfGateHeld
-- $1 lambda, $2 collection (null: all), $3 limit, $4 after id, $5 after priority
SELECT * FROM tasks
 WHERE hold = 'gate' AND lambda = $1::text AND ($2::text IS NULL OR collection = $2::text)
   AND ($4::text IS NULL OR priority < $5::int OR (priority = $5::int AND id > $4::text))
 ORDER BY priority DESC, id
 LIMIT $3::int;

-- name: taskDelete
-- $1 ids, $2 now. The task rows with their attempts in one statement: PostgreSQL allows DELETE
-- inside a WITH, where SQLite needs attemptDeleteByTask beside it. Answers the deleted rows'
-- ids and states, for depDeleteByTask.
-- Only rows still finished and past retention: a retry committed by another writer since the
-- sweep read them has made one NEW again, and it must live.
WITH gone AS (
  DELETE FROM tasks WHERE id = ANY($1::text[]) AND state IN {terminal} AND next_check_at <= $2::bigint
  RETURNING id, state),
     attempts AS (DELETE FROM task_attempts WHERE task_id IN (SELECT id FROM gone))
SELECT id, state FROM gone;

-- name: depDeleteByTask
-- $1 deleted task ids (their links as a child go), $2 those of them that succeeded (their links
-- as a parent go too; a dead parent's stay until its children go, see StoreOps.redrive).
-- A statement of its own after taskDelete, not a DELETE in its WITH: that one reads task_deps
-- with the snapshot its statement began with, and an insert naming one of the parents, which
-- held the parent until its commit while taskDelete waited for the row, has committed its link
-- since. Unseen, that link outlived its succeeded parent, and a retry of the child was refused
-- as if the parent had died.
DELETE FROM task_deps WHERE child_id = ANY($1::text[]) OR parent_id = ANY($2::text[]);

-- name: taskList
-- $1 state, $2 before id, $3 limit. Newest first. Four forms so each filter walks its own
-- index (a key or lambda filter on the id index would scan every row of a big table); the
-- others filter on top.
SELECT * FROM tasks
 WHERE ($1::text IS NULL OR state = $1::text) AND ($2::text IS NULL OR id < $2::text)
 ORDER BY id DESC LIMIT $3::int;

-- name: taskListByLambda
-- $1 lambda, $2 state, $3 key, $4 before id, $5 limit
SELECT * FROM tasks
 WHERE lambda = $1::text AND ($2::text IS NULL OR state = $2::text) AND ($3::text IS NULL OR key = $3::text)
   AND ($4::text IS NULL OR id < $4::text)
 ORDER BY id DESC LIMIT $5::int;

-- name: taskListByKey
-- $1 key, $2 state, $3 lambda, $4 before id, $5 limit
SELECT * FROM tasks
 WHERE key = $1::text AND ($2::text IS NULL OR state = $2::text) AND ($3::text IS NULL OR lambda = $3::text)
   AND ($4::text IS NULL OR id < $4::text)
 ORDER BY id DESC LIMIT $5::int;

-- name: taskListFailed
-- $1 state, $2 before id, $3 limit. The repeated state list lets a generic plan (prepared
-- statements switch to one after five runs) prove that the partial index tasks_failed holds
-- every row asked for; from `state = $1` alone it cannot.
SELECT * FROM tasks
 WHERE state = $1::text AND state IN ('FATAL_FAILURE', 'RETRIABLE_FAILURE', 'CANCELLED')
   AND ($2::text IS NULL OR id < $2::text)
 ORDER BY id DESC LIMIT $3::int;

-- name: attemptList
-- $1 task id
SELECT * FROM task_attempts WHERE task_id = $1::text ORDER BY attempt;

-- name: taskCounts
SELECT lambda, state, COUNT(*) AS count FROM tasks GROUP BY lambda, state;

-- name: taskOpenCount
SELECT COUNT(*) AS count FROM tasks WHERE state NOT IN {terminal};

-- name: taskNextCheck
SELECT MIN(next_check_at) AS at FROM tasks
 WHERE state <> 'ENQUEUED' AND next_check_at IS NOT NULL;
