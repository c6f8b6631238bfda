import type { AttemptRef, DoneItem, FailedItem } from '../protocol/frames.js';

/**
 * Outcomes per report frame at most before it is sent without waiting for the event-loop turn.
 * A frame tends to become a commit of its own (on SQLite about 0.85 ms of WAL writes): 128, not
 * 64, took a 50,000-task bulk drain from 29.1-30.7k to 31.5-32.2k tasks/s (docs/benchmarks.md).
 */
export const REPORT_CHUNK = 128;
/**
 * Result and error text per report frame at most. A server closes the connection on a frame
 * over 64 MiB (docs/protocol.md), and a character may be three bytes of UTF-8: 128 results of
 * the default 1 MiB were twice that, and the same frame went out again after every reconnect.
 */
const REPORT_TEXT = 16 * 1024 * 1024;

export const refKey = (r: AttemptRef) => `${r.id}:${r.attempt}`;

/** The outcomes of one report frame, with the seq a server that acknowledges answers. */
export interface OutcomeFrame {
  done: DoneItem[];
  failed: FailedItem[];
  seq?: number;
}

/**
 * A worker's finished attempts until the server has written them: those not sent yet, and,
 * with a server that acknowledges reports (report_ack), those sent and not yet acknowledged,
 * which a new session sends again. A frame written into a connection that is already gone (a
 * stalled worker the server dropped, a cut network) would otherwise lose finished work.
 */
export class Outcomes {
  private done: DoneItem[] = [];
  private failed: FailedItem[] = [];
  /** Whether the server answers reports with report_ack (from its welcome). */
  private acks = false;
  private seq = 0;
  /** Sent and not acknowledged yet, oldest first. */
  private unacked: OutcomeFrame[] = [];
  /** Sent again after a reconnect: a refusal of these may also mean the first copy arrived. */
  private resent = new Set<string>();

  /** Not sent yet. */
  get pending(): number {
    return this.done.length + this.failed.length;
  }

  /** Not sent yet, or sent and not acknowledged. */
  get unwritten(): number {
    return this.pending + this.unacked.reduce((n, r) => n + r.done.length + r.failed.length, 0);
  }

  add(o: { done: DoneItem } | { failed: FailedItem }): void {
    if ('done' in o) this.done.push(o.done);
    else this.failed.push(o.failed);
  }

  /** A new session: what the last one did not acknowledge goes out again, ahead of newer outcomes. */
  welcome(acks: boolean): void {
    this.acks = acks;
    if (this.unacked.length === 0) return;
    const done = this.unacked.flatMap((r) => r.done);
    const failed = this.unacked.flatMap((r) => r.failed);
    this.unacked = [];
    if (acks) for (const x of [...done, ...failed]) this.resent.add(refKey(x));
    this.done = done.concat(this.done);
    this.failed = failed.concat(this.failed);
  }

  /**
   * Takes every pending outcome, cut into frames of at most REPORT_CHUNK outcomes and
   * REPORT_TEXT of result and error text; at least one frame, empty when nothing is pending
   * (it carries the rest of a report).
   */
  take(): OutcomeFrame[] {
    const frames: OutcomeFrame[] = [];
    let d = 0;
    let f = 0;
    do {
      let n = 0;
      let text = 0;
      const d0 = d;
      const f0 = f;
      for (; d < this.done.length && n < REPORT_CHUNK; d++, n++) {
        const size = this.done[d].resultJson?.length ?? 0;
        if (n > 0 && text + size > REPORT_TEXT) break;
        text += size;
      }
      for (; f < this.failed.length && n < REPORT_CHUNK; f++, n++) {
        const { message, stack } = this.failed[f].error;
        const size = message.length + (stack?.length ?? 0);
        if (n > 0 && text + size > REPORT_TEXT) break;
        text += size;
      }
      const frame: OutcomeFrame = { done: this.done.slice(d0, d), failed: this.failed.slice(f0, f) };
      if (this.acks && n > 0) {
        frame.seq = ++this.seq;
        this.unacked.push(frame);
      }
      frames.push(frame);
    } while (d + f < this.pending);
    this.done = [];
    this.failed = [];
    return frames;
  }

  /** report_ack: the server wrote every report up to `seq`. */
  acknowledged(seq: number): void {
    while (this.unacked.length && (this.unacked[0].seq as number) <= seq) {
      const r = this.unacked.shift() as OutcomeFrame;
      for (const x of [...r.done, ...r.failed]) this.resent.delete(refKey(x));
    }
  }

  /** How many of these refused attempts were sent again after a reconnect. */
  resentOf(items: AttemptRef[]): number {
    return items.filter((r) => this.resent.delete(refKey(r))).length;
  }
}
