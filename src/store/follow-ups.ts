import type { GateLookup } from '../core/gate.js';
import { cancelled, type Placement, place } from '../core/placement.js';
import type { TaskRow } from '../core/task.js';
import { canTransition, fromStates, isTerminal, type TaskMove } from '../core/task-state.js';
import type { EndedRow, PlaceItem } from './driver.js';
import { unique } from './insert.js';
import type { StoreOps } from './store.js';

/*
 * What follows a placement or an end, in the same transaction as the write that caused it:
 * re-placing released rows, moving rows by a named move, and the follow-ups of an end
 * (children of a dependency, the next task of an ordered key).
 */

const key2 = (lambda: string, key: string) => `${lambda}\u0000${key}`;

/** Re-places waiting rows (due, released from a hold) with the current facts. */
export async function replaceRows(
  ops: StoreOps,
  rows: TaskRow[],
  gate: GateLookup,
  cond: { from: 'NEW' | null; hold: TaskRow['hold'] },
): Promise<Array<Placement & { lambda: string }>> {
  if (rows.length === 0) return [];
  const now = ops.now();
  const ordered = rows.filter((r) => r.ordered && r.key !== null).map((r) => ({ lambda: r.lambda, key: r.key as string, exceptId: r.id }));
  if (ordered.length) await ops.q.keyLock(ordered);
  const busy = ordered.length ? await ops.q.taskOrderedBusy(ordered) : new Set<string>();
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
      ops.ctx.timing,
    );
    if (p.state === from && p.hold === cond.hold && p.nextCheckAt === r.nextCheckAt) continue; // nothing changes
    if (p.state !== from && !canTransition(from, p.state))
      throw new Error(`placement ${from} -> ${p.state} is not a move of the state machine`);
    items.push({ id: r.id, from: [from], fromHold: cond.hold, ...placeFields(p, now) });
    placements.push({ ...p, lambda: r.lambda });
  }
  const ended = items.length ? await ops.q.taskPlaceMany(items, now) : [];
  const moved = new Set(ended.map((e) => e.id));
  for (const e of ended) if (e.state === 'ENQUEUED') ops.enqueued.add(e.lambda);
  for (const it of items) if (moved.has(it.id)) ops.noteCheck(it);
  await afterEnded(
    ops,
    ended.filter((e) => isTerminal(e.state)),
    gate,
  );
  return placements.filter((_, i) => moved.has(items[i].id));
}

/** Moves rows, each still in the hold it was read with, by one named move. */
export async function moveRows(
  ops: StoreOps,
  rows: TaskRow[],
  move: TaskMove,
  to: Placement,
  gate: GateLookup,
): Promise<Array<Placement & { lambda: string }>> {
  if (rows.length === 0) return [];
  const now = ops.now();
  const items = rows.map((r) => ({ id: r.id, from: fromStates(move), fromHold: r.hold, ...placeFields(to, now) }));
  const ended = await ops.q.taskPlaceMany(items, now);
  await afterEnded(
    ops,
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
export async function afterEnded(ops: StoreOps, ended: EndedRow[], gate: GateLookup): Promise<void> {
  let wave = ended;
  while (wave.length) {
    for (const e of wave) ops.ended.push(e);
    const next: EndedRow[] = [];
    const succeeded = wave.filter((e) => e.hasChildren && e.state === 'SUCCESS').map((e) => e.id);
    const died = wave.filter((e) => e.hasChildren && e.state !== 'SUCCESS').map((e) => e.id);
    if (succeeded.length) {
      const free = await ops.q.taskDepResolve(await ops.q.depWaitingChildren(succeeded));
      if (free.length) await replaceRows(ops, free, gate, { from: null, hold: 'deps' });
    }
    if (died.length) {
      const children = unique(await ops.q.depWaitingChildren(died));
      const now = ops.now();
      const c = cancelled('dependency_failed', now, ops.ctx.timing);
      const items = children.map((id) => ({ id, from: fromStates('cancel'), fromHold: 'deps' as const, ...placeFields(c, now) }));
      if (items.length) next.push(...(await ops.q.taskPlaceMany(items, now)));
    }
    const keyed = wave.filter((e) => e.ordered && e.key !== null);
    // Before looking for the next task: an insert adding one to the key commits first.
    if (keyed.length) await ops.q.keyLock(keyed.map((e) => ({ lambda: e.lambda, key: e.key as string })));
    for (const e of keyed) {
      const head = await ops.q.taskKeyNext(e.lambda, e.key as string);
      if (head) await replaceRows(ops, [head], gate, { from: null, hold: 'key' });
    }
    wave = next;
  }
}

export function placeFields(p: Placement, now: number): Omit<PlaceItem, 'id' | 'from' | 'fromHold'> {
  return {
    state: p.state,
    hold: p.hold,
    nextCheckAt: p.nextCheckAt,
    reason: p.reason,
    finishedAt: isTerminal(p.state) ? now : null,
  };
}
