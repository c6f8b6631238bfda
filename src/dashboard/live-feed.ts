import { type AttemptOutcome, type ClaimedRow, firstQueueWaitMs } from '../core/task.js';
import type { Engine, EngineEvents, LambdaSummary } from '../server/engine.js';
import type { AttemptEnd } from '../store/store.js';
import { LatencyWindow, type Percentiles } from './latency-window.js';

/** What happened during one tick. */
export interface TickCounts {
  submitted: number;
  started: number;
  succeeded: number;
  /** Attempts that ended in error, timeout, lost lease or fatal error (snoozes are not failures). */
  failed: number;
}

export type FailureKind = Exclude<AttemptOutcome, 'success' | 'snoozed'>;

/** One tick of the feed: counts since the previous tick, latencies over the sliding window. */
export interface LivePoint {
  /** Server time of the tick, epoch ms. */
  at: number;
  /** Since the previous tick (counts divided by it are rates). */
  intervalMs: number;
  totals: TickCounts & { failures: Record<FailureKind, number> };
  /** Handler run time (finish - start) over the window. */
  runMs: Percentiles | null;
  /** Queue wait (first claim - runAt) over the window. */
  waitMs: Percentiles | null;
  /** Lambdas with activity in this tick or samples in the window. */
  lambdas: Record<
    string,
    { tick: TickCounts; failures: Record<FailureKind, number>; runMs: Percentiles | null; waitMs: Percentiles | null }
  >;
}

/** The JSON sent each tick on GET /v1/live (with `history` on the first message only). */
export interface LiveSnapshot {
  point: LivePoint;
  history?: LivePoint[];
  /** Points closed while the previous snapshot was still being read (oldest first; sent before `point`). */
  missed?: LivePoint[];
  /** Lambdas with gates, settings, counts by state (counts are cached up to 2 s by the engine). */
  lambdas: LambdaSummary[];
  workers: Array<{ workerId: string; lambdas: string[]; outstanding: number; credit: number; connectedAt: number }>;
  /** Writes waiting for the next group commit. */
  commitPending: number;
  /** Worker reports refused by fencing since the server started. */
  refusedTotal: number;
}

/** A stream to one dashboard. `send` may drop a message when the client is slow. */
export interface LiveClient {
  send(text: string): void;
  end(): void;
}

export interface LiveFeedOptions {
  /** @default 1000 */
  tickMs?: number;
  /** Ticks in the latency window. @default 10 */
  windowTicks?: number;
  /** Ticks kept for a dashboard that opens later. @default 300 (five minutes) */
  historyPoints?: number;
  /**
   * The most JSON text the history of a first snapshot (and the ticks a slow one missed) takes:
   * the newest points that fit. A point holds an entry per busy lambda (about 260 bytes), so
   * five minutes of 100 busy lambdas would be 8 MB, past what the dashboard reads in one
   * message; it then shows less history instead of none. @default 4 MiB
   */
  historyBytes?: number;
  /** Open streams; a new one beyond it closes the oldest. @default 32 */
  maxClients?: number;
}

const FAILURES: readonly FailureKind[] = ['error', 'timeout', 'lost', 'fatal'];

class Stats {
  tick: TickCounts = zeroTick();
  failures: Record<FailureKind, number> = { error: 0, timeout: 0, lost: 0, fatal: 0 };
  readonly run: LatencyWindow;
  readonly wait: LatencyWindow;
  constructor(windowTicks: number) {
    this.run = new LatencyWindow(windowTicks);
    this.wait = new LatencyWindow(windowTicks);
  }
}

/**
 * The dashboard's live feed: counts the engine's batched events (one pass per flush, a
 * counter and a log2 per task), and once a tick turns them into a {@link LivePoint}, keeps the
 * last few minutes of points, and sends a snapshot to every open stream. Memory is fixed:
 * two latency windows per lambda, `historyPoints` points, `maxClients` streams. Store reads
 * (counts by state) happen only while a stream is open, once per tick for all of them.
 *
 * Modes: stopped -> running (start: listeners and the tick timer) -> stopped (stop: both
 * removed, every stream ended).
 */
export class LiveFeed {
  private readonly opts: Required<LiveFeedOptions>;
  private readonly total: Stats;
  private readonly byLambda = new Map<string, Stats>();
  /** Points as JSON text, made once at their tick: every first snapshot sends the same history again. */
  private readonly history: string[] = [];
  private readonly unsent: string[] = [];
  private readonly clients = new Set<LiveClient>();
  private timer: NodeJS.Timeout | null = null;
  private lastTickAt: number;
  private sending = false;

  constructor(
    private readonly engine: Engine,
    opts: LiveFeedOptions = {},
  ) {
    this.opts = { tickMs: 1000, windowTicks: 10, historyPoints: 300, historyBytes: 4 * 1024 * 1024, maxClients: 32, ...opts };
    this.total = new Stats(this.opts.windowTicks);
    this.lastTickAt = engine.config.clock.now();
  }

  start(): void {
    if (this.timer) return;
    this.engine.events.on('claimed', this.onClaimed);
    this.engine.events.on('attempts', this.onAttempts);
    this.engine.events.on('submitted', this.onSubmitted);
    this.timer = setInterval(() => this.tick(), this.opts.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.engine.events.off('claimed', this.onClaimed);
    this.engine.events.off('attempts', this.onAttempts);
    this.engine.events.off('submitted', this.onSubmitted);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Adds a stream: it gets a snapshot with the history at once, then one per tick. Answers its unsubscribe. */
  subscribe(client: LiveClient): () => void {
    if (this.clients.size >= this.opts.maxClients) {
      const oldest = this.clients.values().next().value as LiveClient;
      this.clients.delete(oldest);
      oldest.end();
    }
    this.clients.add(client);
    const last = this.history[this.history.length - 1] ?? JSON.stringify(this.emptyPoint());
    void this.snapshot(last, true).then((text) => {
      if (this.clients.has(client)) client.send(text);
    });
    return () => {
      this.clients.delete(client);
    };
  }

  /** Closes the current tick (the timer calls it; tests may too). */
  tick(): LivePoint {
    const now = this.engine.config.clock.now();
    const point: LivePoint = {
      at: now,
      intervalMs: Math.max(0, now - this.lastTickAt),
      totals: { ...this.total.tick, failures: { ...this.total.failures } },
      runMs: this.total.run.percentiles(),
      waitMs: this.total.wait.percentiles(),
      lambdas: {},
    };
    this.lastTickAt = now;
    for (const [name, s] of this.byLambda) {
      const runMs = s.run.percentiles();
      const waitMs = s.wait.percentiles();
      const t = s.tick;
      if (runMs || waitMs || t.submitted + t.started + t.succeeded + t.failed > 0)
        point.lambdas[name] = { tick: t, failures: { ...s.failures }, runMs, waitMs };
      roll(s);
    }
    roll(this.total);
    const entry = JSON.stringify(point);
    this.history.push(entry);
    if (this.history.length > this.opts.historyPoints) this.history.shift();
    if (this.clients.size === 0) this.unsent.length = 0;
    else if (this.sending) {
      // One store read and one JSON text per tick, whatever the number of streams: a tick that
      // comes while the previous one is still reading counts goes out with the next one.
      this.unsent.push(entry);
      if (this.unsent.length > this.opts.historyPoints) this.unsent.shift();
    } else {
      this.sending = true;
      void this.snapshot(entry, false, this.unsent.splice(0))
        .then((text) => {
          for (const c of this.clients) c.send(text);
        })
        .finally(() => {
          this.sending = false;
        });
    }
    return point;
  }

  private async snapshot(point: string, withHistory: boolean, missed: string[] = []): Promise<string> {
    let lambdas: LambdaSummary[] = [];
    try {
      lambdas = await this.engine.lambdas();
    } catch (err) {
      this.engine.log.warn({ err }, 'live feed: lambda counts unavailable');
    }
    const rest: Omit<LiveSnapshot, 'point' | 'history' | 'missed'> = {
      lambdas,
      workers: this.engine.dispatcher.all().map((s) => ({
        workerId: s.workerId,
        lambdas: [...s.lambdas],
        outstanding: s.outstanding,
        credit: s.credit,
        connectedAt: s.connectedAt,
      })),
      commitPending: this.engine.commit.pending,
      refusedTotal: this.engine.hsc.counters.refused,
    };
    // The points' JSON as made at their tick, spliced into the snapshot's (LiveSnapshot's shape).
    let text = `{"point":${point}`;
    if (withHistory) text += `,"history":[${this.newest(this.history)}]`;
    if (missed.length) text += `,"missed":[${this.newest(missed)}]`;
    return `data: ${text},${JSON.stringify(rest).slice(1)}\n\n`;
  }

  /** The newest points whose JSON fits in historyBytes, oldest first, as one comma-separated text. */
  private newest(points: string[]): string {
    let bytes = 0;
    let from = points.length;
    while (from > 0 && bytes + points[from - 1].length + 1 <= this.opts.historyBytes) bytes += points[--from].length + 1;
    return points.slice(from).join(',');
  }

  private emptyPoint(): LivePoint {
    const t = { ...zeroTick(), failures: { error: 0, timeout: 0, lost: 0, fatal: 0 } };
    return { at: this.engine.config.clock.now(), intervalMs: 0, totals: t, runMs: null, waitMs: null, lambdas: {} };
  }

  private stats(lambda: string): Stats {
    let s = this.byLambda.get(lambda);
    if (!s) {
      s = new Stats(this.opts.windowTicks);
      this.byLambda.set(lambda, s);
    }
    return s;
  }

  private readonly onClaimed = (e: EngineEvents['claimed'][0]): void => {
    let name = '';
    let s = this.total;
    for (const r of e.rows as ClaimedRow[]) {
      if (r.lambda !== name) {
        name = r.lambda;
        s = this.stats(name);
      }
      s.tick.started++;
      const wait = firstQueueWaitMs(r, e.at);
      if (wait === null) continue;
      s.wait.add(wait);
      this.total.wait.add(wait);
    }
    this.total.tick.started += e.rows.length;
  };

  private readonly onAttempts = (ends: AttemptEnd[]): void => {
    let name = '';
    let s = this.total;
    for (const a of ends) {
      if (a.lambda !== name) {
        name = a.lambda;
        s = this.stats(name);
      }
      if (a.outcome === 'success') {
        s.tick.succeeded++;
        this.total.tick.succeeded++;
      } else if (a.outcome !== 'snoozed') {
        s.tick.failed++;
        s.failures[a.outcome]++;
        this.total.tick.failed++;
        this.total.failures[a.outcome]++;
      }
      if (a.startedAt !== null) {
        const run = Math.max(0, a.finishedAt - a.startedAt);
        s.run.add(run);
        this.total.run.add(run);
      }
    }
  };

  private readonly onSubmitted = (list: EngineEvents['submitted'][0]): void => {
    for (const { lambda, count } of list) {
      this.stats(lambda).tick.submitted += count;
      this.total.tick.submitted += count;
    }
  };
}

function zeroTick(): TickCounts {
  return { submitted: 0, started: 0, succeeded: 0, failed: 0 };
}

function roll(s: Stats): void {
  s.tick = zeroTick();
  for (const k of FAILURES) s.failures[k] = 0;
  s.run.rotate();
  s.wait.rotate();
}
