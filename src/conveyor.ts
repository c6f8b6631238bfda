import { compileServerOptions, compileWorkerOptions, type ServerOptions, type WorkerOptions } from './config/options.js';
import type { GateMode } from './core/gate.js';
import { type LambdaDefinition, lambdaConfigOf } from './core/lambda.js';
import type { SubmitInput } from './core/submit.js';
import { type TaskView, taskView } from './core/task.js';
import { isTerminal } from './core/task-state.js';
import { waitTimeoutOf } from './core/wait.js';
import { ConveyorError } from './errors.js';
import { buildApp } from './http/app.js';
import { checkListenable } from './http/listen.js';
import { type Logger, silentLogger } from './log.js';
import { inProcessPair } from './protocol/in-process.js';
import { Engine, type LambdaSummary } from './server/engine.js';
import { isUnavailable } from './store/store-error.js';
import { Controller, type ControllerEvents } from './worker/controller.js';

/** Options of an embedded Conveyor: a server, and a worker for `lambdas` in the same process. */
export interface ConveyorOptions extends ServerOptions, WorkerOptions {
  /** Lambdas this process knows and (with `worker`) runs. */
  lambdas?: LambdaDefinition[];
  /** Run `lambdas` in this process. @default true when lambdas are given */
  worker?: boolean;
  /** A pino logger. @default silent */
  logger?: Logger;
  /** Worker hooks (tests use them to observe starts and ends). */
  workerEvents?: ControllerEvents;
}

export type SubmitOptions = Omit<SubmitInput, 'lambda' | 'payload'>;

export interface ListenOptions {
  /** @default 8080 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Bearer token for every /v1 route and the dashboard. */
  token?: string;
  /** Allow a non-loopback address without a token. @default false */
  insecure?: boolean;
  /** Largest request body in bytes. @default 1048576 */
  bodyLimit?: number;
}

/**
 * Conveyor embedded in your process: `start()`, `submit()`, and your lambdas run here.
 *
 * ```ts
 * const conveyor = await new Conveyor({ store: './app.db', lambdas: [resize] }).start();
 * const task = await conveyor.submit('resize', { url });
 * ```
 */
export class Conveyor {
  private engineRef: Engine | null = null;
  private starting: Promise<this> | null = null;
  private controller: Controller | null = null;
  private app: Awaited<ReturnType<typeof buildApp>> | null = null;
  /** A listen under way (two at once would each build an app, and the first would leak). */
  private binding = false;
  private closing: Promise<void> | null = null;
  /** Ends of the waitFor calls in progress: close() ends them, as no task ends after it. */
  private readonly waits = new Set<(err: unknown) => void>();
  private readonly opts: ConveyorOptions;

  constructor(opts: ConveyorOptions = {}) {
    this.opts = opts;
  }

  /** The server roles (for the HTTP layer and advanced use); throws before start(). */
  get engine(): Engine {
    if (!this.engineRef) throw new ConveyorError('shutting_down', 'Conveyor is not started (call start())');
    return this.engineRef;
  }

  /** Opens the store, registers the lambdas, starts the server roles and the in-process worker. */
  start(): Promise<this> {
    // Two calls at once share one start: each opening its own engine would leave one running unseen.
    this.starting ??= this.open().catch((err: unknown) => {
      this.starting = null;
      throw err;
    });
    return this.starting;
  }

  private async open(): Promise<this> {
    const {
      lambdas = [],
      worker,
      logger = silentLogger,
      workerEvents,
      concurrency,
      prefetch,
      shutdownGraceMs,
      workerId,
      ...server
    } = this.opts;
    const config = compileServerOptions(server);
    const workerConfig = compileWorkerOptions({ concurrency, prefetch, shutdownGraceMs, workerId });
    const configs = lambdas.map(lambdaConfigOf);
    const engine = await Engine.open(config, logger);
    let controller: Controller | null = null;
    try {
      await engine.registerLambdas(configs);
      // Made before the engine is kept: a worker that refuses its lambdas fails the start, and
      // an engine left behind would run unseen beside the one a start tried again opens.
      if ((worker ?? lambdas.length > 0) && lambdas.length > 0) {
        const transport = inProcessPair((link) => engine.connectWorker(link));
        controller = new Controller(lambdas, workerConfig, transport, config.clock, logger.child({ role: 'worker' }), workerEvents, {
          maxResultBytes: config.maxPayloadBytes,
          timeoutGraceMs: 2000,
        });
      }
    } catch (err) {
      await engine.close();
      throw err;
    }
    engine.start();
    this.engineRef = engine;
    this.controller = controller;
    controller?.start();
    return this;
  }

  /**
   * Serves the HTTP API (and, later, the worker protocol and dashboard). Resolves with the URL.
   * Refuses a non-loopback address without a token unless `insecure`.
   */
  async listen(opts: ListenOptions = {}): Promise<string> {
    const host = opts.host ?? '127.0.0.1';
    checkListenable(opts);
    if (this.app || this.binding) throw new ConveyorError('validation_failed', 'already listening');
    this.binding = true;
    const app = await buildApp(this.engine, {
      token: opts.token,
      bodyLimit: opts.bodyLimit,
      logger: this.opts.logger ?? silentLogger,
    }).finally(() => {
      this.binding = false;
    });
    this.app = app;
    // A deep accept queue (Node's default is 511): a burst of ingest clients connecting at once
    // beyond it has its SYNs dropped and retried by TCP after 1, 3, 7 s; the kernel caps it at
    // net.core.somaxconn (4096 on current Linux).
    try {
      return await app.listen({ port: opts.port ?? 8080, host, backlog: 4096 });
    } catch (err) {
      // A port in use: kept, the app would refuse every later listen as 'already listening'.
      if (this.app === app) this.app = null;
      await app.close();
      throw err;
    }
  }

  /** Submits one task; resolves once it is durable. */
  async submit(lambda: string, payload?: unknown, options: SubmitOptions = {}): Promise<TaskView> {
    const [r] = await this.engine.submit([libraryInput({ ...options, lambda, payload })]);
    return taskView(r.task);
  }

  /** Submits tasks all or nothing in one transaction. */
  async submitMany(tasks: SubmitInput[]): Promise<TaskView[]> {
    const out = await this.engine.submit(tasks.map(libraryInput), { batch: true });
    return out.map((r) => taskView(r.task));
  }

  /** The task with its attempts. */
  async get(id: string): Promise<TaskView> {
    const { task, attempts } = await this.engine.get(id, { attempts: true });
    return taskView(task, attempts);
  }

  async cancel(id: string): Promise<TaskView> {
    return taskView(await this.engine.cancel(id));
  }

  /** Re-drives a FATAL_FAILURE or CANCELLED task with a fresh attempt budget. */
  async retry(id: string): Promise<TaskView> {
    return taskView(await this.engine.retry(id));
  }

  /** Pauses a lambda (or one collection): its due tasks wait; `mode: 'drop'` cancels them instead. */
  pause(lambda: string, opts: { collection?: string; mode?: Exclude<GateMode, 'open'> } = {}): Promise<LambdaSummary> {
    return this.engine.setGate(lambda, { collection: opts.collection, mode: opts.mode ?? 'pause' });
  }

  resume(lambda: string, opts: { collection?: string } = {}): Promise<LambdaSummary> {
    return this.engine.setGate(lambda, { collection: opts.collection, mode: 'open' });
  }

  lambdas(): Promise<LambdaSummary[]> {
    return this.engine.lambdas();
  }

  /** Resolves with the task once it is terminal (SUCCESS, FATAL_FAILURE or CANCELLED); rejects after `timeoutMs` (30 s by default), or with `shutting_down` once close() is done. */
  async waitFor(id: string, opts: { timeoutMs?: number } = {}): Promise<TaskView> {
    const engine = this.engine;
    const timeoutMs = waitTimeoutOf(opts.timeoutMs, 30_000);
    return new Promise<TaskView>((resolve, reject) => {
      let done = false;
      let poll: NodeJS.Timeout | null = null;
      const finish = (err: unknown) => {
        if (done) return;
        done = true;
        this.waits.delete(finish);
        clearTimeout(timer);
        if (poll) clearTimeout(poll);
        engine.events.off('ended', onEnded);
        if (err) reject(err);
        else this.get(id).then(resolve, reject);
      };
      const onEnded = (e: { id: string }) => {
        if (e.id === id) finish(null);
      };
      const timer = setTimeout(
        () => finish(new ConveyorError('wait_timed_out', `task ${id} did not finish within ${timeoutMs} ms`)),
        timeoutMs,
      );
      engine.events.on('ended', onEnded);
      this.waits.add(finish);
      // 'ended' is heard only from this server's own commits: on a store other servers write
      // too, the end of a task run through one of them is read from the store (as the SDK does).
      const multiProcess = engine.store.driver.capabilities.multiProcess;
      const again = (pause: number) => {
        if (multiProcess && !done) poll = setTimeout(() => check(Math.min(1000, pause * 2)), pause);
      };
      const check = (pause: number) =>
        engine.get(id).then(
          ({ task }) => {
            if (isTerminal(task.state)) finish(null);
            else again(pause);
          },
          // A store away for a moment (a dropped connection, a failover) does not end the wait,
          // as it does not for the SDK's waitFor; the wait's own time bounds it.
          (err: unknown) => (isUnavailable(err) && multiProcess ? again(pause) : finish(err)),
        );
      check(50);
    });
  }

  /**
   * Drains the in-process worker (running attempts get the grace period), then closes the store.
   * Calls made while a close runs wait for that one rather than draining again.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown().finally(() => {
      this.closing = null;
    });
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.starting?.catch(() => undefined);
    this.starting = null;
    await this.app?.close();
    this.app = null;
    await this.controller?.stop();
    this.controller = null;
    await this.engineRef?.close();
    this.engineRef = null;
    // Left alone, a wait's timer held the process open until its timeout (30 s or more).
    for (const finish of this.waits) finish(new ConveyorError('shutting_down', 'Conveyor was closed before the task ended'));
  }
}

function libraryInput(input: SubmitInput): SubmitInput {
  const out: SubmitInput = { ...input };
  if (out.runAt instanceof Date) out.runAt = out.runAt.getTime();
  for (const k of Object.keys(out) as Array<keyof SubmitInput>) if (out[k] === undefined) delete out[k];
  return out;
}
