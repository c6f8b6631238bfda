import { taskErrorOf } from '../core/task.js';
import type { AttemptRef, HeartbeatFrame, ReportFrame } from '../protocol/frames.js';
import type { StartItem } from '../store/driver.js';
import type { FailReport, StoreOps, SuccessReport } from '../store/store.js';
import type { Dispatcher, Session } from './dispatcher.js';
import type { GateCache } from './gates.js';
import type { GroupCommit } from './group-commit.js';

export interface HscOptions {
  leaseMs: number;
  /** Largest result a handler may return, as JSON text. */
  maxResultBytes: number;
}

/** Counters a test or a metrics scrape can read. */
export interface HscCounters {
  succeeded: number;
  failed: number;
  /** Reports refused by fencing: the attempt was no longer held. */
  refused: number;
}

type Tagged<T> = T & { session: Session };

/**
 * The heartbeat-and-status controller (ATF's HSC): takes workers' reports (started, done,
 * failed, released) and heartbeats, and writes them in batches through the group commit.
 * Every write is fenced by attempt, so a report from a worker that lost its lease is refused
 * and the worker is told to stop that attempt. A task whose start and outcome arrive in the
 * same batch is written once (the start time travels with the outcome).
 */
export class Hsc {
  private started: Array<Tagged<StartItem>> = [];
  private done: Array<Tagged<SuccessReport>> = [];
  private failed: Array<Tagged<FailReport>> = [];
  private released: Array<Tagged<AttemptRef>> = [];
  private queued = false;
  readonly counters: HscCounters = { succeeded: 0, failed: 0, refused: 0 };

  constructor(
    private readonly commit: GroupCommit,
    private readonly dispatcher: Dispatcher,
    private readonly gates: GateCache,
    private readonly opts: HscOptions,
  ) {}

  report(session: Session, f: ReportFrame): void {
    for (const s of f.started ?? [])
      this.started.push({ id: s.id, attempt: s.attempt, workerId: session.workerId, startedAt: s.at, session });
    for (const d of f.done ?? []) {
      const result = d.resultJson ?? JSON.stringify(d.result === undefined ? null : d.result);
      if (result.length > this.opts.maxResultBytes) {
        this.failed.push(this.tooLarge(session, d.id, d.attempt, d.startedAt, result.length));
        continue;
      }
      this.done.push({ id: d.id, attempt: d.attempt, workerId: session.workerId, startedAt: d.startedAt, result, session });
    }
    for (const x of f.failed ?? []) {
      this.failed.push({
        id: x.id,
        attempt: x.attempt,
        kind: x.kind,
        error: JSON.stringify(x.error ?? { message: 'unknown error' }),
        workerId: session.workerId,
        startedAt: x.startedAt,
        snoozeMs: x.snoozeMs,
        session,
      });
    }
    for (const r of f.released ?? []) this.released.push({ ...r, session });
    const finished = (f.done?.length ?? 0) + (f.failed?.length ?? 0) + (f.released?.length ?? 0);
    session.outstanding = Math.max(0, session.outstanding - finished);
    if (f.credit) this.dispatcher.grant(session, f.credit);
    if (!this.queued && this.started.length + this.done.length + this.failed.length + this.released.length > 0) {
      this.queued = true;
      this.commit
        // Not waiting for the fsync: a report lost to a power cut only re-runs work (docs/durability.md).
        .run((ops) => this.apply(ops), { durable: false })
        .then(
          (refused) => this.refuse(refused),
          () => {
            // The write failed (store down): the attempts keep their leases until they expire,
            // then the sweep re-runs them; the workers' heartbeats will tell them.
          },
        );
    }
  }

  /** Renews the leases a worker holds and tells it which it lost. */
  heartbeat(session: Session, f: HeartbeatFrame): Promise<void> {
    return this.commit
      .run((ops) => ops.renew(f.held, this.opts.leaseMs), { durable: false })
      .then((lost) => {
        session.link.send({ type: 'heartbeat_ack', seq: f.seq, lost });
      });
  }

  private async apply(ops: StoreOps): Promise<Array<Tagged<AttemptRef>>> {
    this.queued = false;
    const started = this.started;
    const done = this.done;
    const failed = this.failed;
    const released = this.released;
    this.started = [];
    this.done = [];
    this.failed = [];
    this.released = [];

    const ending = new Set([...done, ...failed].map((x) => `${x.id}:${x.attempt}`));
    const starts = started.filter((s) => !ending.has(`${s.id}:${s.attempt}`));
    const refused: Array<Tagged<AttemptRef>> = [];
    const gate = this.gates.lookup;
    if (starts.length) {
      const ok = await ops.start(starts, this.opts.leaseMs);
      for (const s of starts) if (!ok.has(s.id)) refused.push(s);
    }
    if (done.length) {
      const ok = await ops.succeed(done, gate);
      this.counters.succeeded += ok.size;
      for (const d of done) if (!ok.has(d.id)) refused.push(d);
    }
    if (failed.length) {
      const ok = await ops.fail(failed, gate);
      this.counters.failed += ok.size;
      for (const x of failed) if (!ok.has(x.id)) refused.push(x);
    }
    if (released.length) {
      const ok = await ops.release(released);
      for (const r of released) if (!ok.has(r.id)) refused.push(r);
    }
    return refused;
  }

  private refuse(refused: Array<Tagged<AttemptRef>>): void {
    if (refused.length === 0) return;
    this.counters.refused += refused.length;
    const bySession = new Map<Session, AttemptRef[]>();
    for (const r of refused) {
      const list = bySession.get(r.session) ?? [];
      list.push({ id: r.id, attempt: r.attempt });
      bySession.set(r.session, list);
    }
    for (const [s, items] of bySession) s.link.send({ type: 'refused', items, reason: 'stale_attempt' });
  }

  private tooLarge(session: Session, id: string, attempt: number, startedAt: number, size: number): Tagged<FailReport> {
    const err = taskErrorOf(new Error(`the handler returned ${size} bytes of JSON, above the limit of ${this.opts.maxResultBytes}`));
    return { id, attempt, kind: 'fatal', error: JSON.stringify(err), workerId: session.workerId, startedAt, session };
  }
}
