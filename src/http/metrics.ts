import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { firstQueueWaitMs } from '../core/task.js';
import { LEASED_STATES, TASK_STATES } from '../core/task-state.js';
import type { Engine, EngineEvents } from '../server/engine.js';
import type { AttemptEnd } from '../store/store.js';
import { BatchHistogram, type HistogramChild } from './histogram.js';

const SCRAPE_STORE_WAIT_MS = 2000;

// Seconds. Queue waits run from under a millisecond (a task claimed in the flush that inserted
// it) to minutes (a backlog); run times from a millisecond (an echo) to the 5-minute default
// timeout. One set serves both so the two histograms can be compared bucket by bucket.
const BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * What the ingest queue (docs/api.md, "Ingestion") shows to metrics; it registers itself with
 * {@link ConveyorMetrics.attachIngest}. Both are read on scrape.
 */
export interface IngestMetricsSource {
  /** Payloads waiting in the bounded intake queue. */
  queueDepth(): number;
  /** Requests refused since start because the queue was full (429s). */
  shedTotal(): number;
}

/**
 * Prometheus metrics of one server, on a registry of its own (several servers in one process,
 * as in tests, do not clash over the global one).
 *
 * Counters and histograms follow the engine's batched events: one pass per group-commit
 * flush, not a listener call per task. The two per-task histograms (queue wait, run time) are
 * BatchHistograms: prom-client's cost 0.6 us an observation in a bulk drain, about 4% of the
 * server's time there. Gauges (backlog by state, in-flight, workers, the
 * group-commit queue) are read on scrape: backlog and in-flight from the engine's counts by
 * state, which it caches for 2 s, so a scrape every few seconds adds at most one count query.
 * In-flight is CLAIMED + PROCESSING from those counts: no per-task bookkeeping here.
 *
 * Counting starts when the HTTP app is built (Conveyor.listen), like any process counter.
 */
export class ConveyorMetrics {
  readonly registry = new Registry();
  private readonly started: Counter<'lambda'>;
  private readonly submitted: Counter<'lambda'>;
  private readonly ended: Counter<'lambda' | 'outcome'>;
  private readonly queueWait: BatchHistogram;
  private readonly runTime: BatchHistogram;
  private readonly tasks: Gauge<'lambda' | 'state'>;
  private readonly inFlight: Gauge<'lambda'>;
  private readonly paused: Gauge<'lambda'>;
  private readonly lambdaWorkers: Gauge<'lambda'>;
  private readonly storeUp: Gauge;

  constructor(private readonly engine: Engine) {
    const registers = [this.registry];
    this.started = new Counter({
      name: 'conveyor_attempts_started_total',
      help: 'Attempts started: tasks claimed for a worker',
      labelNames: ['lambda'],
      registers,
    });
    this.submitted = new Counter({ name: 'conveyor_tasks_submitted_total', help: 'Tasks created', labelNames: ['lambda'], registers });
    this.ended = new Counter({
      name: 'conveyor_attempts_ended_total',
      help: 'Attempts ended, by outcome (success, error, timeout, lost, fatal, snoozed)',
      labelNames: ['lambda', 'outcome'],
      registers,
    });
    this.queueWait = new BatchHistogram(
      'conveyor_queue_wait_seconds',
      'Time from a task being due (runAt) to its first claim',
      'lambda',
      BUCKETS_S,
      this.registry,
    );
    this.runTime = new BatchHistogram(
      'conveyor_run_seconds',
      'Handler run time of ended attempts (finish - start)',
      'lambda',
      BUCKETS_S,
      this.registry,
    );
    this.tasks = new Gauge({
      name: 'conveyor_tasks',
      help: 'Tasks by lambda and state (terminal ones until retention deletes them; counts cached up to 2 s)',
      labelNames: ['lambda', 'state'],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'conveyor_tasks_in_flight',
      help: 'Tasks claimed or running (CLAIMED + PROCESSING; cached up to 2 s)',
      labelNames: ['lambda'],
      registers,
    });
    this.paused = new Gauge({
      name: 'conveyor_lambda_paused',
      help: '1 when the lambda is paused or dropping',
      labelNames: ['lambda'],
      registers,
    });
    this.lambdaWorkers = new Gauge({
      name: 'conveyor_lambda_workers',
      help: 'Connected workers that run the lambda',
      labelNames: ['lambda'],
      registers,
    });
    this.storeUp = new Gauge({
      name: 'conveyor_store_up',
      help: '1 when the store answered the last scrape within 2 s (the task gauges keep their previous values otherwise)',
      registers,
    });
    const dispatcher = engine.dispatcher;
    gaugeOf(this.registry, 'conveyor_workers_connected', 'Worker sessions connected to this server', () => dispatcher.all().length);
    gaugeOf(this.registry, 'conveyor_worker_tasks_outstanding', 'Tasks handed to workers and not yet reported back', () =>
      dispatcher.all().reduce((n, s) => n + s.outstanding, 0),
    );
    gaugeOf(this.registry, 'conveyor_group_commit_pending', 'Writes waiting for the next group commit', () => engine.commit.pending);
    counterOf(
      this.registry,
      'conveyor_reports_refused_total',
      'Worker reports refused by fencing (stale attempt: the lease had expired or moved)',
      () => engine.hsc.counters.refused,
    );
    engine.events.on('claimed', this.onClaimed);
    engine.events.on('attempts', this.onAttempts);
    engine.events.on('submitted', this.onSubmitted);
  }

  // --- Metrics of other parts register here. -------------------------------------------------
  // Ingest attaches here. Sharding (assigner rounds: imbalance, churn, generation) and events
  // (cursor lag, stuck subjects, superseded) should add an attach method of the same shape when
  // they are built: gauges read on scrape, counters from the part's own cumulative totals
  // (counterOf), never a call per item.

  /** Registers the ingest queue's depth and shed count. */
  attachIngest(source: IngestMetricsSource): void {
    gaugeOf(this.registry, 'conveyor_ingest_queue_depth', 'Payloads waiting in the ingest queue', () => source.queueDepth());
    counterOf(this.registry, 'conveyor_ingest_shed_total', 'Ingest requests refused with 429 because the queue was full', () =>
      source.shedTotal(),
    );
  }

  /**
   * The exposition text: refreshes the gauges read from the store, then renders. A store that
   * is away or slow (SCRAPE_STORE_WAIT_MS) must not take the scrape down with it: process and
   * worker metrics matter most then, so the store's gauges keep their last values and
   * conveyor_store_up says 0.
   */
  async render(): Promise<string> {
    const lambdas = await Promise.race([
      this.engine.lambdas().catch(() => null),
      new Promise<null>((r) => setTimeout(r, SCRAPE_STORE_WAIT_MS, null).unref()),
    ]);
    this.storeUp.set(lambdas ? 1 : 0);
    for (const l of lambdas ?? []) {
      for (const state of TASK_STATES) this.tasks.set({ lambda: l.name, state }, l.counts[state] ?? 0);
      this.inFlight.set(
        { lambda: l.name },
        LEASED_STATES.reduce((n, s) => n + (l.counts[s] ?? 0), 0),
      );
      this.paused.set({ lambda: l.name }, l.paused ? 1 : 0);
      this.lambdaWorkers.set({ lambda: l.name }, l.workers);
    }
    // prom-client 15 writes NaN as "Nan" (lib/util.js); Prometheus's Go parser takes either, the
    // format's spec and stricter parsers only "NaN". (The event-loop gauges are NaN until sampled.)
    const text = await Registry.merge([this.registry, processMetrics()]).metrics();
    return text.replace(/ Nan$/gm, ' NaN');
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.engine.events.off('claimed', this.onClaimed);
    this.engine.events.off('attempts', this.onAttempts);
    this.engine.events.off('submitted', this.onSubmitted);
  }

  private readonly onClaimed = ({ rows, at }: EngineEvents['claimed'][0]): void => {
    let name = '';
    let wait: HistogramChild | null = null;
    let n = 0;
    for (const r of rows) {
      if (r.lambda !== name) {
        if (n) this.started.inc({ lambda: name }, n);
        name = r.lambda;
        wait = this.queueWait.child(name);
        n = 0;
      }
      n++;
      const waited = firstQueueWaitMs(r, at);
      if (waited !== null) wait!.observe(waited / 1000);
    }
    if (n) this.started.inc({ lambda: name }, n);
  };

  private readonly onAttempts = (ends: AttemptEnd[]): void => {
    // Outcomes are counted per (lambda, outcome) first: one counter call per group, not per task.
    const counts = new Map<string, { lambda: string; outcome: string; n: number }>();
    let name = '';
    let run: HistogramChild | null = null;
    for (const a of ends) {
      const k = `${a.lambda}\u0000${a.outcome}`;
      const c = counts.get(k);
      if (c) c.n++;
      else counts.set(k, { lambda: a.lambda, outcome: a.outcome, n: 1 });
      if (a.startedAt === null) continue;
      if (a.lambda !== name || !run) {
        name = a.lambda;
        run = this.runTime.child(name);
      }
      run.observe(Math.max(0, a.finishedAt - a.startedAt) / 1000);
    }
    for (const c of counts.values()) this.ended.inc({ lambda: c.lambda, outcome: c.outcome }, c.n);
  };

  private readonly onSubmitted = (list: EngineEvents['submitted'][0]): void => {
    for (const { lambda, count } of list) this.submitted.inc({ lambda }, count);
  };
}

let processRegistry: Registry | null = null;

/**
 * The process's own metrics (CPU, memory, event loop, GC), one registry for every server of the
 * process: collectDefaultMetrics starts a GC observer and an event-loop monitor that nothing
 * can stop, so one set per server left both running after close, and the GC observer kept the
 * closed server's registry (and through its gauges the engine) alive.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** A gauge whose value is read on scrape. */
function gaugeOf(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** A counter that mirrors a cumulative total kept elsewhere, read on scrape. */
function counterOf(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > last) this.inc(now - last);
      last = Math.max(last, now);
    },
  });
}
