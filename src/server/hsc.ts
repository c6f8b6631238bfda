import { jsonBytes, jsonTooDeep, PAYLOAD_DEPTH_MAX } from '../core/submit.js';
import { taskErrorOf } from '../core/task.js';
import type { AttemptRef, HeartbeatFrame, ReportFrame } from '../protocol/frames.js';
import type { StartItem } from '../store/driver.js';
import type { FailReport, StoreOps, SuccessReport } from '../store/store.js';
import { isTransient } from '../store/store-error.js';
import { type Dispatcher, releaseCapped, type Session } from './dispatcher.js';
import type { GateCache } from './gates.js';
import type { GroupCommit } from './group-commit.js';

export interface HscOptions {
  leaseMs: number;
  /** Largest result a handler may return, as JSON text. */
  maxResultBytes: number;
}

/** Counters a test or a metrics scrape can read. */
export interface HscCounters {
  /** Reports refused by fencing: the attempt was no longer held. */
  refused: number;
}

type Tagged<T> = T & { session: Session };

interface Reports {
  started: Array<Tagged<StartItem>>;
  done: Array<Tagged<SuccessReport>>;
  failed: Array<Tagged<FailReport>>;
  released: Array<Tagged<AttemptRef>>;
  /** The seqs of the reports these came in, answered with report_ack once they are written. */
  acks: Array<Tagged<{ seq: number }>>;
}

/**
 * Wait before writing reports again after the store was unavailable. Reports wait in memory
 * meanwhile: at most one start and one outcome per task a worker holds, and workers get no new
 * tasks while the store is away, so they are bounded by the workers' credit.
 */
const RETRY_MS = 500;

/**
 * The reports without those of an older attempt of a task that a newer attempt reports in the
 * same batch, which go to `refused`. The store answers which ids it wrote, so a stale worker's
 * late report beside the new holder's would read as written too; the older one is stale for
 * sure (a task's attempt only grows). One worker never reports two attempts of one task, so a
 * batch from one worker (the common case: the check costs 0.3-0.6 us a report) is taken as it is.
 */
function newestOnly(r: Reports, refused: Array<Tagged<AttemptRef>>): Omit<Reports, 'acks'> {
  const lists = [r.started, r.done, r.failed, r.released];
  const first = lists.find((l) => l.length > 0)?.[0]?.session;
  if (lists.every((l) => l.every((x) => x.session === first))) return r;
  const newest = new Map<string, number>();
  for (const list of lists) for (const x of list) newest.set(x.id, Math.max(x.attempt, newest.get(x.id) ?? 0));
  const current = <T extends Tagged<AttemptRef>>(list: T[]): T[] =>
    list.filter((x) => {
      if (x.attempt === newest.get(x.id)) return true;
      refused.push(x);
      return false;
    });
  return { started: current(r.started), done: current(r.done), failed: current(r.failed), released: current(r.released) };
}

/**
 * The heartbeat-and-status controller (ATF's HSC): takes workers' reports (started, done,
 * failed, released) and heartbeats, and writes them in batches through the group commit.
 * Every write is fenced by attempt, so a report from a worker that lost its lease is refused
 * and the worker is told to stop that attempt. A task whose start and outcome arrive in the
 * same batch is written once (the start time travels with the outcome). If the store is
 * unavailable, the reports go back in line and are written once it answers again (fencing
 * makes a late write safe); a worker's outcome then saves a re-run.
 */
export class Hsc {
  private started: Array<Tagged<StartItem>> = [];
  private done: Array<Tagged<SuccessReport>> = [];
  private failed: Array<Tagged<FailReport>> = [];
  private released: Array<Tagged<AttemptRef>> = [];
  private acks: Array<Tagged<{ seq: number }>> = [];
  private queued = false;
  private writing = false;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;
  readonly counters: HscCounters = { refused: 0 };

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
      const wrong = this.resultRefusal(result);
      if (wrong) {
        this.failed.push(this.refusedResult(session, d.id, d.attempt, d.startedAt, wrong));
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
    if (f.seq !== undefined) this.acks.push({ seq: f.seq, session });
    const finished = (f.done?.length ?? 0) + (f.failed?.length ?? 0) + (f.released?.length ?? 0);
    session.outstanding = Math.max(0, session.outstanding - finished);
    if (finished)
      releaseCapped(
        session,
        [...(f.done ?? []), ...(f.failed ?? []), ...(f.released ?? [])].map((x) => x.id),
      );
    if (f.credit) this.dispatcher.grant(session, f.credit);
    this.flush();
  }

  /** Stops retrying reports (the server is closing). */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  /** Queues one write of every pending report into the next group commit. */
  private flush(): void {
    // One write in flight at a time, even where flushes run in parallel (PostgreSQL): a start
    // and an outcome of one attempt in two parallel transactions could land out of order.
    if (this.queued || this.writing || this.retry || this.stopped) return;
    if (this.started.length + this.done.length + this.failed.length + this.released.length + this.acks.length === 0) return;
    this.queued = true;
    this.writing = true;
    let taken: Reports | null = null;
    this.commit
      // Not waiting for the fsync: a report lost to a power cut only re-runs work (docs/durability.md).
      .run(
        (ops) => {
          // Once: if the group commit re-runs this write alone after a failed flush, it writes
          // the same reports again.
          taken ??= this.take();
          return this.apply(ops, taken);
        },
        { durable: false },
      )
      .finally(() => {
        this.writing = false;
      })
      .then(
        (refused) => {
          this.refuse(refused);
          this.acknowledge(taken?.acks ?? []);
          this.flush(); // what arrived while this write was in flight
        },
        (err: unknown) => {
          if (taken === null) {
            // Failed before apply ran (write queue full, no connection): the reports are still
            // pending and no write is queued for them.
            this.queued = false;
          } else if (isTransient(err)) {
            this.putBack(taken);
          } else {
            // A report the store refused: those leases expire and the sweep re-runs the tasks
            // (sending it again would not help).
            this.acknowledge(taken.acks);
            this.flush();
            return;
          }
          this.retry = setTimeout(() => {
            this.retry = null;
            this.flush();
          }, RETRY_MS);
          this.retry.unref?.();
        },
      );
  }

  /** Renews the leases a worker holds and tells it which it lost. */
  heartbeat(session: Session, f: HeartbeatFrame): Promise<void> {
    // Attempts a worker was told it lost, or gave up after heartbeats went unanswered, are
    // dropped without an outcome, but their places come back as credit: the worker holds at
    // most what it has not given back. (Reports of one flush arrive before its next heartbeat.)
    session.outstanding = Math.min(session.outstanding, session.capacity - session.credit);
    this.dispatcher.heard(session, f.held);
    return this.commit
      .run((ops) => ops.renew(f.held, this.opts.leaseMs), { durable: false })
      .then((lost) => {
        session.link.send({ type: 'heartbeat_ack', seq: f.seq, lost });
      });
  }

  /** Takes every pending report; reports arriving from now on queue the next write. */
  private take(): Reports {
    this.queued = false;
    const out = { started: this.started, done: this.done, failed: this.failed, released: this.released, acks: this.acks };
    this.started = [];
    this.done = [];
    this.failed = [];
    this.released = [];
    this.acks = [];
    return out;
  }

  /** Puts reports whose write failed back in front of those that arrived since. */
  private putBack(r: Reports): void {
    this.started = r.started.concat(this.started);
    this.done = r.done.concat(this.done);
    this.failed = r.failed.concat(this.failed);
    this.released = r.released.concat(this.released);
    this.acks = r.acks.concat(this.acks);
  }

  private async apply(ops: StoreOps, reports: Reports): Promise<Array<Tagged<AttemptRef>>> {
    const refused: Array<Tagged<AttemptRef>> = [];
    const { started, done, failed, released } = newestOnly(reports, refused);
    const ending = new Set([...done, ...failed].map((x) => `${x.id}:${x.attempt}`));
    const starts = started.filter((s) => !ending.has(`${s.id}:${s.attempt}`));
    const gate = this.gates.lookup;
    if (starts.length) {
      const ok = await ops.start(starts, this.opts.leaseMs);
      for (const s of starts) if (!ok.has(s.id)) refused.push(s);
    }
    if (done.length) {
      const ok = await ops.succeed(done, gate);
      for (const d of done) if (!ok.has(d.id)) refused.push(d);
    }
    if (failed.length) {
      const ok = await ops.fail(failed, gate);
      for (const x of failed) if (!ok.has(x.id)) refused.push(x);
    }
    if (released.length) {
      const ok = await ops.release(released, gate);
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

  /**
   * Tells each worker the highest report seq now written (after any refusal of its items, so a
   * worker knows what was refused before it forgets what it sent). Until then the worker keeps
   * the outcomes, and sends them to the next server if this one closes first.
   */
  private acknowledge(acks: Array<Tagged<{ seq: number }>>): void {
    const last = new Map<Session, number>();
    for (const a of acks) last.set(a.session, Math.max(a.seq, last.get(a.session) ?? -1));
    for (const [s, seq] of last) s.link.send({ type: 'report_ack', seq });
  }

  /** Why a result cannot be kept, or null: too big, or too deep to be written into an answer (as payloads, see jsonTooDeep). */
  private resultRefusal(json: string): string | null {
    const bytes = jsonBytes(json);
    if (bytes > this.opts.maxResultBytes)
      return `the handler returned ${bytes} bytes of JSON, above the limit of ${this.opts.maxResultBytes}`;
    if (jsonTooDeep(json)) return `the handler returned a value nested more than ${PAYLOAD_DEPTH_MAX} levels deep`;
    return null;
  }

  private refusedResult(session: Session, id: string, attempt: number, startedAt: number, why: string): Tagged<FailReport> {
    const err = taskErrorOf(new Error(why));
    return { id, attempt, kind: 'fatal', error: JSON.stringify(err), workerId: session.workerId, startedAt, session };
  }
}
