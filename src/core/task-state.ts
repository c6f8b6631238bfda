/**
 * The task state machine (Dropbox ATF), the only place that decides which moves exist.
 *
 * ```
 * NEW ──due, not gated, deps met──▶ ENQUEUED ──claim──▶ CLAIMED ──start──▶ PROCESSING ──▶ SUCCESS
 *  │ ▲                               │  ▲                  │                   │ └──fatal / budget spent──▶ FATAL_FAILURE
 *  │ └────────gate closed────────────┘  └────release──────┘                   │
 *  │                                    ▲                                      │
 *  │                                    └──backoff elapsed── RETRIABLE_FAILURE ◀┘ (error, timeout, lost lease)
 *  └──cancel (also from ENQUEUED, RETRIABLE_FAILURE)──▶ CANCELLED
 * FATAL_FAILURE, CANCELLED ──re-drive──▶ NEW
 * ```
 *
 * Two moves go beyond the blueprint's diagram, each for a reason:
 * - ENQUEUED → NEW parks ready work when its lambda or collection is paused, so the ready set
 *   (what claims scan) never holds gated rows that every claim would have to skip.
 * - CLAIMED → ENQUEUED returns a claimed-but-never-started task (worker draining, gate closed)
 *   without spending an attempt of its budget. The attempt number still grows at the next
 *   claim, so it stays a strictly increasing fencing token.
 *
 * Stores build their conditional updates from {@link fromStates}; nothing else encodes moves.
 */
export const TASK_STATES = [
  'NEW',
  'ENQUEUED',
  'CLAIMED',
  'PROCESSING',
  'SUCCESS',
  'FATAL_FAILURE',
  'RETRIABLE_FAILURE',
  'CANCELLED',
] as const;

export type TaskState = (typeof TASK_STATES)[number];

/** Named moves, so a caller says what happens rather than which states it touches. */
export type TaskMove =
  | 'enqueue' // NEW or RETRIABLE_FAILURE is due: ready to be claimed
  | 'park' // a closed gate sends ready work back to wait
  | 'claim' // a dispatcher takes it for a worker (attempt + 1)
  | 'release' // a worker gives back a task it never started
  | 'start' // an executor began running it
  | 'succeed'
  | 'fail' // retriable failure: error, timeout or lost lease, budget left
  | 'fail_fatal' // fatal error or attempt budget spent
  | 'cancel'
  | 'redrive'; // operator re-runs a dead task

const MOVES: Readonly<Record<TaskMove, { from: readonly TaskState[]; to: TaskState }>> = {
  enqueue: { from: ['NEW', 'RETRIABLE_FAILURE'], to: 'ENQUEUED' },
  park: { from: ['ENQUEUED'], to: 'NEW' },
  claim: { from: ['ENQUEUED'], to: 'CLAIMED' },
  release: { from: ['CLAIMED'], to: 'ENQUEUED' },
  start: { from: ['CLAIMED'], to: 'PROCESSING' },
  // CLAIMED is allowed where the start report and the outcome arrive in one batch: the store
  // applies start and outcome as one write (the attempt's start time travels with the outcome).
  succeed: { from: ['CLAIMED', 'PROCESSING'], to: 'SUCCESS' },
  fail: { from: ['CLAIMED', 'PROCESSING'], to: 'RETRIABLE_FAILURE' },
  fail_fatal: { from: ['CLAIMED', 'PROCESSING'], to: 'FATAL_FAILURE' },
  cancel: { from: ['NEW', 'ENQUEUED', 'RETRIABLE_FAILURE'], to: 'CANCELLED' },
  redrive: { from: ['FATAL_FAILURE', 'CANCELLED'], to: 'NEW' },
};

export const TERMINAL_STATES: readonly TaskState[] = ['SUCCESS', 'FATAL_FAILURE', 'CANCELLED'];
export const OPEN_STATES: readonly TaskState[] = TASK_STATES.filter((s) => !TERMINAL_STATES.includes(s));
/** States in which a worker holds a lease on the task's current attempt. */
export const LEASED_STATES: readonly TaskState[] = ['CLAIMED', 'PROCESSING'];

/** Ended without success: children of such a task are cancelled (dependency_failed). */
export function isDead(state: TaskState): boolean {
  return state === 'FATAL_FAILURE' || state === 'CANCELLED';
}

export function isTerminal(state: TaskState): boolean {
  return TERMINAL_STATES.includes(state);
}

export function isTaskState(value: unknown): value is TaskState {
  return typeof value === 'string' && (TASK_STATES as readonly string[]).includes(value);
}

/** The states a move may start from; stores put these in their `WHERE state IN (...)`. */
export function fromStates(move: TaskMove): readonly TaskState[] {
  return MOVES[move].from;
}

export function targetState(move: TaskMove): TaskState {
  return MOVES[move].to;
}

export function canMove(from: TaskState, move: TaskMove): boolean {
  return MOVES[move].from.includes(from);
}

/** Every (from, to) pair the machine allows, for the documentation and the tests. */
export function allowedTransitions(): Array<[TaskState, TaskState, TaskMove]> {
  const out: Array<[TaskState, TaskState, TaskMove]> = [];
  for (const [move, { from, to }] of Object.entries(MOVES) as Array<[TaskMove, (typeof MOVES)[TaskMove]]>) {
    for (const f of from) out.push([f, to, move]);
  }
  return out;
}

export function canTransition(from: TaskState, to: TaskState): boolean {
  return allowedTransitions().some(([f, t]) => f === from && t === to);
}
