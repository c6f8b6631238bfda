import type { Gate, GateMode } from '../core/gate.js';
import type { AttemptRow, ClaimedRow, Hold, TaskRow } from '../core/task.js';
import type { TaskState } from '../core/task-state.js';
import type { EndedRow } from './driver.js';

type Raw = Record<string, unknown>;

// Both drivers read snake_case columns; PostgreSQL returns BIGINT times as strings unless
// told otherwise, so numbers go through num().
const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const bool = (v: unknown): boolean => v === true || v === 1 || v === '1' || v === 't';

/** A gate row from either dialect. */
export function gateOf(r: Raw): Gate {
  return { lambda: r.lambda as string, collection: r.collection as string, mode: r.mode as GateMode };
}

/** A gate row with when it was set (gateChangedSince). */
export function gateChangeOf(r: Raw): Gate & { updatedAt: number } {
  return { ...gateOf(r), updatedAt: num(r.updated_at) };
}

/** A task row from either dialect. */
export function taskOf(r: Raw): TaskRow {
  return {
    id: r.id as string,
    lambda: r.lambda as string,
    collection: (r.collection as string | null) ?? null,
    state: r.state as TaskState,
    payload: r.payload as string,
    priority: num(r.priority),
    runAt: num(r.run_at),
    key: (r.key as string | null) ?? null,
    ordered: bool(r.ordered),
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    attempt: num(r.attempt),
    tries: num(r.tries),
    maxAttempts: num(r.max_attempts),
    timeoutMs: num(r.timeout_ms),
    result: (r.result as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    reason: (r.reason as string | null) ?? null,
    hold: (r.hold as Hold | null) ?? null,
    depsPending: num(r.deps_pending),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    nextCheckAt: numOrNull(r.next_check_at),
    workerId: (r.worker_id as string | null) ?? null,
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
  };
}

export function claimedOf(r: Raw): ClaimedRow {
  return {
    id: r.id as string,
    lambda: r.lambda as string,
    collection: (r.collection as string | null) ?? null,
    payload: r.payload as string,
    priority: num(r.priority),
    key: (r.key as string | null) ?? null,
    attempt: num(r.attempt),
    tries: num(r.tries),
    maxAttempts: num(r.max_attempts),
    timeoutMs: num(r.timeout_ms),
    runAt: num(r.run_at),
  };
}

export function endedOf(r: Raw): EndedRow {
  return {
    id: r.id as string,
    lambda: r.lambda as string,
    key: (r.key as string | null) ?? null,
    ordered: bool(r.ordered),
    hasChildren: bool(r.has_children),
    state: r.state as TaskState,
  };
}

export function attemptOf(r: Raw): AttemptRow {
  return {
    taskId: r.task_id as string,
    attempt: num(r.attempt),
    workerId: (r.worker_id as string | null) ?? null,
    startedAt: numOrNull(r.started_at),
    finishedAt: num(r.finished_at),
    outcome: r.outcome as AttemptRow['outcome'],
    error: (r.error as string | null) ?? null,
  };
}
