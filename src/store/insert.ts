import type { GateLookup } from '../core/gate.js';
import { type Placement, place } from '../core/placement.js';
import { type ClaimedRow, claimedFields, type NewTask, type TaskRow } from '../core/task.js';
import { isDead, isTerminal, type TaskState, targetState } from '../core/task-state.js';
import { ConveyorError } from '../errors.js';
import type { InsertRow } from './driver.js';
import type { HandoutPlace, InsertOutcome, StoreOps } from './store.js';

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
  // Held until the commit: a parent that ends meanwhile must see the children (see the query).
  const parentState = new Map<string, TaskState>(
    (outsideParents.length ? await q.taskByIdsForUpdate(outsideParents) : []).map((r) => [r.id, r.state]),
  );
  const orderedPairs = uniqueBy(
    tasks.filter((t) => t.ordered && t.key !== null).map((t) => ({ lambda: t.lambda, key: t.key as string, exceptId: t.id })),
    (p) => key2(p.lambda, p.key),
  );
  if (orderedPairs.length) await q.keyLock(orderedPairs);
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
        error: new ConveyorError('unknown_dependency', `dependsOn: no task ${missing} (a parent must be a task that exists already)`),
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
    if (p.state !== 'ENQUEUED') ops.noteCheck(p);
    parentState.set(t.id, p.state);
    rows.push(insertRowOf(t, p, depsPending, now));
    rowIndex.push(i);
    for (const parentId of t.dependsOn) deps.push({ childId: t.id, parentId });
  }
  const places = handOut(ops, rows);

  let inserted: Set<string>;
  try {
    inserted = rows.length ? await q.taskInsertMany(rows) : new Set<string>();
  } catch (err) {
    if (places.size) ops.ctx.handout?.settle(ops, [], [...places.values()]); // the places go back
    throw err;
  }
  const lost: string[] = [];
  const written: Array<{ place: HandoutPlace; row: ClaimedRow }> = [];
  const unwritten: HandoutPlace[] = [];
  rows.forEach((r, j) => {
    const place = places.get(r);
    if (inserted.has(r.id)) {
      const task = taskRowOf(r);
      out[rowIndex[j]] = { task, created: true };
      ops.inserted.add(r.id);
      if (place) written.push({ place, row: claimedFields(task) });
    } else {
      if (r.idempotencyKey !== null) lost.push(r.idempotencyKey);
      if (place) unwritten.push(place);
    }
  });
  if (places.size) ops.ctx.handout?.settle(ops, written, unwritten);
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
 * Offers the batch's ready rows to the handout in claim order (priority, then age) and writes
 * the ones it places as claimed: state, attempt 1 and lease as a claim would have set them. The
 * rest stay ENQUEUED for the dispatcher's claim phase.
 */
function handOut(ops: StoreOps, rows: InsertRow[]): Map<InsertRow, HandoutPlace> {
  const ready = rows.filter((r) => r.state === 'ENQUEUED');
  const placed = new Map<InsertRow, HandoutPlace>();
  if (ready.length === 0) return placed;
  const handout = ops.ctx.handout;
  if (handout) {
    ready.sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const places = handout.assign(ops, ready);
    for (let j = 0; j < ready.length; j++) {
      const place = places[j];
      if (!place) continue;
      const r = ready[j] as InsertRow;
      r.state = targetState('claim');
      r.attempt = 1;
      r.workerId = place.workerId;
      r.nextCheckAt = place.leaseUntil;
      placed.set(r, place);
    }
  }
  for (const r of ready) if (!placed.has(r)) ops.enqueued.add(r.lambda);
  return placed;
}

function insertRowOf(t: NewTask, p: Placement, depsPending: number, now: number): InsertRow {
  return {
    id: t.id,
    lambda: t.lambda,
    collection: t.collection,
    state: p.state,
    attempt: 0,
    workerId: null,
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
    attempt: r.attempt,
    tries: r.attempt,
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
    workerId: r.workerId,
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
