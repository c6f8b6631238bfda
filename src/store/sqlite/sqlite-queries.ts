import type { Gate } from '../../core/gate.js';
import type { AttemptRow, TaskRow } from '../../core/task.js';
import type { TaskState } from '../../core/task-state.js';
import { type EndedRow, type InsertRow, type LambdaRow, type Queries, uniformRows } from '../driver.js';
import { attemptOf, claimedOf, endedOf, gateChangeOf, gateOf, taskOf } from '../rows.js';
import { storeErrorOf } from '../store-error.js';
import type { SqliteDriver } from './sqlite-driver.js';

/** Rows a statement for the batched queries (see taskInsert in sql/task.sql for the measurement). */
const ROWS_PER_STATEMENT = 64;

/** The states the partial index tasks_failed holds (migrations 0001 and 0003). */
const FAILED_INDEX_STATES = new Set<TaskState>(['FATAL_FAILURE', 'RETRIABLE_FAILURE', 'CANCELLED']);

/** Binds the named queries to better-sqlite3 calls; every method is synchronous inside. */
export function sqliteQueries(d: SqliteDriver): Queries {
  const all = (name: string, params: object = {}) => guard(() => d.stmt(name).all(params));
  const get = (name: string, params: object = {}) => guard(() => d.stmt(name).get(params));
  const run = (name: string, params: object = {}) => guard(() => d.stmt(name).run(params).changes);
  const b = (v: boolean) => (v ? 1 : 0);
  /** The tasks a one-row lookup finds, one lookup a value. */
  const tasksBy = (name: string, param: string, values: string[]) => {
    const out: TaskRow[] = [];
    for (const v of values) {
      const r = get(name, { [param]: v });
      if (r) out.push(taskOf(r));
    }
    return out;
  };
  const idSet = (rows: Record<string, unknown>[]) => new Set(rows.map((r) => r.id as string));
  /** Runs a batched query over `items`, up to ROWS_PER_STATEMENT a statement; answers the rows it returned. */
  const batched = <T>(query: string, items: T[], tuple: (params: unknown[], it: T) => void, after: unknown[]) =>
    guard(() => {
      const out: Record<string, unknown>[] = [];
      for (let at = 0; at < items.length; at += ROWS_PER_STATEMENT) {
        const chunk = items.slice(at, at + ROWS_PER_STATEMENT);
        const params: unknown[] = [];
        for (const it of chunk) tuple(params, it);
        params.push(...after);
        for (const r of d.rowsStatement(query, chunk.length).all(params)) out.push(r);
      }
      return out;
    });

  return {
    async taskInsertMany(rows) {
      const insertChunk = (chunk: InsertRow[]) => {
        const params: unknown[] = [];
        if (uniformRows(chunk)) {
          for (const r of chunk) params.push(r.id, r.payload, r.runAt);
          const f = chunk[0] as InsertRow;
          params.push(f.lambda, f.collection, f.state, f.priority, f.key, b(f.ordered), f.maxAttempts, f.timeoutMs);
          params.push(f.reason, f.hold, f.depsPending, f.nextCheckAt, f.finishedAt, f.attempt, f.attempt, f.workerId, f.now, f.now);
          return d.rowsStatement('taskInsertUniform', chunk.length).run(params);
        }
        for (const r of chunk) {
          params.push(r.id, r.lambda, r.collection, r.state, r.payload, r.priority, r.runAt, r.key, b(r.ordered), r.idempotencyKey);
          params.push(r.maxAttempts, r.timeoutMs, r.reason, r.hold, r.depsPending, r.nextCheckAt, r.finishedAt);
          params.push(r.attempt, r.attempt, r.workerId, r.now, r.now);
        }
        return d.rowsStatement('taskInsert', chunk.length).run(params);
      };
      const inserted = new Set<string>();
      guard(() => {
        for (let at = 0; at < rows.length; at += ROWS_PER_STATEMENT) {
          const chunk = rows.slice(at, at + ROWS_PER_STATEMENT);
          const { changes } = insertChunk(chunk);
          if (changes === chunk.length) for (const r of chunk) inserted.add(r.id);
          else {
            // Some rows hit an existing idempotency key (ids are fresh): which ones exist now?
            for (const r of chunk) if (d.stmt('taskById').get({ id: r.id })) inserted.add(r.id);
          }
        }
      });
      return inserted;
    },
    async taskByIds(ids) {
      return tasksBy('taskById', 'id', ids);
    },
    async taskByIdempotencyKeys(keys) {
      return tasksBy('taskByIdempotencyKey', 'key', keys);
    },
    async taskByIdsForUpdate(ids) {
      return tasksBy('taskById', 'id', ids); // one writer at a time: nobody to hold them against
    },
    async keyLock() {},
    async taskOrderedBusy(pairs) {
      const busy = new Set<string>();
      for (const p of pairs) if (get('taskOrderedBusy', p)) busy.add(`${p.lambda}\u0000${p.key}`);
      return busy;
    },
    async depInsertMany(pairs) {
      for (const p of pairs) run('depInsert', p);
    },
    async taskMarkHasChildren(ids) {
      for (const id of ids) run('taskMarkHasChildren', { id });
    },
    async taskClaimReady(p) {
      return all('taskClaimReady', p).map(claimedOf);
    },
    async taskClaimOverdue(p) {
      return all('taskClaimOverdue', p).map(claimedOf);
    },
    async taskStartMany(items, leaseUntil, now) {
      if (items.length === 0) return new Set();
      return idSet(batched('taskStartBatch', items, (p, it) => p.push(it.id, it.attempt, it.startedAt, it.workerId), [leaseUntil, now]));
    },
    async taskRenewMany(items, leaseUntil) {
      if (items.length === 0) return new Set();
      return idSet(batched('taskRenewBatch', items, (p, it) => p.push(it.id, it.attempt), [leaseUntil]));
    },
    async taskSucceedMany(items, now, retainUntil) {
      if (items.length === 0) return [];
      const tuple = (p: unknown[], it: (typeof items)[number]) => p.push(it.id, it.attempt, it.startedAt, it.workerId, it.result);
      return batched('taskSucceedBatch', items, tuple, [now, retainUntil, now]).map(endedOf);
    },
    async taskFailMany(items, now) {
      const out: EndedRow[] = [];
      for (const it of items) {
        const r = get('taskFail', { ...it, now });
        if (r) out.push(endedOf(r));
      }
      return out;
    },
    async taskReleaseMany(items, nextCheckAt, now) {
      const out: Array<{ id: string; lambda: string; collection: string | null }> = [];
      for (const it of items) {
        const r = get('taskRelease', { id: it.id, attempt: it.attempt, nextCheckAt, now });
        if (r) out.push({ id: it.id, lambda: r.lambda as string, collection: r.collection as string | null });
      }
      return out;
    },
    async attemptInsertMany(rows) {
      for (const r of rows) run('attemptInsert', r);
    },
    async taskPlaceMany(items, now) {
      const out: EndedRow[] = [];
      for (const it of items) {
        const r = get('taskPlace', {
          id: it.id,
          from: JSON.stringify(it.from),
          anyHold: it.fromHold === undefined ? 1 : 0,
          fromHold: it.fromHold ?? null,
          state: it.state,
          hold: it.hold,
          nextCheckAt: it.nextCheckAt,
          reason: it.reason,
          finishedAt: it.finishedAt,
          now,
        });
        if (r) out.push(endedOf(r));
      }
      return out;
    },
    async taskRedrive(id, depsPending, now) {
      return run('taskRedrive', { id, depsPending, now }) > 0;
    },
    async taskDue(now, limit, leased) {
      return all('taskDue', { now, limit, leased: b(leased) }).map(taskOf);
    },
    async depParents(childId) {
      return all('depParents', { childId }).map((r) => r.id as string);
    },
    async depWaitingChildren(parentIds) {
      const out: string[] = [];
      for (const parentId of parentIds) for (const r of all('depWaitingChildren', { parentId })) out.push(r.id as string);
      return out;
    },
    async taskDepResolve(childIds) {
      const out: TaskRow[] = [];
      for (const id of childIds) {
        const r = get('taskDepResolve', { id });
        if (r && (r.deps_pending as number) === 0) out.push(taskOf(r));
      }
      return out;
    },
    async taskKeyNext(lambda, key) {
      const r = get('taskKeyNext', { lambda, key });
      return r ? taskOf(r) : null;
    },
    async taskOfGate(p) {
      return all(p.source === 'ready' ? 'taskOfGateReady' : 'taskOfGateHeld', {
        lambda: p.lambda,
        collection: p.collection,
        limit: p.limit,
        afterId: p.after?.id ?? null,
        afterPriority: p.after?.priority ?? null,
      }).map(taskOf);
    },
    async taskDeleteMany(ids, now) {
      let n = 0;
      for (const id of ids) {
        const gone = get('taskDelete', { id, now });
        if (!gone) continue;
        run('attemptDeleteByTask', { id });
        run('depDeleteByTask', { id, succeeded: b(gone.state === 'SUCCESS') });
        n++;
      }
      return n;
    },
    async taskGet(id) {
      const r = get('taskById', { id });
      return r ? taskOf(r) : null;
    },
    async taskList(p) {
      const failed = p.state !== undefined && FAILED_INDEX_STATES.has(p.state);
      const name = p.key ? 'taskListByKey' : p.lambda ? 'taskListByLambda' : failed ? 'taskListFailed' : 'taskList';
      return all(name, {
        lambda: p.lambda ?? null,
        state: p.state ?? null,
        key: p.key ?? null,
        beforeId: p.beforeId ?? null,
        limit: p.limit,
      }).map(taskOf);
    },
    async attemptList(taskId) {
      return all('attemptList', { taskId }).map(attemptOf) as AttemptRow[];
    },
    async taskCounts() {
      const rows = await d.scan('taskCounts');
      return rows.map((r) => ({ lambda: r.lambda as string, state: r.state as TaskState, count: r.count as number }));
    },
    async taskOpenCount() {
      return (get('taskOpenCount')?.count as number) ?? 0;
    },
    async taskNextCheck() {
      return (get('taskNextCheck')?.at as number | null | undefined) ?? null;
    },
    async lambdaUpsertMany(rows: LambdaRow[]) {
      for (const r of rows) run('lambdaUpsert', { name: r.name, config: JSON.stringify(r.config), updatedAt: r.updatedAt });
    },
    async lambdaList() {
      return all('lambdaList').map((r) => ({
        name: r.name as string,
        config: JSON.parse(r.config as string),
        updatedAt: r.updated_at as number,
      }));
    },
    async gateSet(gate: Gate, now: number) {
      run('gateSet', { ...gate, now });
    },
    async gateChangedSince(since) {
      return all('gateChangedSince', { since }).map(gateChangeOf);
    },
    async gateForget(before) {
      run('gateForget', { before });
    },
    async gateList() {
      return all('gateList').map(gateOf);
    },
    async leaseTry(name, holder, now, until) {
      return get('leaseTry', { name, holder, now, until }) !== undefined;
    },
    async leaseRelease(name, holder) {
      run('leaseRelease', { name, holder });
    },
    async cronGet(lambda) {
      return (get('cronGet', { lambda })?.last_at as number | undefined) ?? null;
    },
    async cronSet(lambda, lastAt) {
      run('cronSet', { lambda, lastAt });
    },
    // One process owns a SQLite file (capabilities.multiProcess is false): nobody to wake.
    async notify() {},
  };
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw storeErrorOf(err);
  }
}
