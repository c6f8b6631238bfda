import type { Gate } from '../../core/gate.js';
import type { AttemptRow } from '../../core/task.js';
import type { TaskState } from '../../core/task-state.js';
import {
  type ClaimParams,
  type FailItem,
  type FencedItem,
  type InsertRow,
  type LambdaRow,
  type ListParams,
  type PlaceItem,
  type Queries,
  type StartItem,
  type SucceedItem,
  uniformRows,
} from '../driver.js';
import { attemptOf, claimedOf, endedOf, gateChangeOf, gateOf, taskOf } from '../rows.js';

type Row = Record<string, unknown>;
type GatePage = Parameters<Queries['taskOfGate']>[0];

/** Runs one named query of sql/*.sql with positional parameters (the pool, or one transaction's connection). */
export type Exec = (name: string, params: unknown[]) => Promise<Row[]>;

/** The states the partial index tasks_failed holds (migration 0001), as in the SQLite driver. */
const FAILED_INDEX_STATES: readonly TaskState[] = ['FATAL_FAILURE', 'RETRIABLE_FAILURE', 'CANCELLED'];

/**
 * The named queries on PostgreSQL. Every write of many rows is one statement: the rows travel
 * as one array per column (see the top of sql/task.sql), so a batch costs one round trip
 * whatever its size. Items are sorted by id first, so two transactions that lock overlapping
 * rows (a server's worker reports against another's rescue sweep) take the locks in the same
 * order and cannot deadlock on each other.
 */
export class PostgresQueries implements Queries {
  constructor(private readonly exec: Exec) {}

  async taskInsertMany(rows: InsertRow[]) {
    if (rows.length === 0) return new Set<string>();
    if (uniformRows(rows)) {
      const f = rows[0];
      const out = await this.exec('taskInsertUniform', [
        ...columns(
          rows,
          (r) => r.id,
          (r) => r.payload,
          (r) => r.runAt,
        ),
        f.lambda,
        f.collection,
        f.state,
        f.priority,
        f.key,
        f.ordered ? 1 : 0,
        f.maxAttempts,
        f.timeoutMs,
        f.reason,
        f.hold,
        f.depsPending,
        f.nextCheckAt,
        f.finishedAt,
        f.attempt,
        f.workerId,
        f.now,
      ]);
      return idSet(out);
    }
    const out = await this.exec('taskInsert', [
      ...columns(
        rows,
        (r) => r.id,
        (r) => r.lambda,
        (r) => r.collection,
        (r) => r.state,
        (r) => r.payload,
        (r) => r.priority,
        (r) => r.runAt,
        (r) => r.key,
        (r) => (r.ordered ? 1 : 0),
        (r) => r.idempotencyKey,
        (r) => r.maxAttempts,
        (r) => r.timeoutMs,
        (r) => r.reason,
        (r) => r.hold,
        (r) => r.depsPending,
        (r) => r.nextCheckAt,
        (r) => r.finishedAt,
        (r) => r.attempt,
        (r) => r.workerId,
      ),
      rows[0].now,
    ]);
    return idSet(out);
  }

  async taskByIds(ids: string[]) {
    return ids.length ? (await this.exec('taskById', [ids])).map(taskOf) : [];
  }

  async taskByIdempotencyKeys(keys: string[]) {
    return keys.length ? (await this.exec('taskByIdempotencyKey', [keys])).map(taskOf) : [];
  }

  async taskByIdsForUpdate(ids: string[]) {
    return ids.length ? (await this.exec('taskByIdForUpdate', [ids])).map(taskOf) : [];
  }

  async keyLock(pairs: Array<{ lambda: string; key: string }>) {
    if (pairs.length === 0) return;
    await this.exec(
      'keyLock',
      columns(
        pairs,
        (p) => p.lambda,
        (p) => p.key,
      ),
    );
  }

  async taskOrderedBusy(pairs: Array<{ lambda: string; key: string; exceptId: string }>) {
    if (pairs.length === 0) return new Set<string>();
    const rows = await this.exec(
      'taskOrderedBusy',
      columns(
        pairs,
        (p) => p.lambda,
        (p) => p.key,
        (p) => p.exceptId,
      ),
    );
    return new Set(rows.map((r) => `${r.lambda}\u0000${r.key}`));
  }

  async depInsertMany(pairs: Array<{ childId: string; parentId: string }>) {
    if (pairs.length === 0) return;
    await this.exec(
      'depInsert',
      columns(
        pairs,
        (p) => p.childId,
        (p) => p.parentId,
      ),
    );
  }

  async taskMarkHasChildren(ids: string[]) {
    if (ids.length) await this.exec('taskMarkHasChildren', [[...ids].sort()]);
  }

  async taskClaimReady(p: ClaimParams) {
    return (await this.exec('taskClaimReady', [p.lambda, p.limit, p.workerId, p.now, p.leaseUntil])).map(claimedOf);
  }

  async taskClaimOverdue(p: ClaimParams) {
    return (await this.exec('taskClaimOverdue', [p.lambda, p.limit, p.workerId, p.now, p.leaseUntil])).map(claimedOf);
  }

  async taskStartMany(items: StartItem[], leaseUntil: number, now: number) {
    if (items.length === 0) return new Set<string>();
    const cols = columns(
      byId(items),
      (it) => it.id,
      (it) => it.attempt,
      (it) => it.startedAt,
      (it) => it.workerId,
    );
    return idSet(await this.exec('taskStartBatch', [...cols, leaseUntil, now]));
  }

  async taskRenewMany(items: FencedItem[], leaseUntil: number) {
    if (items.length === 0) return new Set<string>();
    return idSet(await this.exec('taskRenewBatch', [...fenced(items), leaseUntil]));
  }

  async taskSucceedMany(items: SucceedItem[], now: number, retainUntil: number) {
    if (items.length === 0) return [];
    const cols = columns(
      byId(items),
      (it) => it.id,
      (it) => it.attempt,
      (it) => it.startedAt,
      (it) => it.workerId,
      (it) => it.result,
    );
    return (await this.exec('taskSucceedBatch', [...cols, now, retainUntil])).map(endedOf);
  }

  async taskFailMany(items: FailItem[], now: number) {
    if (items.length === 0) return [];
    const cols = columns(
      byId(items),
      (it) => it.id,
      (it) => it.attempt,
      (it) => it.dueBy,
      (it) => it.workerId,
      (it) => it.startedAt,
      (it) => it.state,
      (it) => it.nextCheckAt,
      (it) => it.triesDelta,
      (it) => it.error,
    );
    return (await this.exec('taskFail', [...cols, now])).map(endedOf);
  }

  async taskReleaseMany(items: FencedItem[], nextCheckAt: number, now: number) {
    if (items.length === 0) return [];
    const rows = await this.exec('taskRelease', [...fenced(items), nextCheckAt, now]);
    return rows.map((r) => ({ id: r.id as string, lambda: r.lambda as string, collection: r.collection as string | null }));
  }

  async attemptInsertMany(rows: AttemptRow[]) {
    if (rows.length === 0) return;
    await this.exec(
      'attemptInsert',
      columns(
        rows,
        (r) => r.taskId,
        (r) => r.attempt,
        (r) => r.workerId,
        (r) => r.startedAt,
        (r) => r.finishedAt,
        (r) => r.outcome,
        (r) => r.error,
      ),
    );
  }

  async taskPlaceMany(items: PlaceItem[], now: number) {
    if (items.length === 0) return [];
    const cols = columns(
      byId(items),
      (it) => it.id,
      (it) => it.from.join(','),
      (it) => (it.fromHold === undefined ? 1 : 0),
      (it) => it.fromHold ?? null,
      (it) => it.state,
      (it) => it.hold,
      (it) => it.nextCheckAt,
      (it) => it.reason,
      (it) => it.finishedAt,
    );
    return (await this.exec('taskPlace', [...cols, now])).map(endedOf);
  }

  async taskRedrive(id: string, depsPending: number, now: number) {
    return (await this.count('taskRedrive', [id, now, depsPending])) > 0;
  }

  async taskDue(now: number, limit: number, leased: boolean) {
    return (await this.exec('taskDue', [now, limit, leased])).map(taskOf);
  }

  async depParents(childId: string) {
    return (await this.exec('depParents', [childId])).map((r) => r.id as string);
  }

  async depWaitingChildren(parentIds: string[]) {
    if (parentIds.length === 0) return [];
    return (await this.exec('depWaitingChildren', [parentIds])).map((r) => r.id as string);
  }

  async taskDepResolve(childIds: string[]) {
    return childIds.length ? (await this.exec('taskDepResolve', [[...childIds].sort()])).map(taskOf) : [];
  }

  async taskKeyNext(lambda: string, key: string) {
    const [r] = await this.exec('taskKeyNext', [lambda, key]);
    return r ? taskOf(r) : null;
  }

  async taskOfGate(p: GatePage) {
    const name = p.source === 'ready' ? 'taskOfGateReady' : 'taskOfGateHeld';
    return (await this.exec(name, [p.lambda, p.collection, p.limit, p.after?.id ?? null, p.after?.priority ?? null])).map(taskOf);
  }

  async taskDeleteMany(ids: string[], now: number) {
    if (ids.length === 0) return 0;
    const gone = await this.exec('taskDelete', [[...ids].sort(), now]);
    if (gone.length === 0) return 0;
    const succeeded = gone.filter((r) => r.state === 'SUCCESS').map((r) => r.id as string);
    await this.exec('depDeleteByTask', [gone.map((r) => r.id as string), succeeded]);
    return gone.length;
  }

  async taskGet(id: string) {
    const [r] = await this.exec('taskById', [[id]]);
    return r ? taskOf(r) : null;
  }

  async taskList(p: ListParams) {
    const state = p.state ?? null;
    const before = p.beforeId ?? null;
    // The same choice of form as the SQLite driver: each filter walks its own index.
    const rows = p.key
      ? await this.exec('taskListByKey', [p.key, state, p.lambda ?? null, before, p.limit])
      : p.lambda
        ? await this.exec('taskListByLambda', [p.lambda, state, null, before, p.limit])
        : state !== null && FAILED_INDEX_STATES.includes(state)
          ? await this.exec('taskListFailed', [state, before, p.limit])
          : await this.exec('taskList', [state, before, p.limit]);
    return rows.map(taskOf);
  }

  async attemptList(taskId: string) {
    return (await this.exec('attemptList', [taskId])).map(attemptOf);
  }

  async taskCounts() {
    return (await this.exec('taskCounts', [])).map((r) => ({
      lambda: r.lambda as string,
      state: r.state as TaskState,
      count: Number(r.count),
    }));
  }

  async taskOpenCount() {
    const [r] = await this.exec('taskOpenCount', []);
    return Number(r?.count ?? 0);
  }

  async taskNextCheck() {
    const [r] = await this.exec('taskNextCheck', []);
    return r?.at === null || r?.at === undefined ? null : Number(r.at);
  }

  async lambdaUpsertMany(rows: LambdaRow[]) {
    if (rows.length === 0) return;
    await this.exec(
      'lambdaUpsert',
      columns(
        rows,
        (r) => r.name,
        (r) => JSON.stringify(r.config),
        (r) => r.updatedAt,
      ),
    );
  }

  async lambdaList() {
    return (await this.exec('lambdaList', [])).map((r) => ({
      name: r.name as string,
      config: JSON.parse(r.config as string),
      updatedAt: Number(r.updated_at),
    }));
  }

  async gateSet(gate: Gate, now: number) {
    await this.exec('gateSet', [gate.lambda, gate.collection, gate.mode, now]);
  }

  async gateChangedSince(since: number) {
    return (await this.exec('gateChangedSince', [since])).map(gateChangeOf);
  }

  async gateForget(before: number) {
    await this.exec('gateForget', [before]);
  }

  async gateList() {
    return (await this.exec('gateList', [])).map(gateOf);
  }

  async leaseTry(name: string, holder: string, now: number, until: number) {
    return (await this.exec('leaseTry', [name, holder, now, until])).length > 0;
  }

  async leaseRelease(name: string, holder: string) {
    await this.exec('leaseRelease', [name, holder]);
  }

  async cronGet(lambda: string) {
    const [r] = await this.exec('cronGet', [lambda]);
    return r ? Number(r.last_at) : null;
  }

  async cronSet(lambda: string, lastAt: number) {
    await this.exec('cronSet', [lambda, lastAt]);
  }

  async notify(channel: string, payload: string) {
    await this.exec('notify', [channel, payload]);
  }

  /** Rows a write touched (postgres.js puts the command's count on the result array). */
  private async count(name: string, params: unknown[]): Promise<number> {
    return ((await this.exec(name, params)) as Row[] & { count?: number }).count ?? 0;
  }
}

/** Turns rows into one array per column, in the order of the `$n` of a batch statement. */
function columns<T>(rows: readonly T[], ...pick: Array<(row: T) => unknown>): unknown[][] {
  return pick.map((f) => rows.map(f));
}

function fenced(items: FencedItem[]): unknown[][] {
  return columns(
    byId(items),
    (it) => it.id,
    (it) => it.attempt,
  );
}

function byId<T extends { id: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

const idSet = (rows: Row[]) => new Set(rows.map((r) => r.id as string));
