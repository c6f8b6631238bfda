import { systemClock } from '../clock.js';
import { compileWorkerOptions, type WorkerOptions } from '../config/options.js';
import type { LambdaDefinition } from '../core/lambda.js';
import { type Logger, silentLogger } from '../log.js';
import { Controller, type ControllerEvents } from './controller.js';
import { WsTransport } from './ws-transport.js';

export interface RemoteWorkerOptions extends WorkerOptions {
  /** Server URL. @default 'http://127.0.0.1:8080' */
  server?: string;
  token?: string;
  lambdas: LambdaDefinition[];
  logger?: Logger;
  events?: ControllerEvents;
  /** Largest result a handler may return, as JSON text. @default 1048576 */
  maxResultBytes?: number;
}

/**
 * A worker in its own process: runs `lambdas` for a server it reaches over the worker
 * protocol, and reconnects by itself when the server restarts.
 *
 * ```ts
 * const worker = new Worker({ server: 'http://127.0.0.1:8080', lambdas: [resize], concurrency: 20 });
 * worker.start();
 * ```
 */
export class Worker {
  private readonly controller: Controller;
  private welcomed!: () => void;
  private refusedFirst!: (err: Error) => void;
  private refusedAny!: (err: Error) => void;
  /**
   * Resolves once a server has welcomed this worker (its lambdas are registered there); rejects
   * with `unauthorized` if the server refuses the token (the worker then stops trying).
   */
  readonly ready = new Promise<void>((resolve, reject) => {
    this.welcomed = resolve;
    this.refusedFirst = reject;
  });
  /**
   * Rejects with `unauthorized` whenever a server refuses the token, also after `ready` (a server
   * restarted with another token): the worker has stopped trying then. Never resolves.
   */
  readonly refused = new Promise<never>((_resolve, reject) => {
    this.refusedAny = reject;
  });

  constructor(opts: RemoteWorkerOptions) {
    const { server = 'http://127.0.0.1:8080', token, lambdas, logger = silentLogger, events, maxResultBytes, ...rest } = opts;
    // Nobody need await ready: a refusal is also logged, never an unhandled rejection.
    this.ready.catch(() => undefined);
    this.refused.catch(() => undefined);
    const onRefused = (err: Error) => {
      this.refusedFirst(err);
      this.refusedAny(err);
    };
    const transport = new WsTransport({ server, token, log: logger, onRefused });
    const withReady: ControllerEvents = {
      ...events,
      ready: () => {
        this.welcomed();
        events?.ready?.();
      },
    };
    this.controller = new Controller(lambdas, compileWorkerOptions(rest), transport, systemClock, logger, withReady, {
      maxResultBytes: maxResultBytes ?? 1024 * 1024,
      timeoutGraceMs: 2000,
    });
  }

  get id(): string {
    return this.controller.workerId;
  }

  start(): this {
    this.controller.start();
    return this;
  }

  /** Stops taking work, releases buffered tasks, lets running ones finish within the grace period. */
  stop(graceMs?: number): Promise<void> {
    return this.controller.stop(graceMs);
  }
}
