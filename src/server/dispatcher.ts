import type { Clock } from '../clock.js';
import type { ClaimedRow } from '../core/task.js';
import type { ServerFrame } from '../protocol/frames.js';
import type { Handout, HandoutPlace, StoreOps } from '../store/store.js';
import type { GateCache } from './gates.js';

/** The server's end of one worker connection, whatever carries it. */
export interface WorkerLink {
  /** Hands claimed tasks to the worker (each transport encodes the payload text its own way). */
  sendTasks(rows: ClaimedRow[]): void;
  send(frame: ServerFrame): void;
  close(code: number, reason: string): void;
}

/** A connected worker as the dispatcher sees it. */
export interface Session {
  readonly id: string;
  readonly workerId: string;
  readonly lambdas: ReadonlySet<string>;
  readonly link: WorkerLink;
  /** Places the worker granted that hold no task yet. */
  credit: number;
  /** Tasks handed out and not yet reported finished or released. */
  outstanding: number;
  /** Places the worker has in all (its first grant) and handlers it runs at once. */
  readonly capacity: number;
  readonly concurrency: number;
  readonly connectedAt: number;
  /** Lambdas this worker runs at most so many at once (their `concurrency`; see roomFor). */
  readonly caps: ReadonlyMap<string, number>;
  /**
   * The tasks of each capped lambda the worker holds, with when each was sent (epoch ms;
   * Infinity while its flush commits): from hand-out to its report, or to a heartbeat that no
   * longer lists it.
   */
  readonly capped: Map<string, Map<string, number>>;
}

/**
 * How many more tasks of `lambda` a worker may hold: two rounds of its cap (one running, one
 * waiting), or no limit for a lambda without one. A worker's places are shared by its
 * lambdas; filled with tasks of a lambda it runs one at a time, they would leave its other
 * lambdas one place per finished task of that one.
 */
export function roomFor(s: Session, lambda: string): number {
  const cap = s.caps.get(lambda);
  return cap === undefined ? Number.POSITIVE_INFINITY : 2 * cap - (s.capped.get(lambda)?.size ?? 0);
}

/**
 * Counts tasks a worker now holds against their lambdas' caps. Until they are sent (after their
 * flush is durable) no heartbeat can list them, so no heartbeat may prune them (see sentCapped).
 */
function holdCapped(s: Session, rows: ReadonlyArray<{ id: string; lambda: string }>): void {
  for (const r of rows) {
    if (!s.caps.has(r.lambda)) continue;
    let held = s.capped.get(r.lambda);
    if (!held) s.capped.set(r.lambda, (held = new Map()));
    held.set(r.id, Number.POSITIVE_INFINITY);
  }
}

/** Tasks on their way to the worker: from now on a heartbeat that misses them may prune them. */
function sentCapped(s: Session, rows: ReadonlyArray<{ id: string; lambda: string }>, now: number): void {
  if (s.capped.size === 0) return;
  for (const r of rows) {
    const held = s.capped.get(r.lambda);
    if (held?.has(r.id)) held.set(r.id, now);
  }
}

/** Tasks a worker no longer holds (finished, released, lost, or never handed out). */
export function releaseCapped(s: Session, ids: Iterable<string>): void {
  if (s.capped.size === 0) return;
  for (const id of ids) for (const held of s.capped.values()) held.delete(id);
}

/**
 * A heartbeat lists every task the worker holds. One handed out before `since` (so the worker
 * had it in time for this list) and missing from it was dropped without an outcome (a lease
 * the worker was told it lost, an attempt it gave up on): it no longer counts against its cap.
 */
function pruneCapped(s: Session, held: ReadonlyArray<{ id: string }>, since: number): void {
  if (s.capped.size === 0) return;
  const holds = new Set(held.map((h) => h.id));
  for (const tasks of s.capped.values()) for (const [id, at] of tasks) if (at < since && !holds.has(id)) tasks.delete(id);
}

/**
 * Whether to claim for a worker now. A worker that still holds more than a round of work
 * (more tasks than its concurrency) waits until a quarter of its places are free, so claims
 * come in batches: each claim is a durable commit (an fsync) and the per-task cost of a claim
 * falls with its size. Measured on the bulk bench (50 slots, 500 places, 50k tasks, three
 * interleaved runs): median drain 41.7k tasks/s against 40.7k when claiming at every report.
 *
 * While ingestion has payloads waiting to be written (`intakeBusy`), a worker is served only
 * when it runs low (no more than a round of work left): accepting requests durably comes first
 * (the queue is there to absorb bursts) and the backlog drains as soon as intake calms down.
 * Measured on the ingest bench (64 connections, 10 payloads a request): 4.7-4.9k requests/s
 * against 3.2-3.5k when claims kept every worker full, the drain finishing ~30 s after the load.
 */
export function worthClaiming(s: Session, intakeBusy = false): boolean {
  if (s.credit <= 0) return false;
  if (intakeBusy) return s.outstanding <= s.concurrency;
  return s.outstanding <= s.concurrency || s.credit * 4 >= s.capacity;
}

export interface DispatcherOptions {
  leaseMs: number;
  claimBatchMax: number;
  agingShare: number;
  clock: Clock;
}

/**
 * How long a lambda's claims skip the overdue query after it found fewer overdue tasks than it
 * asked for. A task turns overdue only a whole enqueue timeout after it became ready, so the
 * check need not run with every claim; aging still starts within this much of a task turning
 * overdue, and while overdue tasks are found, every claim takes its share of them. On
 * PostgreSQL the empty query was a round trip inside every (serialized) claim: in a 20,000-task
 * bulk drain, 72 of them took 135 ms of the 800 ms spent claiming.
 */
export const OVERDUE_RECHECK_MS = 1000;

interface Delivery {
  session: Session;
  rows: ClaimedRow[];
}

/** A worker's place given to a task as it is inserted. */
class Place implements HandoutPlace {
  readonly workerId: string;
  constructor(
    readonly session: Session,
    readonly leaseUntil: number,
    readonly taskId: string,
  ) {
    this.workerId = session.workerId;
  }
}

/**
 * The dispatcher: hands ready tasks to connected workers, never more than each has credit
 * for. A task that is ready as it is inserted, of a lambda with no older ready task, goes to a
 * worker with a free place in the insert itself (the Handout of the store); the rest are
 * claimed inside every group-commit flush (beforeCommit), so a task inserted in a flush is
 * claimed in the same transaction. Both are delivered after the commit. Each worker's credit
 * is split across its lambdas that have ready work; a claim gives `agingShare` of its places
 * to tasks past their enqueue timeout, oldest first, so low priorities cannot starve.
 */
export class Dispatcher implements Handout {
  private readonly sessions = new Map<string, Session>();
  /** Lambdas that may have ready tasks; a claim that comes back short removes its lambda. */
  private readonly ready = new Set<string>();
  /** Claims made in each flush transaction, handed out once that flush is durable. */
  private readonly deliveries = new Map<StoreOps, Delivery[]>();
  /**
   * Transactions forgotten (rolled back, or given up on): a driver may tell a flush it failed
   * while its transaction still runs (PostgreSQL's liveness guard), so claims can end after.
   */
  private readonly forgotten = new WeakSet<StoreOps>();
  private readonly agingCarry = new Map<string, number>();
  /** When each worker's last heartbeat came (see heard). */
  private readonly beats = new WeakMap<Session, number>();
  /** Lambdas whose last overdue query came back short, until when their claims skip it. */
  private readonly overdueQuiet = new Map<string, number>();
  private rotate = 0;
  private poke: () => void = () => {};
  private claiming: Promise<unknown> = Promise.resolve();
  /** Whether submits wait to be written (ingestion): claims then wait until a worker runs low. */
  intakeBusy: () => boolean = () => false;
  /**
   * Claims made for a worker that left before they could be sent: given back at once (as a
   * worker gives back what it will not run), so they neither wait out a lease nor spend an attempt.
   */
  unsent: (s: Session, rows: ClaimedRow[]) => void = () => {};

  constructor(
    private readonly gates: GateCache,
    private readonly opts: DispatcherOptions,
  ) {}

  /** Connects the dispatcher to the group commit that will run its claim phase. */
  bind(poke: () => void): void {
    this.poke = poke;
  }

  /**
   * A worker's new session. `held`: what it still holds from an earlier one (a reconnect),
   * which counts against the caps at once, as if sent now.
   */
  attach(s: Session, held: ReadonlyArray<{ id: string; lambda: string }> = []): void {
    holdCapped(s, held);
    sentCapped(s, held, this.opts.clock.now());
    this.sessions.set(s.id, s);
    for (const l of s.lambdas) this.ready.add(l);
    this.poke();
  }

  /** A worker's heartbeat, listing what it holds: tasks it dropped stop counting against their caps. */
  heard(s: Session, held: ReadonlyArray<{ id: string }>): void {
    const now = this.opts.clock.now();
    const last = this.beats.get(s);
    this.beats.set(s, now);
    if (last !== undefined) pruneCapped(s, held, last);
  }

  detach(sessionId: string): Session | undefined {
    const s = this.sessions.get(sessionId);
    this.sessions.delete(sessionId);
    return s;
  }

  session(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  all(): Session[] {
    return [...this.sessions.values()];
  }

  /** A worker freed places. */
  grant(s: Session, credit: number): void {
    if (credit <= 0) return;
    s.credit += credit;
    this.poke();
  }

  /** Tasks of these lambdas may have become ready (insert, sweep, resume, release). */
  markReady(lambdas: Iterable<string>): void {
    // Only a lambda that was not marked calls for a claim phase: one still marked is claimed
    // for by the next one anyway (after every commit, PostgreSQL's flushes mark again what they
    // left ready, and a poke each time cost an empty flush).
    let any = false;
    for (const l of lambdas) {
      if (this.ready.has(l)) continue;
      this.ready.add(l);
      any = true;
    }
    if (any) this.poke();
  }

  /** Whether tasks of this lambda may still be ready (no claim for it came back short since it was marked). */
  mayHaveReady(lambda: string): boolean {
    return this.ready.has(lambda);
  }

  /** Whether a connected worker runs this lambda. */
  serves(lambda: string): boolean {
    for (const s of this.sessions.values()) if (s.lambdas.has(lambda)) return true;
    return false;
  }

  /** Whether a claim phase now would probably claim: a worker has credit and a lambda may have ready work. */
  mayClaim(): boolean {
    if (this.ready.size === 0) return false;
    for (const s of this.sessions.values()) if (worthClaiming(s, this.intakeBusy())) return true;
    return false;
  }

  /**
   * GroupCommit hook: claim for every worker with credit, inside the flush transaction.
   * Answers whether it claimed tasks inserted before this transaction (those must be durable
   * before they are handed out; see deliverFresh).
   */
  claimPhase(ops: StoreOps): Promise<boolean> {
    // One claim phase at a time: flushes may run in parallel (PostgreSQL), and two claim phases
    // reading the same credit at once would hand a worker more than it granted.
    const run = this.claiming.then(() => this.claimNow(ops));
    this.claiming = run.catch(() => false);
    return run;
  }

  /**
   * Handout: a place for each fresh ready task whose lambda has no older ready task (those are
   * claimed first, in order: ready ones the dispatcher knows of, and those this transaction
   * made ready before the insert, such as a parent's children), while a worker of the lambda
   * has credit. A worker with an idle handler comes before one whose places are only buffer,
   * and the workers take turns. No claim statement follows for the tasks placed, so no commit
   * is saved by waiting for a batch (worthClaiming's rule): any free place takes one. A lambda
   * whose task found no place is ready from here on.
   */
  assign(ops: StoreOps, tasks: ReadonlyArray<{ id: string; lambda: string }>): Array<HandoutPlace | null> {
    const out: Array<HandoutPlace | null> = new Array(tasks.length).fill(null);
    if (this.sessions.size === 0) return out;
    const leaseUntil = this.opts.clock.now() + this.opts.leaseMs;
    const sessions = [...this.sessions.values()];
    for (let i = 0; i < tasks.length; i++) {
      const { lambda } = tasks[i] as { lambda: string };
      if (this.ready.has(lambda) || ops.enqueued.has(lambda)) continue;
      const s = this.placeFor(sessions, lambda);
      if (!s) {
        this.ready.add(lambda);
        continue;
      }
      s.credit--;
      s.outstanding++;
      holdCapped(s, [tasks[i] as { id: string; lambda: string }]);
      out[i] = new Place(s, leaseUntil, (tasks[i] as { id: string }).id);
    }
    return out;
  }

  /** The next worker in turn for a task of this lambda: one with an idle handler if any, else one with a free place. */
  private placeFor(sessions: Session[], lambda: string): Session | undefined {
    let spare: Session | undefined;
    for (let k = 0; k < sessions.length; k++) {
      const s = sessions[(this.rotate + k) % sessions.length] as Session;
      if (s.credit <= 0 || !s.lambdas.has(lambda) || roomFor(s, lambda) <= 0) continue;
      if (s.outstanding < s.concurrency) {
        this.rotate = (this.rotate + k + 1) % sessions.length;
        return s;
      }
      spare ??= s;
    }
    if (spare) this.rotate = (sessions.indexOf(spare) + 1) % sessions.length;
    return spare;
  }

  /** Handout: the placed tasks that were written go out after the commit; the others give their places back. */
  settle(ops: StoreOps, written: Array<{ place: HandoutPlace; row: ClaimedRow }>, unwritten: HandoutPlace[]): void {
    // An insert that ended after its flush was given up on (see forgotten): nothing goes out.
    if (this.forgotten.has(ops)) {
      unwritten = unwritten.concat(written.map((w) => w.place));
      written = [];
    }
    for (const p of unwritten) {
      const s = (p as Place).session;
      s.credit++;
      s.outstanding--;
      releaseCapped(s, [(p as Place).taskId]);
    }
    if (unwritten.length) this.poke();
    if (written.length === 0) return;
    const bySession = new Map<Session, ClaimedRow[]>();
    for (const { place, row } of written) {
      const s = (place as Place).session;
      const rows = bySession.get(s);
      if (rows) rows.push(row);
      else bySession.set(s, [row]);
    }
    const list = this.deliveries.get(ops) ?? [];
    for (const [session, rows] of bySession) list.push({ session, rows });
    this.deliveries.set(ops, list);
  }

  private async claimNow(ops: StoreOps): Promise<boolean> {
    for (const l of ops.enqueued) this.ready.add(l);
    ops.enqueued.clear();
    if (this.ready.size === 0 || this.sessions.size === 0) return false;
    const sessions = [...this.sessions.values()];
    // Start at a different worker each flush so none is always served first.
    this.rotate = (this.rotate + 1) % sessions.length;
    for (let k = 0; k < sessions.length; k++) {
      const s = sessions[(this.rotate + k) % sessions.length];
      if (!worthClaiming(s, this.intakeBusy())) continue;
      // Capped lambdas first: what their caps leave of the credit goes to the others.
      const lambdas = [...s.lambdas]
        .filter((l) => this.ready.has(l) && this.gates.lambdaMode(l) === 'open' && roomFor(s, l) > 0)
        .sort((a, b) => Number(s.caps.has(b)) - Number(s.caps.has(a)));
      // Not for a worker that left while earlier claims of this phase ran: what it got would
      // wait a whole lease and count as a lost attempt (send drops it).
      for (let j = 0; j < lambdas.length && s.credit > 0 && this.sessions.get(s.id) === s; j++) {
        const lambda = lambdas[j];
        const want = Math.min(this.opts.claimBatchMax, Math.ceil(s.credit / (lambdas.length - j)), roomFor(s, lambda));
        const overdue = this.agingShareOf(lambda, want);
        // Held while the claim runs: an insert of another flush may place tasks meanwhile (assign).
        s.credit -= want;
        let rows: ClaimedRow[] = [];
        try {
          const claimed = await ops.claim({ lambda, limit: want, overdue, workerId: s.workerId, leaseMs: this.opts.leaseMs });
          rows = claimed.rows;
          if (claimed.overdueShort) this.overdueQuiet.set(lambda, this.opts.clock.now() + OVERDUE_RECHECK_MS);
        } finally {
          s.credit += want - rows.length;
        }
        // Its flush was given up on while this claim ran: nothing of it will be handed out.
        if (this.forgotten.has(ops)) {
          s.credit += rows.length;
          return false;
        }
        if (rows.length < want) this.ready.delete(lambda);
        if (rows.length === 0) continue;
        s.outstanding += rows.length;
        holdCapped(s, rows);
        const list = this.deliveries.get(ops) ?? [];
        list.push({ session: s, rows });
        this.deliveries.set(ops, list);
      }
    }
    const made = this.deliveries.get(ops);
    return (made ?? []).some((d) => d.rows.some((r) => !ops.inserted.has(r.id)));
  }

  /**
   * GroupCommit hook, right after the commit and before its fsync: hands out the tasks this
   * flush both inserted and claimed. Their insert and claim are one commit, so if a power cut
   * took it, the task and its claim vanish together (the submit was not acknowledged yet) and
   * no attempt number can be handed out twice. Measured on the latency bench this saves the
   * fsync (0.2 to 2 ms) between a submit and its handler's start.
   */
  deliverFresh(ops: StoreOps): ClaimedRow[] {
    const out = this.deliveries.get(ops);
    if (!out || ops.inserted.size === 0) return [];
    const sent: ClaimedRow[] = [];
    for (const d of out) {
      const fresh = d.rows.filter((r) => ops.inserted.has(r.id));
      if (fresh.length === 0) continue;
      d.rows = d.rows.filter((r) => !ops.inserted.has(r.id));
      this.send(d.session, fresh);
      for (const r of fresh) sent.push(r);
    }
    return sent;
  }

  /** GroupCommit hook: the claims of this flush are durable; hand the tasks out. Answers what was claimed. */
  deliver(ops: StoreOps): ClaimedRow[] {
    const out = this.deliveries.get(ops);
    if (!out) return [];
    this.deliveries.delete(ops);
    const claimed: ClaimedRow[] = [];
    for (const d of out) {
      if (d.rows.length) this.send(d.session, d.rows);
      for (const r of d.rows) claimed.push(r);
    }
    return claimed;
  }

  private send(s: Session, rows: ClaimedRow[]): void {
    if (this.sessions.get(s.id) !== s) {
      if (rows.length) this.unsent(s, rows); // a worker that left meanwhile
      return;
    }
    sentCapped(s, rows, this.opts.clock.now());
    s.link.sendTasks(rows);
  }

  /** GroupCommit hook: the flush rolled back (or its fsync failed); its claims are not handed out. */
  forget(ops: StoreOps | null): void {
    if (ops) this.forgotten.add(ops);
    const out = ops ? this.deliveries.get(ops) : undefined;
    if (!ops || !out) return;
    this.deliveries.delete(ops);
    for (const d of out) {
      d.session.credit += d.rows.length;
      d.session.outstanding -= d.rows.length;
      releaseCapped(
        d.session,
        d.rows.map((r) => r.id),
      );
      for (const r of d.rows) this.ready.add(r.lambda);
    }
    this.poke();
  }

  /** Places of this claim that go to the oldest tasks, carrying fractions over between claims. */
  private agingShareOf(lambda: string, want: number): number {
    if (this.opts.agingShare <= 0) return 0;
    const quiet = this.overdueQuiet.get(lambda);
    if (quiet !== undefined) {
      if (this.opts.clock.now() < quiet) return 0;
      this.overdueQuiet.delete(lambda);
    }
    const carry = (this.agingCarry.get(lambda) ?? 0) + want * this.opts.agingShare;
    const n = Math.floor(carry);
    this.agingCarry.set(lambda, carry - n);
    return n;
  }
}
