import type { Clock, Random } from '../clock.js';
import { DEFAULT_BACKOFF } from '../core/backoff.js';
import { decideFailure, type FailureKind } from '../core/failure.js';
import { type GateLookup, type GateMode, WHOLE_LAMBDA } from '../core/gate.js';
import type { LambdaConfig } from '../core/lambda.js';
import { cancelled, type Placement, type Timing } from '../core/placement.js';
import type { AttemptOutcome, AttemptRow, ClaimedRow, NewTask, TaskRow } from '../core/task.js';
import { canMove, fromStates, isDead, isTerminal, type TaskState } from '../core/task-state.js';
import { ConveyorError } from '../errors.js';
import type { Driver, EndedRow, FailItem, FencedItem, Queries, StartItem } from './driver.js';
import { afterEnded, moveRows, placeFields, replaceRows } from './follow-ups.js';
import { insertTasks, parentsOutside } from './insert.js';

export interface StoreContext {
  clock: Clock;
  random: Random;
  timing: Timing;
  /** The settings of a lambda, for its backoff when an attempt fails. */
  lambda(name: string): LambdaConfig | undefined;
  /** Gives fresh ready tasks to workers as they are inserted: the server's dispatcher; without one, inserts leave them ENQUEUED. */
  handout?: Handout;
}

/** A place at a worker for a task inserted ready: the insert writes the task as claimed by it. */
export interface HandoutPlace {
  workerId: string;
  leaseUntil: number;
}

/**
 * Hands tasks that are ready the moment they are inserted straight to workers with free
 * places, so the insert writes them claimed (attempt 1) and no claim statement follows: on
 * PostgreSQL a claim is a second row version of every task; on SQLite a second UPDATE.
 */
export interface Handout {
  /** A place for each of these ready tasks (in claim order: priority, then age), or null for those that stay ENQUEUED. */
  assign(ops: StoreOps, tasks: ReadonlyArray<{ id: string; lambda: string }>): Array<HandoutPlace | null>;
  /** After the insert: the placed tasks as written (to hand out after the commit), and the places of those not written (an idempotency key taken meanwhile). */
  settle(ops: StoreOps, written: Array<{ place: HandoutPlace; row: ClaimedRow }>, unwritten: HandoutPlace[]): void;
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

/**
 * The store as the rest of Conveyor sees it: transactions of {@link StoreOps}, whatever the
 * dialect underneath.
 */
export class Store {
  constructor(
    readonly driver: Driver,
    readonly ctx: StoreContext,
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

  /** Whether commits can be made durable after the fact (see DriverCapabilities.deferredSync). */
  get deferredSync(): boolean {
    return this.driver.capabilities.deferredSync;
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
  /** Tasks inserted in this transaction: claimed in it too, they may be handed out before its fsync. */
  readonly inserted = new Set<string>();

  constructor(
    readonly q: Queries,
    readonly ctx: StoreContext,
  ) {}

  /** Parents named in dependsOn that neither exist nor are among these tasks. */
  async missingParents(tasks: NewTask[]): Promise<Set<string>> {
    const wanted = parentsOutside(tasks);
    if (wanted.length === 0) return new Set();
    const found = new Set((await this.q.taskByIds(wanted)).map((r) => r.id));
    return new Set(wanted.filter((id) => !found.has(id)));
  }

  /** Inserts tasks with their first placement; a repeated idempotency key answers the existing task. */
  insert(tasks: NewTask[], gate: GateLookup): Promise<InsertOutcome[]> {
    return insertTasks(this, tasks, gate);
  }

  /**
   * Claims up to `limit` ready tasks of one lambda for a worker: `overdue` of them from the
   * tasks that waited past their enqueue timeout (oldest first), the rest by priority.
   * `overdueShort` tells that fewer overdue tasks than asked were there.
   */
  async claim(p: {
    lambda: string;
    limit: number;
    overdue: number;
    workerId: string;
    leaseMs: number;
  }): Promise<{ rows: ClaimedRow[]; overdueShort: boolean }> {
    const now = this.now();
    const base = { lambda: p.lambda, workerId: p.workerId, now, leaseUntil: now + p.leaseMs };
    const askOld = Math.min(p.overdue, p.limit);
    const old = askOld > 0 ? await this.q.taskClaimOverdue({ ...base, limit: askOld }) : [];
    const overdueShort = old.length < askOld;
    if (old.length >= p.limit) return { rows: old, overdueShort };
    const fresh = await this.q.taskClaimReady({ ...base, limit: p.limit - old.length });
    return { rows: old.length ? old.concat(fresh) : fresh, overdueShort };
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

  /**
   * Gives back claimed tasks that never started; their attempt does not count. A gate closed
   * while they were out (a worker gives back its prefetched tasks of a paused lambda) applies
   * to them now: applying the gate moved only the rows that were ready then.
   */
  async release(items: FencedItem[], gate: GateLookup): Promise<Set<string>> {
    const now = this.now();
    const back = await this.q.taskReleaseMany(items, now + this.ctx.timing.enqueueTimeoutMs, now);
    const gated = new Set(back.filter((r) => gate(r.lambda, r.collection) !== 'open').map((r) => r.id));
    if (gated.size) {
      const rows = await this.q.taskByIds([...gated]);
      const byMode = (mode: GateMode) => rows.filter((r) => r.state === 'ENQUEUED' && gate(r.lambda, r.collection) === mode);
      await moveRows(this, byMode('pause'), 'park', { state: 'NEW', hold: 'gate', nextCheckAt: null, reason: null }, gate);
      await moveRows(this, byMode('drop'), 'cancel', cancelled('dropped', now, this.ctx.timing), gate);
    }
    for (const r of back) if (!gated.has(r.id)) this.enqueued.add(r.lambda);
    return new Set(back.map((r) => r.id));
  }

  /** Ends attempts in success; answers the ids accepted (the rest were stale). */
  async succeed(items: SuccessReport[], gate: GateLookup): Promise<Set<string>> {
    const now = this.now();
    const ended = await this.q.taskSucceedMany(items, now, now + this.ctx.timing.retentionMs);
    if (ended.length) {
      const startedAt = new Map(items.map((it) => [it.id, it.startedAt]));
      for (const e of ended)
        this.outcomes.push({ lambda: e.lambda, outcome: 'success', startedAt: startedAt.get(e.id) ?? null, finishedAt: now });
    }
    await afterEnded(this, ended, gate);
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
    await afterEnded(
      this,
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
    await afterEnded(this, ended, gate);
    return this.mustGet(id);
  }

  /**
   * Re-drives a dead task (FATAL_FAILURE or CANCELLED) with a fresh attempt budget. A child
   * waits again for the parents that have not succeeded (cancelled while they ran, or re-driven
   * since), as at its submit; while one of them is dead it is refused: retry that one first.
   */
  async redrive(id: string, gate: GateLookup): Promise<TaskRow> {
    const row = await this.mustGet(id);
    const refused = () =>
      new ConveyorError('invalid_state', `task ${id} is ${row.state}; only FATAL_FAILURE and CANCELLED tasks can be retried`);
    if (!canMove(row.state, 'redrive')) throw refused();
    // Held until the commit, as an insert holds them (the child with them, all in id order as an
    // insert takes them): a parent that ends meanwhile must see the child.
    const parentIds = await this.q.depParents(id);
    const locked = await this.q.taskByIdsForUpdate([id, ...parentIds]);
    const parents = locked.filter((r) => r.id !== id);
    // Retention keeps a deleted parent's links only if it died (depDeleteByTask).
    const gone = parentIds.find((p) => !parents.some((r) => r.id === p));
    if (gone) {
      const why = `task ${id} depends on ${gone}, which ended without success and was deleted after its retention`;
      throw new ConveyorError('invalid_state', `${why}; it can no longer run`);
    }
    const dead = parents.find((p) => isDead(p.state));
    if (dead) throw new ConveyorError('invalid_state', `task ${id} depends on ${dead.id}, which is ${dead.state}; retry that task first`);
    const depsPending = parents.filter((p) => p.state !== 'SUCCESS').length;
    if (!(await this.q.taskRedrive(id, depsPending, this.now()))) throw refused();
    if (depsPending > 0) return this.mustGet(id);
    const fresh = await this.mustGet(id);
    await replaceRows(this, [fresh], gate, { from: 'NEW', hold: null });
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

    const placed = await replaceRows(this, waiting, gate, { from: null, hold: null });
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
    if (expired.length)
      res.deleted = await this.q.taskDeleteMany(
        expired.map((r) => r.id),
        now,
      );
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
    if (p.mode === 'open') placed = await replaceRows(this, rows, gate, { from: null, hold: 'gate' });
    else if (p.mode === 'pause')
      placed = await moveRows(this, rows, 'park', { state: 'NEW', hold: 'gate', nextCheckAt: null, reason: null }, gate);
    else placed = await moveRows(this, rows, 'cancel', cancelled('dropped', this.now(), this.ctx.timing), gate);
    const last = rows.length === p.limit ? rows[rows.length - 1] : null;
    return {
      moved: placed.length,
      enqueued: placed.filter((x) => x.state === 'ENQUEUED').length,
      next: last ? { priority: last.priority, id: last.id } : null,
    };
  }

  /** Notes a next check set on a waiting task, so the scheduler wakes in time. */
  noteCheck(p: { state: TaskState; nextCheckAt: number | null }): void {
    if (p.nextCheckAt !== null && !isTerminal(p.state) && p.state !== 'ENQUEUED')
      this.earliestCheck = Math.min(this.earliestCheck, p.nextCheckAt);
  }

  now(): number {
    return this.ctx.clock.now();
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
