-- Task queries for SQLite. {from:move} and {to:move} expand to the states of core/task-state.ts,
-- {terminal} to the terminal states (see store/sql-files.ts). Parameters are @named.

-- name: taskInsert
-- Positional parameters, and the driver repeats the VALUES tuple to insert 64 rows a statement
-- (SqliteDriver.rowsStatement): measured on the bench table, 4.5 us a row at 64 rows a
-- statement, 6.7 us at one, 7.4 us with named parameters and 9.7 us for a json_each batch (the
-- payload text is escaped into the batch and parsed out again).
-- attempt and tries are 1, with the worker, for a task handed out as it is inserted (store/insert.ts).
INSERT INTO tasks (id, lambda, collection, state, payload, priority, run_at, key, ordered, idempotency_key,
                   max_attempts, timeout_ms, reason, hold, deps_pending, next_check_at, finished_at,
                   attempt, tries, worker_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: taskInsertUniform
-- taskInsert for a chunk whose rows differ only in id, payload and run_at (tasks of one
-- lambda, submitted together: an ingest request, a submitMany, one turn's submits): those
-- three are bound for each row, the other columns once for the statement.
-- rows: (id, payload, runAt); then lambda, collection, state, priority, key, ordered, max attempts,
-- timeout, reason, hold, deps pending, next check, finished at, attempt, tries, worker, now, now.
WITH v(id, payload, run_at) AS (VALUES (?, ?, ?))
INSERT INTO tasks (id, lambda, collection, state, payload, priority, run_at, key, ordered, idempotency_key,
                   max_attempts, timeout_ms, reason, hold, deps_pending, next_check_at, finished_at,
                   attempt, tries, worker_id, created_at, updated_at)
SELECT v.id, ?, ?, ?, v.payload, ?, v.run_at, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
  FROM v WHERE true
ON CONFLICT DO NOTHING;

-- name: taskById
SELECT * FROM tasks WHERE id = @id;

-- name: taskByIdempotencyKey
SELECT * FROM tasks WHERE idempotency_key = @key;

-- name: taskOrderedBusy
-- The head of a key is its one open ordered task that does not wait for the key. One that waits
-- for its parents counts only for the tasks after it: it may have come while an earlier task
-- waited for the key (parents are waited for first), and that earlier task goes first.
SELECT 1 FROM tasks INDEXED BY tasks_ordered_open
 WHERE lambda = @lambda AND key = @key
   -- the predicate of tasks_ordered_open, as migration 0003 spells it (see taskListFailed)
   AND ordered = 1 AND state <> 'SUCCESS' AND state <> 'FATAL_FAILURE' AND state <> 'CANCELLED'
   AND (hold IS NULL OR hold <> 'key') AND id <> @exceptId
   AND (hold IS NULL OR hold <> 'deps' OR id < @exceptId)
 LIMIT 1;

-- name: depInsert
INSERT INTO task_deps (parent_id, child_id) VALUES (@parentId, @childId) ON CONFLICT DO NOTHING;

-- name: taskMarkHasChildren
UPDATE tasks SET has_children = 1 WHERE id = @id AND has_children = 0;

-- name: taskClaimReady
-- A conditional update: only ENQUEUED rows move, so two claimers can never both win a task.
-- The gate test looks up each row's collection only when the lambda has a closed gate at all:
-- the first NOT EXISTS has no correlation, so SQLite runs it once a statement and the OR skips
-- the per-row lookup (measured with bench/store.mjs: 8.3 -> 7.7 us a claimed task).
UPDATE tasks
   SET state = {to:claim}, attempt = attempt + 1, tries = tries + 1, worker_id = @workerId,
       next_check_at = @leaseUntil, started_at = NULL, updated_at = @now
 WHERE rid IN (
   SELECT rid FROM tasks INDEXED BY tasks_ready
    WHERE state = 'ENQUEUED' AND lambda = @lambda
      AND (NOT EXISTS (SELECT 1 FROM gates WHERE lambda = @lambda AND mode <> 'open')
           OR NOT EXISTS (SELECT 1 FROM gates g
                           WHERE g.lambda = tasks.lambda AND g.collection IN (tasks.collection, '*') AND g.mode <> 'open'))
    ORDER BY priority DESC, id
    LIMIT @limit)
   AND state IN {from:claim}
RETURNING id, lambda, collection, payload, priority, key, attempt, tries, max_attempts, timeout_ms, run_at;

-- name: taskClaimOverdue
UPDATE tasks
   SET state = {to:claim}, attempt = attempt + 1, tries = tries + 1, worker_id = @workerId,
       next_check_at = @leaseUntil, started_at = NULL, updated_at = @now
 WHERE rid IN (
   SELECT rid FROM tasks INDEXED BY tasks_overdue
    WHERE state = 'ENQUEUED' AND lambda = @lambda AND next_check_at <= @now
      AND (NOT EXISTS (SELECT 1 FROM gates WHERE lambda = @lambda AND mode <> 'open')
           OR NOT EXISTS (SELECT 1 FROM gates g
                           WHERE g.lambda = tasks.lambda AND g.collection IN (tasks.collection, '*') AND g.mode <> 'open'))
    ORDER BY next_check_at
    LIMIT @limit)
   AND state IN {from:claim}
RETURNING id, lambda, collection, payload, priority, key, attempt, tries, max_attempts, timeout_ms, run_at;

-- name: taskStartBatch
-- Hot updates take a batch a statement the same way as taskInsert: positional parameters, the
-- VALUES tuple repeated for up to 64 rows (the parameters after the tuples are bound once).
-- Measured with bench/store.mjs, a succeed cost 7.7 us a task this way against 8.3 us with the
-- rows sent as one JSON array read by json_each, where every result was escaped into the batch
-- and extracted again.
-- rows: (id, attempt, startedAt, workerId); then leaseUntil, now
WITH v(id, attempt, started_at, worker_id) AS (VALUES (?, ?, ?, ?))
UPDATE tasks SET state = {to:start}, started_at = v.started_at, worker_id = v.worker_id, next_check_at = ?, updated_at = ?
  FROM v
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {from:start}
RETURNING tasks.id;

-- name: taskRenewBatch
-- rows: (id, attempt); then leaseUntil
WITH v(id, attempt) AS (VALUES (?, ?))
UPDATE tasks SET next_check_at = ?
  FROM v
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {leased}
RETURNING tasks.id;

-- name: taskSucceedBatch
-- rows: (id, attempt, startedAt, workerId, result); then now, retainUntil, now
WITH v(id, attempt, started_at, worker_id, result) AS (VALUES (?, ?, ?, ?, ?))
UPDATE tasks
   SET state = {to:succeed}, result = v.result, error = NULL, worker_id = v.worker_id, started_at = COALESCE(v.started_at, tasks.started_at),
       finished_at = ?, next_check_at = ?, updated_at = ?
  FROM v
 WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.state IN {from:succeed}
RETURNING tasks.id, tasks.lambda, tasks.key, tasks.ordered, tasks.has_children, tasks.state;

-- name: taskFail
UPDATE tasks
   SET state = @state, error = @error, tries = tries + @triesDelta, worker_id = COALESCE(@workerId, worker_id),
       started_at = COALESCE(@startedAt, started_at), next_check_at = @nextCheckAt, updated_at = @now,
       finished_at = CASE WHEN @state = 'FATAL_FAILURE' THEN @now ELSE NULL END
 WHERE id = @id AND attempt = @attempt AND state IN {from:fail}
   AND (@dueBy IS NULL OR next_check_at <= @dueBy)
RETURNING id, lambda, key, ordered, has_children, state;

-- name: taskRelease
UPDATE tasks SET state = {to:release}, tries = tries - 1, worker_id = NULL, next_check_at = @nextCheckAt, updated_at = @now
 WHERE id = @id AND attempt = @attempt AND state IN {from:release}
RETURNING lambda, collection;

-- name: attemptInsert
INSERT INTO task_attempts (task_id, attempt, worker_id, started_at, finished_at, outcome, error)
VALUES (@taskId, @attempt, @workerId, @startedAt, @finishedAt, @outcome, @error)
ON CONFLICT DO NOTHING;

-- name: taskPlace
UPDATE tasks
   SET state = @state, hold = @hold, next_check_at = @nextCheckAt, reason = COALESCE(@reason, reason),
       finished_at = COALESCE(@finishedAt, finished_at), updated_at = @now
 WHERE id = @id AND state IN (SELECT value FROM json_each(@from))
   AND (@anyHold = 1 OR hold IS @fromHold)
RETURNING id, lambda, key, ordered, has_children, state;

-- name: taskRedrive
-- A child with parents that have not succeeded waits for them (hold 'deps', no next check).
UPDATE tasks
   SET state = {to:redrive}, tries = 0, result = NULL, error = NULL, reason = NULL, worker_id = NULL,
       hold = CASE WHEN @depsPending > 0 THEN 'deps' END, deps_pending = @depsPending,
       started_at = NULL, finished_at = NULL, run_at = @now,
       next_check_at = CASE WHEN @depsPending > 0 THEN NULL ELSE @now END, updated_at = @now
 WHERE id = @id AND state IN {from:redrive};

-- name: taskDue
SELECT * FROM tasks INDEXED BY tasks_check
 WHERE next_check_at <= @now AND state <> 'ENQUEUED' AND next_check_at IS NOT NULL
   AND (@leased = 1 OR state NOT IN {leased})
 ORDER BY next_check_at
 LIMIT @limit;

-- name: depParents
SELECT parent_id AS id FROM task_deps WHERE child_id = @childId;

-- name: depWaitingChildren
SELECT d.child_id AS id FROM task_deps d JOIN tasks t ON t.id = d.child_id
 WHERE d.parent_id = @parentId AND t.hold = 'deps';

-- name: taskDepResolve
UPDATE tasks SET deps_pending = deps_pending - 1 WHERE id = @id AND hold = 'deps' AND deps_pending > 0
RETURNING *;

-- name: taskKeyNext
SELECT * FROM tasks INDEXED BY tasks_held_key
 WHERE lambda = @lambda AND key = @key AND hold = 'key'
 ORDER BY id LIMIT 1;

-- name: taskOfGateReady
-- Keyset pages in claim order (priority, then age): a pass over a big gate stays cheap per page.
SELECT * FROM tasks INDEXED BY tasks_ready
 WHERE state = 'ENQUEUED' AND lambda = @lambda AND (@collection IS NULL OR collection = @collection)
   AND (@afterId IS NULL OR priority < @afterPriority OR (priority = @afterPriority AND id > @afterId))
 ORDER BY priority DESC, id
 LIMIT @limit;

-- name: taskOfGateHeld
SELECT * FROM tasks INDEXED BY tasks_held_gate
 WHERE hold = 'gate' AND lambda = @lambda AND (@collection IS NULL OR collection = @collection)
   AND (@afterId IS NULL OR priority < @afterPriority OR (priority = @afterPriority AND id > @afterId))
 ORDER BY priority DESC, id
 LIMIT @limit;

-- name: taskDelete
-- Only a row still finished and past retention (see the PostgreSQL twin); its attempts and
-- dependency links follow only when it went.
DELETE FROM tasks WHERE id = @id AND state IN {terminal} AND next_check_at <= @now RETURNING state;

-- name: attemptDeleteByTask
DELETE FROM task_attempts WHERE task_id = @id;

-- name: depDeleteByTask
-- A deleted task's links go as a child's, and as a parent's only if it succeeded: a dead
-- parent's stay until its children go, so that a child retried after its parent was deleted is
-- refused rather than run without it (StoreOps.redrive).
DELETE FROM task_deps WHERE child_id = @id OR (parent_id = @id AND @succeeded = 1);

-- name: taskList
-- Newest first. Four forms so each filter walks its own index (a key or lambda filter on
-- the id index would scan every row of a big table); the others filter on top.
SELECT * FROM tasks INDEXED BY tasks_id
 WHERE (@state IS NULL OR state = @state) AND (@beforeId IS NULL OR id < @beforeId)
 ORDER BY id DESC LIMIT @limit;

-- name: taskListByLambda
SELECT * FROM tasks INDEXED BY tasks_by_lambda
 WHERE lambda = @lambda AND (@state IS NULL OR state = @state) AND (@key IS NULL OR key = @key)
   AND (@beforeId IS NULL OR id < @beforeId)
 ORDER BY id DESC LIMIT @limit;

-- name: taskListByKey
SELECT * FROM tasks INDEXED BY tasks_by_key
 WHERE key = @key AND (@state IS NULL OR state = @state) AND (@lambda IS NULL OR lambda = @lambda)
   AND (@beforeId IS NULL OR id < @beforeId)
 ORDER BY id DESC LIMIT @limit;

-- name: taskListFailed
-- The first term is the index's predicate, as migration 0003 spells it: SQLite uses a partial
-- index only where the query's WHERE holds that very expression (term by term), and `state = @state` alone
-- cannot show it before the value is bound.
SELECT * FROM tasks INDEXED BY tasks_failed
 WHERE (state = 'FATAL_FAILURE' OR state = 'RETRIABLE_FAILURE' OR state = 'CANCELLED')
   AND state = @state AND (@beforeId IS NULL OR id < @beforeId)
 ORDER BY id DESC LIMIT @limit;

-- name: attemptList
SELECT * FROM task_attempts WHERE task_id = @taskId ORDER BY attempt;

-- name: taskCounts
SELECT lambda, state, COUNT(*) AS count FROM tasks GROUP BY lambda, state;

-- name: taskOpenCount
SELECT COUNT(*) AS count FROM tasks WHERE state NOT IN {terminal};

-- name: taskNextCheck
SELECT MIN(next_check_at) AS at FROM tasks INDEXED BY tasks_check
 WHERE state <> 'ENQUEUED' AND next_check_at IS NOT NULL;
