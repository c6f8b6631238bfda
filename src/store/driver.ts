import type { Gate } from '../core/gate.js';
import type { LambdaConfig } from '../core/lambda.js';
import type { AttemptRow, ClaimedRow, Hold, NewTask, TaskRow } from '../core/task.js';
import type { TaskState } from '../core/task-state.js';

/**
 * What a database dialect must provide: one method per named query in its sql/*.sql files,
 * each a plain read or conditional write. The decisions (which state, what follows a success)
 * live once in store.ts and core/, so the SQLite and PostgreSQL drivers hold only SQL and the
 * glue their client forces.
 */
export interface Driver {
  readonly dialect: 'sqlite' | 'postgres';
  readonly capabilities: DriverCapabilities;
  /**
   * Runs `fn` in one transaction (BEGIN IMMEDIATE on SQLite); commits when it resolves, rolls
   * back when it throws. With `sync: true` (the default) the commit is durable when this
   * resolves; with `sync: false` it may not be, and durable() makes it so.
   */
  transaction<T>(fn: (q: Queries) => Promise<T>, opts?: { sync?: boolean }): Promise<T>;
  /** Resolves once every transaction committed before the call is durable. */
  durable(): Promise<void>;
  /** Runs reads outside an explicit transaction. */
  read<T>(fn: (q: Queries) => Promise<T>): Promise<T>;
  migrate(): Promise<{ applied: string[] }>;
  /** Resolves when the database answers; rejects (StoreError 'unavailable') when it does not, within seconds. */
  ping(): Promise<void>;
  /**
   * Wake-ups between processes, where `capabilities.listenNotify`: `onPayload` gets the payload
   * of every Queries.notify on `channel` whose transaction committed, in any process on this
   * store (this one too). `onListen` runs each time the subscription is in place, again after
   * a lost connection came back: notifications sent meanwhile are lost, so a caller re-reads
   * there what it caches. Resolves once listening, with a function that stops.
   */
  listen?(channel: string, onPayload: (payload: string) => void, onListen?: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface DriverCapabilities {
  /** Other processes can write to the same store concurrently (PostgreSQL). */
  multiProcess: boolean;
  /**
   * A transaction can commit cheaply without waiting for the disk and be made durable a moment
   * later by durable() (SQLite: COMMIT under synchronous=NORMAL, then one fdatasync of the WAL).
   * The group commit then hands out tasks that were inserted and claimed in the same commit
   * before that fsync: their insert and claim stand or fall together.
   */
  deferredSync: boolean;
  /** Write transactions worth running at once (one connection each); the group commit flushes that many in parallel. */
  writers: number;
  /** Wake-ups between processes (LISTEN/NOTIFY). */
  listenNotify: boolean;
}

/** A row to insert, fully placed. */
export type InsertRow = Omit<NewTask, 'dependsOn'> & {
  state: TaskState;
  /** 0 and null, or 1 and the worker for a task handed out as it is inserted (see Handout). */
  attempt: number;
  workerId: string | null;
  reason: string | null;
  hold: Hold | null;
  depsPending: number;
  nextCheckAt: number | null;
  finishedAt: number | null;
  now: number;
};

/**
 * Whether the rows differ only in id, payload and run_at and carry no idempotency key (tasks of
 * one lambda submitted together: an ingest request, a submitMany, one flush's submits). Both
 * dialects insert such a batch with only those three bound a row (taskInsertUniform).
 */
export function uniformRows(rows: InsertRow[]): boolean {
  const f = rows[0];
  if (!f || f.idempotencyKey !== null) return false;
  for (let i = 1; i < rows.length; i++) {
    const r = rows[i] as InsertRow;
    if (
      r.idempotencyKey !== null ||
      r.lambda !== f.lambda ||
      r.collection !== f.collection ||
      r.state !== f.state ||
      r.priority !== f.priority ||
      r.key !== f.key ||
      r.ordered !== f.ordered ||
      r.maxAttempts !== f.maxAttempts ||
      r.timeoutMs !== f.timeoutMs ||
      r.reason !== f.reason ||
      r.hold !== f.hold ||
      r.depsPending !== f.depsPending ||
      r.nextCheckAt !== f.nextCheckAt ||
      r.finishedAt !== f.finishedAt ||
      r.attempt !== f.attempt ||
      r.workerId !== f.workerId ||
      r.now !== f.now
    )
      return false;
  }
  return true;
}

/** A row that reached a terminal state, with what its follow-ups need. */
export interface EndedRow {
  id: string;
  lambda: string;
  key: string | null;
  ordered: boolean;
  hasChildren: boolean;
  state: TaskState;
}

/** A conditional move of one task to a placement (state, hold, next check). */
export interface PlaceItem {
  id: string;
  /** The move happens only from one of these states... */
  from: readonly TaskState[];
  /** ...and, when given, only if the task waits for this hold. */
  fromHold?: Hold | null;
  state: TaskState;
  hold: Hold | null;
  nextCheckAt: number | null;
  reason: string | null;
  finishedAt: number | null;
}

export interface FencedItem {
  id: string;
  attempt: number;
}

export interface StartItem extends FencedItem {
  workerId: string;
  startedAt: number;
}

export interface SucceedItem extends FencedItem {
  workerId: string;
  /** When the attempt started, for outcomes whose start report arrived in the same batch. */
  startedAt: number | null;
  result: string;
}

export interface FailItem extends FencedItem {
  /** Rescue only: the move happens only if the lease is still expired at this time. */
  dueBy: number | null;
  workerId: string | null;
  startedAt: number | null;
  state: 'RETRIABLE_FAILURE' | 'FATAL_FAILURE';
  nextCheckAt: number;
  triesDelta: number;
  error: string | null;
}

export interface ClaimParams {
  lambda: string;
  limit: number;
  workerId: string;
  now: number;
  leaseUntil: number;
}

export interface ListParams {
  lambda?: string;
  state?: TaskState;
  key?: string;
  limit: number;
  /** Tasks with ids below this one (newest first). */
  beforeId?: string;
}

export interface LambdaRow {
  name: string;
  config: LambdaConfig;
  updatedAt: number;
}

/** The named queries. Every `now` is epoch milliseconds. */
export interface Queries {
  // tasks: create
  taskInsertMany(rows: InsertRow[]): Promise<Set<string>>;
  taskByIds(ids: string[]): Promise<TaskRow[]>;
  taskByIdempotencyKeys(keys: string[]): Promise<TaskRow[]>;
  /**
   * Which (lambda, key) pairs have a head (an open ordered task not waiting for the key, nor for
   * its parents unless it is older than `exceptId`) other than `exceptId`; answered as `lambda\0key`.
   */
  taskOrderedBusy(pairs: Array<{ lambda: string; key: string; exceptId: string }>): Promise<Set<string>>;
  /**
   * taskByIds for a decision that must still hold at the commit (an insert reading the parents
   * of its tasks): the rows stay locked against other writers until the transaction ends.
   * Where writers take turns (SQLite) a plain read does.
   */
  taskByIdsForUpdate(ids: string[]): Promise<TaskRow[]>;
  /**
   * Locks ordered keys against other writers until the transaction ends, taken before a key's
   * head is looked up or released, so no two writers decide about one key at once. Where
   * writers take turns (SQLite) there is nothing to lock.
   */
  keyLock(pairs: Array<{ lambda: string; key: string }>): Promise<void>;
  depInsertMany(pairs: Array<{ childId: string; parentId: string }>): Promise<void>;
  taskMarkHasChildren(ids: string[]): Promise<void>;

  // tasks: run
  taskClaimReady(p: ClaimParams): Promise<ClaimedRow[]>;
  /** Claims ENQUEUED tasks that waited past their enqueue timeout, oldest first (aging). */
  taskClaimOverdue(p: ClaimParams): Promise<ClaimedRow[]>;
  taskStartMany(items: StartItem[], leaseUntil: number, now: number): Promise<Set<string>>;
  taskRenewMany(items: FencedItem[], leaseUntil: number): Promise<Set<string>>;
  taskSucceedMany(items: SucceedItem[], now: number, retainUntil: number): Promise<EndedRow[]>;
  taskFailMany(items: FailItem[], now: number): Promise<EndedRow[]>;
  taskReleaseMany(
    items: FencedItem[],
    nextCheckAt: number,
    now: number,
  ): Promise<Array<{ id: string; lambda: string; collection: string | null }>>;
  attemptInsertMany(rows: AttemptRow[]): Promise<void>;

  // tasks: move and sweep
  taskPlaceMany(items: PlaceItem[], now: number): Promise<EndedRow[]>;
  /** Moves a dead task back to NEW; with `depsPending` parents not succeeded, it waits for them. */
  taskRedrive(id: string, depsPending: number, now: number): Promise<boolean>;
  /** Rows whose next check is due, except ENQUEUED ones (their next check is the aging mark), and leased ones unless `leased`. */
  taskDue(now: number, limit: number, leased: boolean): Promise<TaskRow[]>;
  /** The parents a task names in dependsOn (those retention has not deleted). */
  depParents(childId: string): Promise<string[]>;
  /** Dependants of these tasks that still wait for their parents. */
  depWaitingChildren(parentIds: string[]): Promise<string[]>;
  /** Counts one more parent as succeeded for each child; returns the children left with none pending. */
  taskDepResolve(childIds: string[]): Promise<TaskRow[]>;
  /** The oldest task of this lambda and key that waits for the key. */
  taskKeyNext(lambda: string, key: string): Promise<TaskRow | null>;
  /**
   * Tasks a gate covers, highest priority first, after a keyset cursor: `ready` = ENQUEUED
   * ones, `held` = those parked by a gate. A null collection means every collection.
   */
  taskOfGate(p: {
    lambda: string;
    collection: string | null;
    source: 'ready' | 'held';
    limit: number;
    after: { priority: number; id: string } | null;
  }): Promise<TaskRow[]>;
  /**
   * Deletes finished tasks past retention (with their attempts and dependency links): only
   * those still terminal with their retention over by `now`, as a retry may have revived one
   * since the sweep read it. Answers how many went.
   */
  taskDeleteMany(ids: string[], now: number): Promise<number>;

  // tasks: read
  taskGet(id: string): Promise<TaskRow | null>;
  taskList(p: ListParams): Promise<TaskRow[]>;
  attemptList(taskId: string): Promise<AttemptRow[]>;
  taskCounts(): Promise<Array<{ lambda: string; state: TaskState; count: number }>>;
  taskOpenCount(): Promise<number>;
  /** The earliest next check of the sweep (not ENQUEUED rows), or null. */
  taskNextCheck(): Promise<number | null>;

  // lambdas, gates, leases, cron
  lambdaUpsertMany(rows: LambdaRow[]): Promise<void>;
  lambdaList(): Promise<LambdaRow[]>;
  /** Sets a gate; an opened gate stays on record as `open` (for gateChangedSince) until gateForget. */
  gateSet(gate: Gate, now: number): Promise<void>;
  /** The gates in force (not open). */
  gateList(): Promise<Gate[]>;
  /** Every gate set at or after `since`, opened ones too, with when. */
  gateChangedSince(since: number): Promise<Array<Gate & { updatedAt: number }>>;
  /** Drops the record of gates opened before `before`. */
  gateForget(before: number): Promise<void>;
  /** Takes or renews the named lease for `holder` if it is free, expired or already theirs. */
  leaseTry(name: string, holder: string, now: number, until: number): Promise<boolean>;
  leaseRelease(name: string, holder: string): Promise<void>;
  cronGet(lambda: string): Promise<number | null>;
  cronSet(lambda: string, lastAt: number): Promise<void>;

  // wake-ups
  /**
   * Sends `payload` (a few hundred bytes at most) to the listeners of `channel` when this
   * transaction commits; nothing when it rolls back. A no-op without `capabilities.listenNotify`.
   */
  notify(channel: string, payload: string): Promise<void>;
}
