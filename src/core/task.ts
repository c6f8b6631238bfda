import type { TaskState } from './task-state.js';

/** Why a waiting task is not in the due sweep: it waits for a gate, its parents, or an earlier task of its key. */
export type Hold = 'gate' | 'deps' | 'key';

/** A task as the store keeps it. Times are epoch milliseconds; payload, result and error are JSON text. */
export interface TaskRow {
  id: string;
  lambda: string;
  collection: string | null;
  state: TaskState;
  payload: string;
  priority: number;
  runAt: number;
  key: string | null;
  ordered: boolean;
  idempotencyKey: string | null;
  /** Fencing token: grows by one at every claim, never goes back. */
  attempt: number;
  /** Attempts spent of the budget (a release or a snooze gives one back; a re-drive resets it). */
  tries: number;
  maxAttempts: number;
  timeoutMs: number;
  result: string | null;
  error: string | null;
  /** Why the task was cancelled (`cancelled`, `dropped`, `dependency_failed`). */
  reason: string | null;
  hold: Hold | null;
  depsPending: number;
  createdAt: number;
  updatedAt: number;
  nextCheckAt: number | null;
  workerId: string | null;
  startedAt: number | null;
  finishedAt: number | null;
}

/** What a claim answers: the fields a worker needs to run the attempt (and runAt, for the queue-wait metric). */
export type ClaimedRow = Pick<
  TaskRow,
  'id' | 'lambda' | 'collection' | 'payload' | 'priority' | 'key' | 'attempt' | 'tries' | 'maxAttempts' | 'timeoutMs' | 'runAt'
>;

/** The claimed fields of a task row. */
export function claimedFields(r: TaskRow): ClaimedRow {
  return {
    id: r.id,
    lambda: r.lambda,
    collection: r.collection,
    payload: r.payload,
    priority: r.priority,
    key: r.key,
    attempt: r.attempt,
    tries: r.tries,
    maxAttempts: r.maxAttempts,
    timeoutMs: r.timeoutMs,
    runAt: r.runAt,
  };
}

/**
 * How long a task waited from being due (runAt) to its first claim; null for later attempts: a
 * retry or snooze is due when its backoff ends, which the row does not keep, and counting from
 * runAt would report the backoff as waiting for a worker.
 */
export function firstQueueWaitMs(r: ClaimedRow, claimedAt: number): number | null {
  return r.attempt === 1 ? Math.max(0, claimedAt - r.runAt) : null;
}

/** One finished attempt of a task (the current or last one is read from the task row). */
export interface AttemptRow {
  taskId: string;
  attempt: number;
  workerId: string | null;
  startedAt: number | null;
  finishedAt: number;
  /** success | error | timeout | lost | fatal | snoozed */
  outcome: AttemptOutcome;
  error: string | null;
}

export type AttemptOutcome = 'success' | 'error' | 'timeout' | 'lost' | 'fatal' | 'snoozed';

/** A task ready to be inserted: every default already applied. */
export interface NewTask {
  id: string;
  lambda: string;
  collection: string | null;
  payload: string;
  priority: number;
  runAt: number;
  key: string | null;
  ordered: boolean;
  idempotencyKey: string | null;
  maxAttempts: number;
  timeoutMs: number;
  dependsOn: string[];
}

/** The error of a failed attempt, as stored and shown. */
export interface TaskError {
  message: string;
  name?: string;
  code?: string;
  stack?: string;
}

/** The task as the API shows it (docs/api.md). */
export interface TaskView {
  id: string;
  lambda: string;
  collection: string | null;
  state: TaskState;
  payload: unknown;
  priority: number;
  runAt: string;
  key: string | null;
  ordered: boolean;
  attempt: number;
  tries: number;
  maxAttempts: number;
  timeoutMs: number;
  result: unknown;
  error: TaskError | null;
  reason: string | null;
  waitingFor: Hold | null;
  workerId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  createdAt: string;
  updatedAt: string;
  attempts?: AttemptView[];
}

export interface AttemptView {
  attempt: number;
  workerId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  outcome: AttemptOutcome | 'running' | 'claimed';
  error: TaskError | null;
}

// The last time formatted: a submitted batch shares one millisecond for its run, create and
// update times, and toISOString was 3% of the server's CPU in the stream bench.
let lastMs = Number.NaN;
let lastIso = '';
const iso = (ms: number | null): string | null => {
  if (ms === null) return null;
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
};
const parse = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

export function taskView(row: TaskRow, attempts?: AttemptRow[]): TaskView {
  const view: TaskView = {
    id: row.id,
    lambda: row.lambda,
    collection: row.collection,
    state: row.state,
    payload: parse(row.payload),
    priority: row.priority,
    runAt: iso(row.runAt) as string,
    key: row.key,
    ordered: row.ordered,
    attempt: row.attempt,
    tries: row.tries,
    maxAttempts: row.maxAttempts,
    timeoutMs: row.timeoutMs,
    result: parse(row.result),
    error: parse(row.error) as TaskError | null,
    reason: row.reason,
    waitingFor: row.hold,
    workerId: row.workerId,
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    createdAt: iso(row.createdAt) as string,
    updatedAt: iso(row.updatedAt) as string,
  };
  if (attempts) view.attempts = attemptViews(row, attempts);
  return view;
}

/** Finished attempts from the history, then the task's current attempt if it is still live or ended on the row. */
function attemptViews(row: TaskRow, attempts: AttemptRow[]): AttemptView[] {
  const out: AttemptView[] = attempts.map((a) => ({
    attempt: a.attempt,
    workerId: a.workerId,
    startedAt: iso(a.startedAt),
    finishedAt: iso(a.finishedAt),
    outcome: a.outcome,
    error: parse(a.error) as TaskError | null,
  }));
  const recorded = new Set(attempts.map((a) => a.attempt));
  // A success is not written to the history (it would cost an insert per task on the hot
  // path); the row itself holds the last attempt's worker, start and end.
  if (row.attempt > 0 && !recorded.has(row.attempt)) {
    const live = row.state === 'CLAIMED' || row.state === 'PROCESSING';
    if (live || row.state === 'SUCCESS') {
      out.push({
        attempt: row.attempt,
        workerId: row.workerId,
        startedAt: iso(row.startedAt),
        finishedAt: live ? null : iso(row.finishedAt),
        outcome: row.state === 'SUCCESS' ? 'success' : row.state === 'PROCESSING' ? 'running' : 'claimed',
        error: null,
      });
    }
  }
  return out.sort((a, b) => a.attempt - b.attempt);
}

/** Serialises an error thrown by a handler into what the store keeps (bounded, so a huge message cannot bloat rows). */
export function taskErrorOf(err: unknown, maxLength = 8192): TaskError {
  if (err instanceof Error) {
    // A handler's error may hold anything in these (an object as message, a number as name):
    // text, or the worker failed in its own code and the report carrying it would be refused.
    const out: TaskError = { message: textOf(err.message).slice(0, maxLength) };
    if (err.name !== undefined) out.name = textOf(err.name);
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code.slice(0, 128);
    if (err.stack) out.stack = textOf(err.stack).slice(0, maxLength);
    return out;
  }
  let message: string;
  try {
    message = typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err));
  } catch {
    message = String(err);
  }
  return { message: message.slice(0, maxLength) };
}

function textOf(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}
