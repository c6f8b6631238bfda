import type { GateLookup } from '../core/gate.js';
import { type Placement, place } from '../core/placement.js';
import type { NewTask, TaskRow } from '../core/task.js';
import { isDead, isTerminal, type TaskState } from '../core/task-state.js';
import { ConveyorError } from '../errors.js';
import type { InsertRow } from './driver.js';
import type { InsertOutcome, StoreOps } from './store.js';

const key2 = (lambda: string, key: string) => `${lambda}\u0000${key}`;

/** The parents named in dependsOn that are not among these tasks themselves. */
export function parentsOutside(tasks: NewTask[]): string[] {
  if (!tasks.some((t) => t.dependsOn.length > 0)) return [];
  const here = new Set(tasks.map((t) => t.id));
  return unique(tasks.flatMap((t) => t.dependsOn)).filter((id) => !here.has(id));
}

/**
 * Inserts tasks with their first placement, in one round of reads and one batch insert:
 * repeated idempotency keys answer the existing task (also between two tasks of one batch),
 * parents are looked up once for every dependsOn, and ordered keys get one busy check per key.
 */
export async function insertTasks(ops: StoreOps, tasks: NewTask[], gate: GateLookup): Promise<InsertOutcome[]> {
  const now = ops.now();
  const { q } = ops;
  const out: InsertOutcome[] = new Array(tasks.length);
  const idemKeys = unique(tasks.map((t) => t.idempotencyKey));
  const existing = new Map((idemKeys.length ? await q.taskByIdempotencyKeys(idemKeys) : []).map((r) => [r.idempotencyKey, r]));
  const outsideParents = parentsOutside(tasks);
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
      if (isDead(s)) depFailed = true;
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
      ops.ctx.timing,
    );
    if (k !== null && !isTerminal(p.state)) busy.add(k); // later tasks of this key in the batch wait
    if (p.state === 'ENQUEUED') ops.enqueued.add(t.lambda);
    else ops.noteCheck(p);
    parentState.set(t.id, p.state);
    rows.push(insertRowOf(t, p, depsPending, now));
    rowIndex.push(i);
    for (const parentId of t.dependsOn) deps.push({ childId: t.id, parentId });
  }

  const inserted = rows.length ? await q.taskInsertMany(rows) : new Set<string>();
  const lost: string[] = [];
  rows.forEach((r, j) => {
    if (inserted.has(r.id)) {
      out[rowIndex[j]] = { task: taskRowOf(r), created: true };
      ops.inserted.add(r.id);
    } else if (r.idempotencyKey !== null) lost.push(r.idempotencyKey);
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

export function unique<T>(values: Array<T | null>): T[] {
  return [...new Set(values.filter((v): v is T => v !== null))];
}

function uniqueBy<T>(values: T[], keyOf: (v: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const v of values) if (!seen.has(keyOf(v))) seen.set(keyOf(v), v);
  return [...seen.values()];
}
