import type { AttemptRef } from '../protocol/frames.js';

type Waiter = (lost: AttemptRef[] | null) => void;

/**
 * Heartbeats sent and not answered yet, and who waits for each answer (ctx.heartbeat()). A
 * heartbeat is given up (its waiters get null) only once it went a whole interval without an
 * answer: ctx.heartbeat() sends one of its own, and several handlers calling it at once must
 * not fail each other's.
 */
export class HeartbeatAcks {
  private readonly pending = new Map<number, { at: number; waiters: Waiter[] }>();

  /** A heartbeat went out; those older than `intervalMs` are given up now. */
  sent(seq: number, now: number, intervalMs: number): void {
    for (const [s, { at }] of this.pending) if (now - at >= intervalMs) this.answer(s, null);
    this.pending.set(seq, { at: now, waiters: [] });
  }

  /** Calls `w` with the answer to heartbeat `seq`: the attempts it lost, or null for none in time. */
  wait(seq: number, w: Waiter): void {
    const entry = this.pending.get(seq);
    if (entry) entry.waiters.push(w);
    else w(null);
  }

  answer(seq: number, lost: AttemptRef[] | null): void {
    const entry = this.pending.get(seq);
    this.pending.delete(seq);
    for (const w of entry?.waiters ?? []) w(lost);
  }

  /** Gives up every pending heartbeat (the worker stopped). */
  giveUp(): void {
    for (const seq of [...this.pending.keys()]) this.answer(seq, null);
  }
}
