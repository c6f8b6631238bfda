-- Partial index predicates without IN lists. SQLite evaluates a partial index's predicate for
-- the old and the new row of every UPDATE that changes a column the predicate reads (here
-- `state`, on every move of a task), and an IN list there is built into a temporary lookup
-- table each time. Measured with callgrind over a task's hot path (insert, claim, succeed),
-- inside sqlite3_step: tasks_failed's IN form cost 108,800 instructions a task, the OR form
-- 91,000 and no index at all 88,100; for ordered tasks, tasks_ordered_open's NOT IN cost
-- 19,000 a task more than the ANDs. Same rows, same order, same uses; the queries that read
-- these indexes repeat the predicates word for word, which is how SQLite knows it may.
DROP INDEX tasks_failed;
CREATE INDEX tasks_failed ON tasks (state, id)
  WHERE state = 'FATAL_FAILURE' OR state = 'RETRIABLE_FAILURE' OR state = 'CANCELLED';

DROP INDEX tasks_ordered_open;
CREATE INDEX tasks_ordered_open ON tasks (lambda, key)
  WHERE ordered = 1 AND state <> 'SUCCESS' AND state <> 'FATAL_FAILURE' AND state <> 'CANCELLED';
