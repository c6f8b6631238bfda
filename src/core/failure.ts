import type { Random } from '../clock.js';
import { type BackoffOptions, backoffDelayMs } from './backoff.js';
import type { AttemptOutcome } from './task.js';

/** How an attempt that did not succeed ends. */
export type FailureKind = 'error' | 'timeout' | 'lost' | 'fatal' | 'snoozed';

export interface FailureDecision {
  state: 'RETRIABLE_FAILURE' | 'FATAL_FAILURE';
  /** When the task is next looked at: backoff end, or retention end for a dead task. */
  nextCheckAt: number;
  /** Change to the spent budget: a snooze gives its attempt back. */
  triesDelta: number;
  outcome: AttemptOutcome;
}

/**
 * Retry or give up. A fatal error ends the task at once; any other failure retries after
 * backoff until the budget is spent; a snooze (`retryAfter`) waits its delay and does not
 * count against the budget.
 */
export function decideFailure(
  a: { kind: FailureKind; tries: number; maxAttempts: number; snoozeMs?: number },
  ctx: { now: number; backoff: BackoffOptions; random: Random; retentionMs: number },
): FailureDecision {
  if (a.kind === 'snoozed') {
    return { state: 'RETRIABLE_FAILURE', nextCheckAt: ctx.now + Math.ceil(a.snoozeMs ?? 0), triesDelta: -1, outcome: 'snoozed' };
  }
  if (a.kind === 'fatal' || a.tries >= a.maxAttempts) {
    return { state: 'FATAL_FAILURE', nextCheckAt: ctx.now + ctx.retentionMs, triesDelta: 0, outcome: a.kind };
  }
  return {
    state: 'RETRIABLE_FAILURE',
    nextCheckAt: ctx.now + backoffDelayMs(a.tries, ctx.backoff, ctx.random),
    triesDelta: 0,
    outcome: a.kind,
  };
}
