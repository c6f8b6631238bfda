import type { Clock, Random } from '../clock.js';
import { DEFAULT_BACKOFF } from '../core/backoff.js';
import { decideFailure, type FailureKind } from '../core/failure.js';
import { type GateLookup, type GateMode, WHOLE_LAMBDA } from '../core/gate.js';
import type { LambdaConfig } from '../core/lambda.js';
import { cancelled, type Placement, place, type Timing } from '../core/placement.js';
import type { AttemptOutcome, AttemptRow, ClaimedRow, NewTask, TaskRow } from '../core/task.js';
import { canMove, canTransition, fromStates, isTerminal, type TaskMove, type TaskState } from '../core/task-state.js';
import { ConveyorError } from '../errors.js';
import type { Driver, EndedRow, FailItem, FencedItem, InsertRow, PlaceItem, Queries, StartItem } from './driver.js';

export interface StoreContext {
  clock: Clock;
  random: Random;
  timing: Timing;
  /** The settings of a lambda, for its backoff when an attempt fails. */
  lambda(name: string): LambdaConfig | undefined;
}

export type InsertOutcome = { task: TaskRow; created: boolean } | { error: ConveyorError };

export interface FailReport extends FencedItem {
  kind: FailureKind;
  /** JSON text of the TaskError. */
  error: string | null;
  workerId: string | null;
  startedAt: number | null;
  snoozeMs?: number;
}

export interface SuccessReport extends FencedItem {
  workerId: string;
  startedAt: number | null;
  /** JSON text of the handler's return value. */
  result: string;
}

/** One ended attempt, as metrics count it. */
export interface AttemptEnd {
  lambda: string;
  outcome: AttemptOutcome;
  startedAt: number | null;
  finishedAt: number;
}

export interface SweepResult {
  /** Lambdas that got ready tasks, with how many. */
  enqueued: Map<string, number>;
  rescued: number;
  deleted: number;
  dropped: number;
  /** Rows looked at; when it equals the limit, more may be due. */
  seen: number;
}

const key2 = (lambda: string, key: string) => `${lambda}\u0000${key}`;

/**
 * The store as the rest of Conveyor sees it: transactions of {@link StoreOps}, whatever the
 * dialect underneath.
 */
export class Store {
  constructor(
    readonly driver: Driver,
    private readonly ctx: StoreContext,
  ) {}

  get dialect(): Driver['dialect'] {
    return this.driver.dialect;
  }

  /** Runs `fn` in one transaction and resolves once the commit is durable. */
  transaction<T>(fn: (ops: StoreOps) => Promise<T>): Promise<T> {
    return this.driver.transaction((q) => fn(new StoreOps(q, this.ctx)));
  }

  /**
   * Runs `fn` in one transaction and resolves at the commit with the transaction's ops;
   * with `sync: false` the commit may not be durable yet (see durable()).
   */
  transactionWith<T>(fn: (ops: StoreOps) => Promise<T>, opts: { sync: boolean }): Promise<{ out: T; ops: StoreOps }> {
    let ops!: StoreOps;
    return this.driver
      .transaction((q) => {
        ops = new StoreOps(q, this.ctx);
        return fn(ops);
      }, opts)
      .then((out) => ({ out, ops }));
  }

  durable(): Promise<void> {
    return this.driver.durable();
  }

  read<T>(fn: (ops: StoreOps) => Promise<T>): Promise<T> {
    return this.driver.read((q) => fn(new StoreOps(q, this.ctx)));
  }

  migrate(): Promise<{ applied: string[] }> {
    return this.driver.migrate();
  }

  ping(): Promise<void> {
    return this.driver.ping();
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

/**
 * The task lifecycle on top of a dialect's named queries: every decision comes from core/
 * (placement, failure), every write is a conditional update, and what must follow an end
 * (children of a dependency, the next task of an ordered key) follows in the same transaction.
 */
export class StoreOps {
  /** Lambdas that got ready (ENQUEUED) tasks in this transaction, for the dispatcher's claim phase. */
  readonly enqueued = new Set<string>();
  /** Tasks that reached a terminal state in this transaction (announced after the commit). */
  readonly ended: EndedRow[] = [];
  /** The earliest next check this transaction set on a waiting task (the scheduler must wake by then). */
  earliestCheck = Number.POSITIVE_INFINITY;
  /** Attempts that ended in this transaction, for metrics (announced after the commit). */
  readonly outcomes: AttemptEnd[] = [];

  constructor(
    readonly q: Queries,
    private readonly ctx: StoreContext,
  ) {}

  private now(): number {
    return this.ctx.clock.now();
  }

  /** Inserts tasks with their first placement; a repeated idempotency key answers the existing task. */
  async insert(tasks: NewTask[], gate: GateLookup): Promise<InsertOutcome[]> {
    const now = this.now();
    const { q } = this;
    const out: InsertOutcome[] = new Array(tasks.length);
    const idemKeys = unique(tasks.map((t) => t.idempotencyKey));
    const existing = new Map((idemKeys.length ? await q.taskByIdempotencyKeys(idemKeys) : []).map((r) => [r.idempotencyKey, r]));
    const batchIds = new Set(tasks.map((t) => t.id));
    const outsideParents = unique(tasks.flatMap((t) => t.dependsOn)).filter((id) => !batchIds.has(id));
    const parentState = new Map<string, TaskState>(
      (outsideParents.length ? await q.taskByIds(outsideParents) : []).map((r) => [r.id, r.state]),
    );
    const orderedPairs = uniqueBy(
      tasks.filter((t) => t.ordered && t.key !== null).map((t) => ({ lambda: t.lambda, key: t.key as string, exceptId: t.id })),
      (p) => key2(p.lambda, p.key),
    );
    const busy = orderedPairs.length ? await q.taskOrderedBusy(orderedPairs) : new Set<string>();

    const rows: InsertRow[] = [];
    const rowIndex: number[] = [];
    const firstOfKey = new Map<string, number>();
    const deps: Array<{ childId: string; parentId: string }> = [];
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i];
      if (t.idempotencyKey !== null) {
        const found = existing.get(t.idempotencyKey);
        if (found) {
          out[i] = { task: found, created: false };
          continue;
        }
        if (firstOfKey.has(t.idempotencyKey)) continue; // answered after the insert, as its twin
        firstOfKey.set(t.idempotencyKey, i);
      }
      let depsPending = 0;
      let depFailed = false;
      const missing = t.dependsOn.find((p) => !parentState.has(p));
      if (missing !== undefined) {
        out[i] = {
          error: new ConveyorError(
            'unknown_dependency',
            `dependsOn: no task ${missing} (a parent must exist, or come earlier in the same batch)`,
          ),
        };
        continue;
      }
      for (const p of t.dependsOn) {
        const s = parentState.get(p) as TaskState;
        if (s === 'FATAL_FAILURE' || s === 'CANCELLED') depFailed = true;
        else if (s !== 'SUCCESS') depsPending++;
      }
      const k = t.ordered && t.key !== null ? key2(t.lambda, t.key) : null;
      const p = place(
        {
          runAt: t.runAt,
          now,
          depsPending,
          depFailed,
          keyBusy: k !== null && busy.has(k),
          gate: gate(t.lambda, t.collection),
          from: 'NEW',
        },
        this.ctx.timing,
      );
      if (k !== null && !isTerminal(p.state)) busy.add(k); // later tasks of this key in the batch wait
      if (p.state === 'ENQUEUED') this.enqueued.add(t.lambda);
      else this.noteCheck(p);
      parentState.set(t.id, p.state);
      rows.push(insertRowOf(t, p, depsPending, now));
      rowIndex.push(i);
      for (const parentId of t.dependsOn) deps.push({ childId: t.id, parentId });
    }

    const inserted = rows.length ? await q.taskInsertMany(rows) : new Set<string>();
    const lost: string[] = [];
    rows.forEach((r, j) => {
      if (inserted.has(r.id)) out[rowIndex[j]] = { task: taskRowOf(r), created: true };
      else if (r.idempotencyKey !== null) lost.push(r.idempotencyKey);
    });
    if (lost.length) {
      // Another writer inserted the same idempotency key between our read and our insert.
      for (const r of await q.taskByIdempotencyKeys(lost)) {
        const i = firstOfKey.get(r.idempotencyKey as string) as number;
        out[i] = { task: r, created: false };
      }
    }
    for (let i = 0; i < tasks.length; i++) {
      if (out[i] !== undefined) continue;
      const twin = out[firstOfKey.get(tasks[i].idempotencyKey as string) as number];
      out[i] = 'task' in twin ? { task: twin.task, created: false } : twin;
    }
    const liveDeps = deps.filter((d) => inserted.has(d.childId));
    if (liveDeps.length) {
      await q.depInsertMany(liveDeps);
      await q.taskMarkHasChildren(unique(liveDeps.map((d) => d.parentId)));
    }
    return out;
  }

  /**
   * Claims up to `limit` ready tasks of one lambda for a worker: `overdue` of them from the
   * tasks that waited past their enqueue timeout (oldest first), the rest by priority.
   */
  async claim(p: { lambda: string; limit: number; overdue: number; workerId: string; leaseMs: number }): Promise<ClaimedRow[]> {
    const now = this.now();
    const base = { lambda: p.lambda, workerId: p.workerId, now, leaseUntil: now + p.leaseMs };
    const old = p.overdue > 0 ? await this.q.taskClaimOverdue({ ...base, limit: Math.min(p.overdue, p.limit) }) : [];
    if (old.length >= p.limit) return old;
    const fresh = await this.q.taskClaimReady({ ...base, limit: p.limit - old.length });
    return old.length ? old.concat(fresh) : fresh;
  }

  /** Records that executors started these attempts; answers the ids whose lease is still held. */
  start(items: StartItem[], leaseMs: number): Promise<Set<string>> {
    const now = this.now();
    return this.q.taskStartMany(items, now + leaseMs, now);
  }

  /** Renews leases; answers the attempts that are no longer held (the worker must abort them). */
  async renew(items: FencedItem[], leaseMs: number): Promise<FencedItem[]> {
    const ok = await this.q.taskRenewMany(items, this.now() + leaseMs);
    return items.filter((it) => !ok.has(it.id));
  }

  /** Gives back claimed tasks that never started; their attempt does not count. */
  async release(items: FencedItem[]): Promise<Set<string>> {
    const now = this.now();
    const back = await this.q.taskReleaseMany(items, now + this.ctx.timing.enqueueTimeoutMs, now);
    for (const r of back) this.enqueued.add(r.lambda);
    return new Set(back.map((r) => r.id));
  }

  /** Ends attempts in success; answers the ids accepted (the rest were stale). */
  async succeed(items: SuccessReport[], gate: GateLookup): Promise<Set<string>> {
    const now = this.now();
    const ended = await this.q.taskSucceedMany(items, now, now + this.ctx.timing.retentionMs);
    if (ended.length) {
      const startedAt = new Map(items.map((it) => [it.id, it.startedAt]));
      for (const e of ended) this.outcomes.push({ lambda: e.lambda, outcome: 'success', startedAt: startedAt.get(e.id) ?? null, finishedAt: now });
    }
    await this.afterEnded(ended, gate);
    return new Set(ended.map((e) => e.id));
  }

  /** Ends attempts in failure: retry after backoff, or FATAL_FAILURE when fatal or out of budget. */
  async fail(items: FailReport[], gate: GateLookup, opts: { dueBy?: number } = {}): Promise<Set<string>> {
    if (items.length === 0) return new Set();
    const now = this.now();
    const rows = new Map((await this.q.taskByIds(items.map((i) => i.id))).map((r) => [r.id, r]));
    const fails: FailItem[] = [];
    const attempts: AttemptRow[] = [];
    for (const it of items) {
      const row = rows.get(it.id);
      if (!row || row.attempt !== it.attempt || !canMove(row.state, 'fail')) continue;
      const d = decideFailure(
        { kind: it.kind, tries: row.tries, maxAttempts: row.maxAttempts, snoozeMs: it.snoozeMs },
        {
          now,
          backoff: this.ctx.lambda(row.lambda)?.backoff ?? DEFAULT_BACKOFF,
          random: this.ctx.random,
          retentionMs: this.ctx.timing.retentionMs,
        },
      );
      fails.push({
        id: it.id,
        attempt: it.attempt,
        dueBy: opts.dueBy ?? null,
        workerId: it.workerId,
        startedAt: it.startedAt,
        state: d.state,
        nextCheckAt: d.nextCheckAt,
        triesDelta: d.triesDelta,
        error: it.error,
      });
      attempts.push({
        taskId: it.id,
        attempt: it.attempt,
        workerId: it.workerId ?? row.workerId,
        startedAt: it.startedAt ?? row.startedAt,
        finishedAt: now,
        outcome: d.outcome,
        error: it.error,
      });
    }
    const ended = fails.length ? await this.q.taskFailMany(fails, now) : [];
    const accepted = new Set(ended.map((e) => e.id));
    for (const f of fails)
      if (f.state === 'RETRIABLE_FAILURE' && accepted.has(f.id)) this.earliestCheck = Math.min(this.earliestCheck, f.nextCheckAt);
    const kept = attempts.filter((a) => accepted.has(a.taskId));
    if (kept.length) await this.q.attemptInsertMany(kept);
    for (const a of kept) {
      this.outcomes.push({ lambda: (rows.get(a.taskId) as TaskRow).lambda, outcome: a.outcome, startedAt: a.startedAt, finishedAt: now });
    }
    await this.afterEnded(
      ended.filter((e) => e.state === 'FATAL_FAILURE'),
      gate,
    );
    return accepted;
  }

  /** Cancels a task that has not started; throws task_not_found or invalid_state. */
  async cancel(id: string, gate: GateLookup, reason = 'cancelled'): Promise<TaskRow> {
    const row = await this.mustGet(id);
    if (!canMove(row.state, 'cancel')) {
      throw new ConveyorError(
        'invalid_state',
        `task ${id} is ${row.state}; only NEW, ENQUEUED and RETRIABLE_FAILURE tasks can be cancelled`,
      );
    }
    const c = cancelled(reason, this.now(), this.ctx.timing);
    const ended = await this.q.taskPlaceMany([{ id, from: fromStates('cancel'), ...placeFields(c, this.now()) }], this.now());
    if (ended.length === 0) throw new ConveyorError('invalid_state', `task ${id} changed state while being cancelled; try again`);
    await this.afterEnded(ended, gate);
    return this.mustGet(id);
  }

  /** Re-drives a dead task (FATAL_FAILURE or CANCELLED) with a fresh attempt budget. */
  async redrive(id: string, gate: GateLookup): Promise<TaskRow> {
    const row = await this.mustGet(id);
    if (!canMove(row.state, 'redrive') || !(await this.q.taskRedrive(id, this.now()))) {
      throw new ConveyorError('invalid_state', `task ${id} is ${row.state}; only FATAL_FAILURE and CANCELLED tasks can be retried`);
    }
    const fresh = await this.mustGet(id);
    await this.replace([fresh], gate, { from: 'NEW', hold: null });
    return this.mustGet(id);
  }

  /**
   * The one sweep (ATF's store consumer): due NEW and RETRIABLE_FAILURE tasks are enqueued
   * (or held or dropped by their gate), expired leases are rescued as failed attempts (unless
   * `rescue: false`), and finished tasks past retention are deleted.
   */
  async sweep(gate: GateLookup, limit: number, opts: { rescue?: boolean } = {}): Promise<SweepResult> {
    const now = this.now();
    const due = await this.q.taskDue(now, limit, opts.rescue ?? true);
    const res: SweepResult = { enqueued: new Map(), rescued: 0, deleted: 0, dropped: 0, seen: due.length };
    const waiting = due.filter((r) => (r.state === 'NEW' || r.state === 'RETRIABLE_FAILURE') && r.hold === null);
    const leased = due.filter((r) => r.state === 'CLAIMED' || r.state === 'PROCESSING');
    const expired = due.filter((r) => isTerminal(r.state));

    const placed = await this.replace(waiting, gate, { from: null, hold: null });
    for (const p of placed) {
      if (p.state === 'ENQUEUED') res.enqueued.set(p.lambda, (res.enqueued.get(p.lambda) ?? 0) + 1);
      if (p.state === 'CANCELLED') res.dropped++;
    }
    if (leased.length) {
      const rescued = await this.fail(
        leased.map((r) => ({
          id: r.id,
          attempt: r.attempt,
          kind: 'lost' as const,
          workerId: r.workerId,
          startedAt: r.startedAt,
          error: LOST_LEASE,
        })),
        gate,
        { dueBy: now },
      );
      res.rescued = rescued.size;
    }
    if (expired.length) res.deleted = await this.q.taskDeleteMany(expired.map((r) => r.id));
    return res;
  }

  /**
   * Applies a gate to one page of the tasks it covers. `ready` pages hold ENQUEUED tasks,
   * `held` pages tasks parked by a gate. `pause` parks ready tasks; `drop` cancels ready and
   * held ones; `open` re-places held ones (highest priority first, so the most urgent are
   * ready first). Answers how many moved and the cursor of the next page (null when done).
   */
  async applyGate(
    p: {
      lambda: string;
      collection: string | null;
      mode: GateMode;
      source: 'ready' | 'held';
      limit: number;
      after: { priority: number; id: string } | null;
    },
    gate: GateLookup,
  ): Promise<{ moved: number; enqueued: number; next: { priority: number; id: string } | null }> {
    const rows = await this.q.taskOfGate({
      lambda: p.lambda,
      collection: p.collection === WHOLE_LAMBDA ? null : p.collection,
      limit: p.limit,
      after: p.after,
      source: p.source,
    });
    let placed: Array<Placement & { lambda: string }>;
    if (p.mode === 'open') placed = await this.replace(rows, gate, { from: null, hold: 'gate' });
    else if (p.mode === 'pause')
      placed = await this.move(rows, 'park', { state: 'NEW', hold: 'gate', nextCheckAt: null, reason: null }, gate);
    else placed = await this.move(rows, 'cancel', cancelled('dropped', this.now(), this.ctx.timing), gate);
    const last = rows.length === p.limit ? rows[rows.length - 1] : null;
    return {
      moved: placed.length,
      enqueued: placed.filter((x) => x.state === 'ENQUEUED').length,
      next: last ? { priority: last.priority, id: last.id } : null,
    };
  }

  /** Re-places waiting rows (due, released from a hold) with the current facts. */
  private async replace(
    rows: TaskRow[],
    gate: GateLookup,
    cond: { from: 'NEW' | null; hold: TaskRow['hold'] },
  ): Promise<Array<Placement & { lambda: string }>> {
    if (rows.length === 0) return [];
    const now = this.now();
    const ordered = rows.filter((r) => r.ordered && r.key !== null);
    const busy = ordered.length
      ? await this.q.taskOrderedBusy(ordered.map((r) => ({ lambda: r.lambda, key: r.key as string, exceptId: r.id })))
      : new Set<string>();
    const items: PlaceItem[] = [];
    const placements: Array<Placement & { lambda: string }> = [];
    for (const r of rows) {
      const from = cond.from ?? (r.state as 'NEW' | 'RETRIABLE_FAILURE');
      const p = place(
        {
          runAt: r.state === 'RETRIABLE_FAILURE' ? now : r.runAt,
          now,
          depsPending: 0,
          depFailed: false,
          keyBusy: r.ordered && r.key !== null && busy.has(key2(r.lambda, r.key)),
          gate: gate(r.lambda, r.collection),
          from,
        },
        this.ctx.timing,
      );
      if (p.state === from && p.hold === cond.hold && p.nextCheckAt === r.nextCheckAt) continue; // nothing changes
      if (p.state !== from && !canTransition(from, p.state))
        throw new Error(`placement ${from} -> ${p.state} is not a move of the state machine`);
      items.push({ id: r.id, from: [from], fromHold: cond.hold, ...placeFields(p, now) });
      placements.push({ ...p, lambda: r.lambda });
    }
    const ended = items.length ? await this.q.taskPlaceMany(items, now) : [];
    const moved = new Set(ended.map((e) => e.id));
    for (const e of ended) if (e.state === 'ENQUEUED') this.enqueued.add(e.lambda);
    for (const it of items) if (moved.has(it.id)) this.noteCheck(it);
    await this.afterEnded(
      ended.filter((e) => isTerminal(e.state)),
      gate,
    );
    return placements.filter((_, i) => moved.has(items[i].id));
  }

  /** Moves rows, each still in the hold it was read with, by one named move. */
  private async move(rows: TaskRow[], move: TaskMove, to: Placement, gate: GateLookup): Promise<Array<Placement & { lambda: string }>> {
    if (rows.length === 0) return [];
    const now = this.now();
    const items = rows.map((r) => ({ id: r.id, from: fromStates(move), fromHold: r.hold, ...placeFields(to, now) }));
    const ended = await this.q.taskPlaceMany(items, now);
    await this.afterEnded(
      ended.filter((e) => isTerminal(e.state)),
      gate,
    );
    return ended.map((e) => ({ ...to, lambda: e.lambda }));
  }

  /**
   * What follows the end of tasks: children of a success lose one pending parent (and start
   * when none is left); children of a failure are cancelled (dependency_failed), and so on
   * down; the next task waiting on an ordered key is released.
   */
  private async afterEnded(ended: EndedRow[], gate: GateLookup): Promise<void> {
    let wave = ended;
    while (wave.length) {
      for (const e of wave) this.ended.push(e);
      const next: EndedRow[] = [];
      const succeeded = wave.filter((e) => e.hasChildren && e.state === 'SUCCESS').map((e) => e.id);
      const died = wave.filter((e) => e.hasChildren && e.state !== 'SUCCESS').map((e) => e.id);
      if (succeeded.length) {
        const free = await this.q.taskDepResolve(await this.q.depWaitingChildren(succeeded));
        if (free.length) await this.replace(free, gate, { from: null, hold: 'deps' });
      }
      if (died.length) {
        const children = unique(await this.q.depWaitingChildren(died));
        const now = this.now();
        const c = cancelled('dependency_failed', now, this.ctx.timing);
        const items = children.map((id) => ({ id, from: fromStates('cancel'), fromHold: 'deps' as const, ...placeFields(c, now) }));
        if (items.length) next.push(...(await this.q.taskPlaceMany(items, now)));
      }
      for (const e of wave) {
        if (!e.ordered || e.key === null) continue;
        const head = await this.q.taskKeyNext(e.lambda, e.key);
        if (head) await this.replace([head], gate, { from: null, hold: 'key' });
      }
      wave = next;
    }
  }

  private noteCheck(p: { state: TaskState; nextCheckAt: number | null }): void {
    if (p.nextCheckAt !== null && !isTerminal(p.state) && p.state !== 'ENQUEUED')
      this.earliestCheck = Math.min(this.earliestCheck, p.nextCheckAt);
  }

  private async mustGet(id: string): Promise<TaskRow> {
    const row = await this.q.taskGet(id);
    if (!row) throw new ConveyorError('task_not_found', `no task ${id}`);
    return row;
  }
}

const LOST_LEASE = JSON.stringify({
  message: 'the attempt lost its lease: no heartbeat or outcome arrived before it expired (worker gone, stalled or cut off)',
  name: 'LeaseExpired',
});

function placeFields(p: Placement, now: number): Omit<PlaceItem, 'id' | 'from' | 'fromHold'> {
  return {
    state: p.state,
    hold: p.hold,
    nextCheckAt: p.nextCheckAt,
    reason: p.reason,
    finishedAt: isTerminal(p.state) ? now : null,
  };
}

function insertRowOf(t: NewTask, p: Placement, depsPending: number, now: number): InsertRow {
  return {
    id: t.id,
    lambda: t.lambda,
    collection: t.collection,
    state: p.state,
    payload: t.payload,
    priority: t.priority,
    runAt: t.runAt,
    key: t.key,
    ordered: t.ordered,
    idempotencyKey: t.idempotencyKey,
    maxAttempts: t.maxAttempts,
    timeoutMs: t.timeoutMs,
    reason: p.reason,
    hold: p.hold,
    depsPending,
    nextCheckAt: p.nextCheckAt,
    finishedAt: isTerminal(p.state) ? now : null,
    now,
  };
}

/** The row as the store now holds it, without reading it back. */
function taskRowOf(r: InsertRow): TaskRow {
  return {
    id: r.id,
    lambda: r.lambda,
    collection: r.collection,
    state: r.state,
    payload: r.payload,
    priority: r.priority,
    runAt: r.runAt,
    key: r.key,
    ordered: r.ordered,
    idempotencyKey: r.idempotencyKey,
    attempt: 0,
    tries: 0,
    maxAttempts: r.maxAttempts,
    timeoutMs: r.timeoutMs,
    result: null,
    error: null,
    reason: r.reason,
    hold: r.hold,
    depsPending: r.depsPending,
    createdAt: r.now,
    updatedAt: r.now,
    nextCheckAt: r.nextCheckAt,
    workerId: null,
    startedAt: null,
    finishedAt: r.finishedAt,
  };
}

function unique<T>(values: Array<T | null>): T[] {
  return [...new Set(values.filter((v): v is T => v !== null))];
}

function uniqueBy<T>(values: T[], keyOf: (v: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const v of values) if (!seen.has(keyOf(v))) seen.set(keyOf(v), v);
  return [...seen.values()];
}
