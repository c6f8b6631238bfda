import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { ServerConfig } from '../config/options.js';
import { type GateMode, WHOLE_LAMBDA } from '../core/gate.js';
import { IdGenerator, isId } from '../core/ids.js';
import type { LambdaConfig } from '../core/lambda.js';
import { checkBatchSize, checkGateShape, checkSubmitShape, newTaskOf, type SubmitInput } from '../core/submit.js';
import type { AttemptRow, ClaimedRow, NewTask, TaskRow } from '../core/task.js';
import { isTaskState, type TaskState } from '../core/task-state.js';
import { ConveyorError } from '../errors.js';
import { Ingest, payloadError } from '../ingest/ingest.js';
import type { Logger } from '../log.js';
import { type HelloFrame, PROTOCOL_VERSION, type WorkerFrame } from '../protocol/frames.js';
import { openDriver } from '../store/open.js';
import { type AttemptEnd, Store } from '../store/store.js';
import { isConflict, isTransient, isUnavailable } from '../store/store-error.js';
import { CronRole, checkCron } from './cron.js';
import { Dispatcher, type Session, type WorkerLink } from './dispatcher.js';
import { GatePasses } from './gate-passes.js';
import { GateCache } from './gates.js';
import { GroupCommit } from './group-commit.js';
import { Hsc } from './hsc.js';
import { LambdaRegistry } from './lambda-registry.js';
import { Scheduler } from './scheduler.js';
import { REFRESH_FALLBACK_MS, Signals, signalHandlers } from './signals.js';
import { SingletonDuty } from './singleton.js';
import { SubmitBatcher } from './submit-batcher.js';

export interface LambdaSummary {
  name: string;
  paused: boolean;
  gates: Array<{ collection: string; mode: GateMode }>;
  config: LambdaConfig;
  counts: Partial<Record<TaskState, number>>;
  workers: number;
}

/**
 * What an engine announces once a flush is durable (tests and live views wait on these, not on
 * sleeps; metrics count them). Batched events carry every item of one flush.
 */
export interface EngineEvents {
  /** A task reached SUCCESS, FATAL_FAILURE or CANCELLED. */
  ended: [{ id: string; lambda: string; state: TaskState }];
  /** Tasks were claimed for workers at `at` (their queue wait is at - runAt). */
  claimed: [{ rows: ClaimedRow[]; at: number }];
  /** Attempts ended (success, error, timeout, lost, fatal, snoozed). */
  attempts: [AttemptEnd[]];
  /** Tasks were created. */
  submitted: [{ lambda: string; count: number }[]];
}

export interface ListResult {
  tasks: TaskRow[];
  nextCursor: string | null;
}

/** Counts by lambda and state are a full scan; answer from a copy at most this old. */
const COUNTS_TTL_MS = 2000;

/**
 * One Conveyor server's roles around the store: the front (submit and the task API), the
 * scheduler, the dispatcher, the HSC and cron, sharing one group commit. HTTP routes, the
 * library API and the worker transports all call this.
 */
export class Engine {
  readonly serverId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  readonly store: Store;
  readonly registry: LambdaRegistry;
  readonly gates: GateCache;
  readonly commit: GroupCommit;
  readonly dispatcher: Dispatcher;
  readonly hsc: Hsc;
  readonly scheduler: Scheduler;
  readonly cron: CronRole;
  /** Wake-ups from and to the other servers of the store (PostgreSQL LISTEN/NOTIFY). */
  readonly signals: Signals;
  /** The bounded intake queue and batch writers of POST /v1/ingest/:lambda. */
  readonly ingest: Ingest;
  readonly events = new EventEmitter<EngineEvents>().setMaxListeners(0);
  private readonly submits: SubmitBatcher;
  private readonly ids: IdGenerator;
  private counts: { at: number; rows: Promise<Array<{ lambda: string; state: TaskState; count: number }>> } | null = null;
  private readonly gatePasses: GatePasses;
  private closing = false;
  private sessionSeq = 0;
  /** Singleton duties this server may hold (released on close); [0] is the sweep. */
  private readonly duties: SingletonDuty[] = [];

  private constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
    driver: Awaited<ReturnType<typeof openDriver>>,
  ) {
    const { clock, random } = config;
    this.ids = new IdGenerator(clock, random);
    this.store = new Store(driver, {
      clock,
      random,
      timing: { enqueueTimeoutMs: config.enqueueTimeoutMs, retentionMs: config.retentionMs },
      lambda: (name) => this.registry.get(name),
    });
    this.registry = new LambdaRegistry(this.store, clock);
    this.gates = new GateCache(this.store);
    this.dispatcher = new Dispatcher(this.gates, {
      leaseMs: config.leaseMs,
      claimBatchMax: config.claimBatchMax,
      agingShare: config.agingShare,
      clock,
    });
    // Inserts hand ready tasks to workers through the dispatcher, which needs the store's gates first.
    this.store.ctx.handout = this.dispatcher;
    const concurrentFlushes = this.store.driver.capabilities.writers > 1;
    this.commit = new GroupCommit(
      this.store,
      { maxPending: config.maxPendingWrites, maxPerFlush: 1000, concurrency: this.store.driver.capabilities.writers },
      {
        beforeCommit: async (ops) => {
          const fresh = ops.enqueued.size ? [...ops.enqueued] : [];
          const claimed = await this.dispatcher.claimPhase(ops);
          const leftover = fresh.filter((l) => this.dispatcher.mayHaveReady(l));
          // Where flushes run side by side (PostgreSQL), marked again after the commit: a
          // concurrent flush's claim cannot see these tasks until then, and one that comes back
          // short meanwhile takes the lambda off the list. (One writer: no such flush.)
          if (concurrentFlushes) for (const l of leftover) ops.enqueued.add(l);
          await this.signals.beforeCommit(ops, leftover, this.duties[0].holding());
          return claimed;
        },
        // What ended is announced at the commit (a reader of the store sees it from then on), so
        // waitFor and the metrics never lag a read; hand-outs wait for the fsync as before.
        committed: (ops) => {
          if (ops.outcomes.length) this.events.emit('attempts', ops.outcomes);
          for (const e of ops.ended) this.events.emit('ended', { id: e.id, lambda: e.lambda, state: e.state });
        },
        afterCommitUndurable: (ops) => {
          const fresh = this.dispatcher.deliverFresh(ops);
          if (fresh.length) this.events.emit('claimed', { rows: fresh, at: clock.now() });
        },
        afterCommit: (ops) => {
          // A write retried alone after a failed flush ran no claim phase, which is where ready
          // lambdas are taken in: unmarked, its ready tasks would wait for the next tick while
          // fresh inserts of the lambda, of any priority, were handed out ahead of them. After
          // a claim phase, what it left (see beforeCommit).
          if (ops.enqueued.size) this.dispatcher.markReady(ops.enqueued);
          const claimed = this.dispatcher.deliver(ops);
          if (claimed.length) this.events.emit('claimed', { rows: claimed, at: clock.now() });
          if (ops.earliestCheck < Number.POSITIVE_INFINITY) this.scheduler.wakeAt(ops.earliestCheck);
        },
        afterRollback: (ops, err) => {
          this.dispatcher.forget(ops);
          if (isUnavailable(err)) this.log.warn({ err }, 'store unavailable: the writes of this flush failed');
          else if (isConflict(err))
            this.log.warn({ err }, 'group commit given up as a deadlock or serialization failure; running its writes again');
          else this.log.warn({ err }, 'group commit rolled back; retrying its writes one by one');
        },
        discarded: (ops) => this.dispatcher.forget(ops),
      },
    );
    this.ingest = new Ingest(this, { maxQueue: config.maxQueue, writers: config.ingestWriters, batchMax: config.batchMax });
    this.submits = new SubmitBatcher(this.commit, () => this.gates.lookup);
    this.dispatcher.bind(() => this.commit.poke());
    this.dispatcher.intakeBusy = () => this.ingest.queueDepth() > 0;
    this.dispatcher.unsent = (s, rows) =>
      this.hsc.report(s, { type: 'report', released: rows.map((r) => ({ id: r.id, attempt: r.attempt })) });
    this.commit.mayClaim = () => this.dispatcher.mayClaim();
    this.hsc = new Hsc(this.commit, this.dispatcher, this.gates, { leaseMs: config.leaseMs, maxResultBytes: config.maxPayloadBytes });
    // One process reloads its gate cache right after its own change; servers sharing a store
    // learn of it from a signal, or from the refresh poll when the signal was lost.
    const gateSettleMs = this.store.driver.capabilities.multiProcess ? REFRESH_FALLBACK_MS + 5000 : 1000;
    const dutyLeaseMs = Math.max(config.leaseMs, 5000);
    // A change made just before the sweep's holder died is passed again by the next holder: a
    // lease (two minutes with 30 s heartbeats) and a sweep or two after it.
    const takeoverMs = dutyLeaseMs + 2 * config.sweepIntervalMs;
    this.gatePasses = new GatePasses(this.store, this.commit, this.gates, this.dispatcher, clock, log, gateSettleMs, takeoverMs);
    const duty = (name: string) => {
      const d = new SingletonDuty(this.store, clock, name, this.serverId, dutyLeaseMs);
      this.duties.push(d);
      return d;
    };
    const rescueFrom = clock.now() + config.leaseMs;
    this.scheduler = new Scheduler(
      this.store,
      this.commit,
      this.gates,
      duty('scheduler'),
      clock,
      log,
      { ...config, rescueFrom },
      {
        tick: () => {
          this.dispatcher.markReady(this.registry.all().map((l) => l.name));
          this.signals.tick();
          if (this.duties[0]?.holding()) void this.gatePasses.settle();
        },
      },
    );
    this.cron = new CronRole(
      this.store,
      duty('cron'),
      clock,
      log,
      () => this.registry.all(),
      (lambda) => this.gates.lookup(lambda, null) === 'pause',
      async (t) => {
        await this.submit([t]);
      },
      { intervalMs: Math.min(config.sweepIntervalMs * 5, 5000), lookaheadMs: 60_000 },
    );
    const { dispatcher, registry, gates, scheduler } = this;
    const targets = { dispatcher, registry, gates, scheduler, sweep: this.duties[0], broadcastGates: () => this.broadcastGates() };
    this.signals = new Signals(this.store, this.serverId, clock, log, signalHandlers(targets), { sweepIntervalMs: config.sweepIntervalMs });
  }

  /** Opens the store, applies migrations and loads what the server caches. Roles start with start(). */
  static async open(config: ServerConfig, log: Logger): Promise<Engine> {
    const driver = await openDriver(config.store, { synchronous: config.synchronous, maxConnections: config.pgPool });
    const engine = new Engine(config, log, driver);
    try {
      const { applied } = await engine.store.migrate();
      if (applied.length) log.info({ applied }, 'store migrated');
      await engine.registry.load();
      await engine.gates.load();
      await engine.signals.start();
    } catch (err) {
      await driver.close().catch(() => undefined);
      throw err;
    }
    return engine;
  }

  start(): void {
    this.scheduler.start();
    this.cron.start();
  }

  /** Remembers lambdas (from configuration or a worker's hello). */
  async registerLambdas(configs: LambdaConfig[]): Promise<void> {
    for (const c of configs) if (c.cron) checkCron(c.name, c.cron);
    if (await this.registry.register(configs))
      await this.signals.send({ l: 1 }).catch((err) => this.log.warn({ err }, 'could not tell the other servers of new lambdas'));
  }

  /**
   * Creates tasks, all or nothing: resolves after the group commit that made them durable.
   * An idempotency key seen before answers the existing task (`created: false`).
   */
  async submit(inputs: SubmitInput[], opts: { batch?: boolean } = {}): Promise<Array<{ task: TaskRow; created: boolean }>> {
    if (this.closing) throw new ConveyorError('shutting_down', 'the server is shutting down');
    checkBatchSize(inputs.length, this.config.batchMax);
    await this.registry.refreshIfUnknown(inputs.map((i) => i?.lambda));
    const now = this.config.clock.now();
    const tasks = inputs.map((input, i) => {
      const where = opts.batch ? `tasks.${i}.` : '';
      checkSubmitShape(input, where);
      const lambda = this.registry.get(input.lambda);
      if (!lambda)
        throw new ConveyorError('unknown_lambda', `${where}lambda: no lambda named ${JSON.stringify(input.lambda)} is registered`);
      return newTaskOf(input, lambda, { now, id: this.ids.next(), maxPayloadBytes: this.config.maxPayloadBytes, where });
    });
    return this.insertPrepared(tasks);
  }

  /**
   * Ingestion's half of submit: tasks of one lambda for bare payloads (`data[i]` of POST
   * /v1/ingest), checked and given ids now, without a schema check per payload (a payload may
   * be any JSON). The intake queue's writers insert them later with insertPrepared.
   */
  prepareTasks(lambda: string, payloads: unknown[]): NewTask[] {
    if (this.closing) throw new ConveyorError('shutting_down', 'the server is shutting down');
    const config = this.registry.get(lambda);
    if (!config) throw new ConveyorError('unknown_lambda', `no lambda named ${JSON.stringify(lambda)} is registered`);
    const ctx = { now: this.config.clock.now(), id: '', maxPayloadBytes: this.config.maxPayloadBytes };
    const tasks: NewTask[] = new Array(payloads.length);
    for (let i = 0; i < payloads.length; i++) {
      ctx.id = this.ids.next();
      try {
        tasks[i] = newTaskOf({ lambda, payload: payloads[i] }, config, ctx);
      } catch (err) {
        throw payloadError(err, i);
      }
    }
    return tasks;
  }

  /** Inserts tasks made by newTaskOf in one group commit, all or nothing; resolves once they are durable. */
  async insertPrepared(tasks: NewTask[]): Promise<Array<{ task: TaskRow; created: boolean }>> {
    const out = await this.submits.insert(tasks);
    if (this.events.listenerCount('submitted') > 0) {
      const byLambda = new Map<string, number>();
      for (const r of out) if (r.created) byLambda.set(r.task.lambda, (byLambda.get(r.task.lambda) ?? 0) + 1);
      if (byLambda.size)
        this.events.emit(
          'submitted',
          [...byLambda].map(([lambda, count]) => ({ lambda, count })),
        );
    }
    return out;
  }

  async get(id: string, opts: { attempts?: boolean } = {}): Promise<{ task: TaskRow; attempts?: AttemptRow[] }> {
    return this.store.read(async (o) => {
      const task = await o.q.taskGet(id);
      if (!task) throw new ConveyorError('task_not_found', `no task ${id}`);
      return opts.attempts ? { task, attempts: await o.q.attemptList(id) } : { task };
    });
  }

  async list(p: { lambda?: string; state?: string; key?: string; limit?: number; cursor?: string }): Promise<ListResult> {
    if (p.state !== undefined && !isTaskState(p.state)) {
      throw new ConveyorError(
        'validation_failed',
        `state must be one of NEW, ENQUEUED, CLAIMED, PROCESSING, SUCCESS, FATAL_FAILURE, RETRIABLE_FAILURE, CANCELLED`,
      );
    }
    const limit = p.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new ConveyorError('validation_failed', 'limit must be an integer from 1 to 1000');
    const beforeId = p.cursor === undefined ? undefined : decodeCursor(p.cursor);
    const tasks = await this.store.read((o) =>
      o.q.taskList({ lambda: p.lambda, state: p.state as TaskState | undefined, key: p.key, limit: limit + 1, beforeId }),
    );
    const more = tasks.length > limit;
    if (more) tasks.pop();
    return { tasks, nextCursor: more ? encodeCursor(tasks[tasks.length - 1].id) : null };
  }

  cancel(id: string): Promise<TaskRow> {
    return this.commit.run((ops) => ops.cancel(id, this.gates.lookup));
  }

  retry(id: string): Promise<TaskRow> {
    return this.commit.run((ops) => ops.redrive(id, this.gates.lookup));
  }

  /**
   * Gates a lambda (or one collection): `pause` holds its due tasks, `drop` cancels them, and
   * `open` (resume) releases what was held, most urgent first. Running attempts finish.
   */
  async setGate(lambda: string, opts: { collection?: string; mode: GateMode }): Promise<LambdaSummary> {
    // The library calls this directly: the same checks as the HTTP body's schema.
    checkGateShape({ collection: opts.collection, mode: opts.mode });
    await this.registry.refreshIfUnknown([lambda]);
    if (!this.registry.get(lambda)) throw new ConveyorError('unknown_lambda', `no lambda named ${JSON.stringify(lambda)} is registered`);
    const collection = opts.collection ?? WHOLE_LAMBDA;
    const now = this.config.clock.now();
    await this.commit.run(async (ops) => {
      await ops.q.gateSet({ lambda, collection, mode: opts.mode }, now);
      this.signals.mark(ops, 'gates');
    });
    await this.gates.load();
    this.broadcastGates();
    await this.gatePasses.pass(lambda, collection, opts.mode);
    this.counts = null;
    return (await this.lambdas()).find((l) => l.name === lambda) as LambdaSummary;
  }

  async lambdas(): Promise<LambdaSummary[]> {
    const now = this.config.clock.now();
    if (!this.counts || now - this.counts.at > COUNTS_TTL_MS) {
      this.counts = { at: now, rows: this.store.read((o) => o.q.taskCounts()) };
    }
    const counts = await this.counts.rows;
    const workers = this.dispatcher.all();
    return this.registry.all().map((config) => {
      const c: Partial<Record<TaskState, number>> = {};
      for (const r of counts) if (r.lambda === config.name) c[r.state] = r.count;
      return {
        name: config.name,
        paused: this.gates.lambdaMode(config.name) !== 'open',
        gates: this.gates
          .list()
          .filter((g) => g.lambda === config.name)
          .map((g) => ({ collection: g.collection, mode: g.mode })),
        config,
        counts: c,
        workers: workers.filter((s) => s.lambdas.has(config.name)).length,
      };
    });
  }

  async health(): Promise<void> {
    await this.store.ping();
  }

  /** The server side of a worker connection: feed it the worker's frames. */
  connectWorker(link: WorkerLink): { onFrame(f: WorkerFrame): void; onClose(): void } {
    let session: Session | null = null;
    let closed = false;
    return {
      onFrame: (f) => {
        if (f.type === 'hello') {
          void this.hello(link, f).then(
            (s) => {
              // A connection that closed while its hello was written: no session may outlive it,
              // or the dispatcher would hand its places tasks that only a lease expiry brings back.
              if (closed) this.dispatcher.detach(s.id);
              else session = s;
            },
            (err: unknown) => {
              const message = String((err as Error)?.message ?? err);
              // The store away or busy is no fault of the worker's: it tries again (1013, try again later).
              const e =
                err instanceof ConveyorError
                  ? err
                  : new ConveyorError(isTransient(err) ? 'store_unavailable' : 'validation_failed', message, { cause: err });
              link.send({ type: 'error', error: { code: e.code, message: e.message } });
              link.close(e.code === 'store_unavailable' ? 1013 : 1008, e.message.slice(0, 120));
            },
          );
          return;
        }
        if (!session) return; // frames before the hello was processed carry nothing to act on
        if (f.type === 'report') this.hsc.report(session, f);
        else if (f.type === 'heartbeat')
          void this.hsc.heartbeat(session, f).catch((err) => this.log.warn({ err }, 'heartbeat write failed'));
        else if (f.type === 'bye') this.dispatcher.detach(session.id);
      },
      onClose: () => {
        closed = true;
        if (session) this.dispatcher.detach(session.id);
      },
    };
  }

  private async hello(link: WorkerLink, f: HelloFrame): Promise<Session> {
    if (f.protocol !== PROTOCOL_VERSION) {
      throw new ConveyorError(
        'validation_failed',
        `protocol version ${f.protocol} is not supported; this server speaks ${PROTOCOL_VERSION}`,
      );
    }
    if (this.closing) throw new ConveyorError('shutting_down', 'the server is shutting down');
    await this.registerLambdas(f.lambdas);
    const session: Session = {
      id: `${this.serverId}/${++this.sessionSeq}`,
      workerId: f.workerId,
      lambdas: new Set(f.lambdas.map((l) => l.name)),
      link,
      credit: f.capacity,
      outstanding: 0,
      capacity: f.capacity,
      concurrency: f.concurrency,
      connectedAt: this.config.clock.now(),
      caps: new Map(f.lambdas.flatMap((l) => (l.concurrency === null ? [] : [[l.name, l.concurrency] as const]))),
      capped: new Map(),
    };
    link.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      sessionId: session.id,
      heartbeatMs: this.config.heartbeatMs,
      leaseMs: this.config.leaseMs,
      gates: this.gates.list(),
      reportAcks: true,
    });
    this.dispatcher.attach(session, f.held);
    return session;
  }

  private broadcastGates(): void {
    const gates = this.gates.list();
    for (const s of this.dispatcher.all()) s.link.send({ type: 'gates', gates });
  }

  /** Stops the roles, waits for queued writes, closes the store. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.signals.close().catch(() => undefined);
    await this.ingest.close();
    await this.scheduler.stop();
    await this.cron.stop();
    await this.commit.idle();
    for (const s of this.dispatcher.all()) {
      this.dispatcher.detach(s.id);
      s.link.close(1001, 'server shutting down');
    }
    this.hsc.stop();
    // Another server takes the sweep and cron now instead of when the leases run out.
    await Promise.all(this.duties.map((d) => d.release().catch(() => undefined)));
    await this.store.close();
  }
}

function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!isId(id)) throw new ConveyorError('invalid_cursor', 'cursor is not one this server produced');
  return id;
}
