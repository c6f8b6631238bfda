-- Conveyor's first schema on PostgreSQL: the same tables, columns and meaning as
-- sqlite/migrations/0001_init.sql. Times are BIGINT epoch milliseconds; payload, result and
-- error are JSON text (TEXT, not JSONB: the store never looks inside them, and JSONB would
-- parse and re-encode every payload on its way in and out).
-- State lists are spelled out, not macros: a migration is history and must not change when
-- core/task-state.ts does (a later move gets a later migration).

-- The default fillfactor: HOT updates (which spare room on a page would enable) never happen
-- here, because every move changes an indexed column (state sits in the partial indexes'
-- conditions, next_check_at is a key): 0 HOT updates of 39,500 measured over claim, start and
-- succeed.
CREATE TABLE tasks (
  -- COLLATE "C": ids (ULIDs) sort as bytes, as on SQLite, so list cursors agree between
  -- dialects whatever the database's default collation; byte comparison is also cheaper than
  -- a locale's on every index probe. Every column holding a task id uses it.
  id              TEXT COLLATE "C" PRIMARY KEY,
  lambda          TEXT     NOT NULL,
  collection      TEXT,
  state           TEXT     NOT NULL,
  payload         TEXT     NOT NULL,
  priority        INTEGER  NOT NULL DEFAULT 0,
  run_at          BIGINT   NOT NULL,
  key             TEXT,
  ordered         BOOLEAN  NOT NULL DEFAULT false,
  idempotency_key TEXT,
  attempt         INTEGER  NOT NULL DEFAULT 0,
  tries           INTEGER  NOT NULL DEFAULT 0,
  max_attempts    INTEGER  NOT NULL,
  timeout_ms      BIGINT   NOT NULL,
  result          TEXT,
  error           TEXT,
  reason          TEXT,
  hold            TEXT,
  deps_pending    INTEGER  NOT NULL DEFAULT 0,
  has_children    BOOLEAN  NOT NULL DEFAULT false,
  created_at      BIGINT   NOT NULL,
  updated_at      BIGINT   NOT NULL,
  next_check_at   BIGINT,
  worker_id       TEXT,
  started_at      BIGINT,
  finished_at     BIGINT
);

-- The ready set: what claims read, highest priority first, oldest first within a priority.
-- Partial, so it holds only ENQUEUED rows however many tasks wait or have finished.
CREATE INDEX tasks_ready ON tasks (lambda, priority DESC, id) WHERE state = 'ENQUEUED';

-- Aging: ENQUEUED rows whose next_check_at (enqueue time + enqueue timeout) has passed are
-- claimed oldest-first for a share of every claim, so a low priority cannot starve.
CREATE INDEX tasks_overdue ON tasks (lambda, next_check_at) WHERE state = 'ENQUEUED';

-- The one sweep (ATF's next trigger timestamp): due NEW and RETRIABLE_FAILURE rows, expired
-- leases of CLAIMED and PROCESSING rows, and finished rows past retention.
CREATE INDEX tasks_check ON tasks (next_check_at) WHERE state <> 'ENQUEUED' AND next_check_at IS NOT NULL;

-- Idempotent submit: a second task with a key still held (until retention deletes the first)
-- is skipped by the insert's ON CONFLICT and answered with the first; also the lookup by key.
-- Partial: most tasks carry no key, and those cost this index nothing.
CREATE UNIQUE INDEX tasks_idempotency ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Waiting rows that the sweep does not see: released by a resume, or by the end of the task
-- ahead of them on their key.
CREATE INDEX tasks_held_gate ON tasks (lambda, collection, priority DESC, id) WHERE hold = 'gate';
CREATE INDEX tasks_held_key ON tasks (lambda, key, id) WHERE hold = 'key';

-- Is an ordered task of this lambda and key still open? (checked when one is submitted)
CREATE INDEX tasks_ordered_open ON tasks (lambda, key)
  WHERE ordered AND state NOT IN ('SUCCESS', 'FATAL_FAILURE', 'CANCELLED');

-- Listing by lambda and by key, newest first; these columns never change after insert, so
-- state changes do not touch these indexes.
CREATE INDEX tasks_by_lambda ON tasks (lambda, id);
CREATE INDEX tasks_by_key ON tasks (key, id) WHERE key IS NOT NULL;
-- Failures are what people look for; a partial index keeps the hot states out of it.
CREATE INDEX tasks_failed ON tasks (state, id) WHERE state IN ('FATAL_FAILURE', 'RETRIABLE_FAILURE', 'CANCELLED');

-- Finished attempts (a success is kept on the task row, see core/task.ts attemptViews).
CREATE TABLE task_attempts (
  task_id     TEXT COLLATE "C" NOT NULL,
  attempt     INTEGER NOT NULL,
  worker_id   TEXT,
  started_at  BIGINT,
  finished_at BIGINT  NOT NULL,
  outcome     TEXT    NOT NULL,
  error       TEXT,
  PRIMARY KEY (task_id, attempt)
);

CREATE TABLE task_deps (
  parent_id TEXT COLLATE "C" NOT NULL,
  child_id  TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (parent_id, child_id)
);
-- The primary key leads with the parent (a parent's end finds its children); this one serves
-- the other direction: deleting an expired child's links (taskDelete) without a full scan.
CREATE INDEX task_deps_child ON task_deps (child_id);

CREATE TABLE lambdas (
  name       TEXT PRIMARY KEY,
  config     TEXT   NOT NULL,
  updated_at BIGINT NOT NULL
);

-- collection '*' gates the whole lambda
CREATE TABLE gates (
  lambda     TEXT   NOT NULL,
  collection TEXT   NOT NULL,
  mode       TEXT   NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (lambda, collection)
);

-- Singleton duties (sweeps, cron, later the assigner) run on the holder of a lease row.
CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT   NOT NULL,
  expires_at BIGINT NOT NULL
);

CREATE TABLE cron_state (
  lambda  TEXT PRIMARY KEY,
  last_at BIGINT NOT NULL
);
