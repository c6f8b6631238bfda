import { describe, expect, it } from 'vitest';
import { allowedTransitions, canMove, canTransition, fromStates, TASK_STATES, type TaskState } from '../../src/core/task-state.js';

// The whole table, written out once more by hand: a change to the machine must change this test.
const ALLOWED: Array<[TaskState, TaskState]> = [
  ['NEW', 'ENQUEUED'],
  ['RETRIABLE_FAILURE', 'ENQUEUED'],
  ['ENQUEUED', 'NEW'],
  ['ENQUEUED', 'CLAIMED'],
  ['CLAIMED', 'ENQUEUED'],
  ['CLAIMED', 'PROCESSING'],
  ['CLAIMED', 'SUCCESS'],
  ['PROCESSING', 'SUCCESS'],
  ['CLAIMED', 'RETRIABLE_FAILURE'],
  ['PROCESSING', 'RETRIABLE_FAILURE'],
  ['CLAIMED', 'FATAL_FAILURE'],
  ['PROCESSING', 'FATAL_FAILURE'],
  ['NEW', 'CANCELLED'],
  ['ENQUEUED', 'CANCELLED'],
  ['RETRIABLE_FAILURE', 'CANCELLED'],
  ['FATAL_FAILURE', 'NEW'],
  ['CANCELLED', 'NEW'],
];

describe('task state machine', () => {
  it('lists exactly the allowed transitions', () => {
    const listed = allowedTransitions().map(([f, t]) => `${f}->${t}`);
    expect(new Set(listed)).toEqual(new Set(ALLOWED.map(([f, t]) => `${f}->${t}`)));
  });

  for (const from of TASK_STATES) {
    for (const to of TASK_STATES) {
      const allowed = ALLOWED.some(([f, t]) => f === from && t === to);
      it(`${allowed ? 'allows' : 'refuses'} ${from} -> ${to}`, () => {
        expect(canTransition(from, to)).toBe(allowed);
      });
    }
  }

  it('claims only from ENQUEUED, cancels nothing running, ends nothing twice', () => {
    expect(fromStates('claim')).toEqual(['ENQUEUED']);
    expect(canMove('PROCESSING', 'cancel')).toBe(false);
    expect(canMove('CLAIMED', 'cancel')).toBe(false);
    for (const t of ['SUCCESS', 'FATAL_FAILURE', 'CANCELLED'] as const) {
      expect(canMove(t, 'succeed')).toBe(false);
      expect(canMove(t, 'fail')).toBe(false);
      expect(canMove(t, 'claim')).toBe(false);
    }
  });
});
