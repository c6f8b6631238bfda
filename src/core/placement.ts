import type { GateMode } from './gate.js';
import type { Hold } from './task.js';
import type { TaskState } from './task-state.js';

/**
 * Where a task goes when it is created or comes due, and when it is next looked at
 * (ATF's "next trigger timestamp"). One sweep over next_check_at then finds due work,
 * stuck work and expired rows alike.
 */
export interface Placement {
  state: TaskState;
  hold: Hold | null;
  nextCheckAt: number | null;
  reason: string | null;
}

export interface PlacementFacts {
  runAt: number;
  now: number;
  /** Parents that have not succeeded yet. */
  depsPending: number;
  /** A parent already ended in FATAL_FAILURE or CANCELLED. */
  depFailed: boolean;
  /** An earlier task of the same lambda and key is still open (ordered tasks only). */
  keyBusy: boolean;
  gate: GateMode;
  /** The state it is in now (NEW for a new task). */
  from: 'NEW' | 'RETRIABLE_FAILURE';
}

export interface Timing {
  /** ENQUEUED tasks older than this take part in the age-ordered share of claims (aging). */
  enqueueTimeoutMs: number;
  /** How long finished tasks are kept. */
  retentionMs: number;
}

export function place(f: PlacementFacts, t: Timing): Placement {
  if (f.depFailed) return cancelled('dependency_failed', f.now, t);
  if (f.depsPending > 0) return { state: f.from, hold: 'deps', nextCheckAt: null, reason: null };
  if (f.keyBusy) return { state: f.from, hold: 'key', nextCheckAt: null, reason: null };
  if (f.runAt > f.now) return { state: f.from, hold: null, nextCheckAt: f.runAt, reason: null };
  if (f.gate === 'drop') return cancelled('dropped', f.now, t);
  if (f.gate === 'pause') return { state: f.from, hold: 'gate', nextCheckAt: null, reason: null };
  return { state: 'ENQUEUED', hold: null, nextCheckAt: f.now + t.enqueueTimeoutMs, reason: null };
}

export function cancelled(reason: string, now: number, t: Timing): Placement {
  return { state: 'CANCELLED', hold: null, nextCheckAt: now + t.retentionMs, reason };
}
