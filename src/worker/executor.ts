import type { Clock } from '../clock.js';
import type { LambdaDefinition, TaskContext, TaskLogger } from '../core/lambda.js';
import { jsonBytes } from '../core/submit.js';
import { type TaskError, taskErrorOf } from '../core/task.js';
import { isFatal, RetryAfter } from '../errors.js';
import type { Logger } from '../log.js';
import type { FailedItem, TaskFrame } from '../protocol/frames.js';
import { IsolatedResult } from './isolation/host.js';

/** How one attempt ended, as the worker reports it. */
export type AttemptOutcome =
  | { kind: 'done'; resultJson: string; result: unknown }
  | { kind: FailedItem['kind']; error: TaskError; snoozeMs?: number };

/** Why an attempt's signal was aborted. */
export class AttemptAborted extends Error {
  constructor(
    readonly why: 'timeout' | 'lease_lost' | 'shutdown',
    message: string,
  ) {
    super(message);
    this.name = why === 'timeout' ? 'TimeoutError' : 'AbortError';
  }
}

/** What attempts need from their worker: one object per lambda, shared by all its attempts. */
export interface ExecutorDeps {
  clock: Clock;
  /** The worker's logger; an attempt's child of it is made when its handler first reads `ctx.log`. */
  log: Logger;
  heartbeat(frame: TaskFrame): Promise<void>;
  maxResultBytes: number;
  /** After a timeout, how long a handler that ignores its signal may take to return before the attempt is reported anyway. */
  timeoutGraceMs: number;
  /** The outcome to report: called once, at the handler's end or at the timeout (plus grace) at the latest. */
  onOutcome(a: RunningAttempt, o: AttemptOutcome): void;
  /** The handler itself returned; its slot is free from now on. Called once, after onOutcome. */
  onSettled(a: RunningAttempt): void;
  /** Runs the handler somewhere else (an isolated thread or process); default: here. */
  invoke?(frame: TaskFrame, ctx: TaskContext): unknown;
}

/**
 * One attempt of a handler running in this process. It builds the handler's context, aborts
 * the signal at the timeout, and classifies the end (done, error, fatal, timeout, snoozed).
 * A handler that ignores its signal keeps its slot until it returns, so concurrency is never
 * exceeded, but its attempt is reported as timed out after a short grace so the task can be
 * retried. Callbacks rather than promise races: at 50k attempts a second the promise
 * plumbing cost more than the handlers. The AbortController is made only when a handler
 * reads `ctx.signal` (or the attempt must be aborted), which most fast handlers never do; the
 * logger only when it reads `ctx.log`.
 */
export class RunningAttempt {
  readonly startedAt: number;
  private controller: AbortController | null = null;
  private timer: NodeJS.Timeout | null = null;
  private grace: NodeJS.Timeout | null = null;
  private reported = false;

  constructor(
    readonly def: LambdaDefinition,
    readonly frame: TaskFrame,
    readonly deps: ExecutorDeps,
  ) {
    this.startedAt = deps.clock.now();
  }

  start(): void {
    let result: unknown;
    try {
      const ctx = new AttemptContext(this);
      result = this.deps.invoke ? this.deps.invoke(this.frame, ctx) : this.def.handler(this.frame.payload, ctx);
    } catch (err) {
      queueMicrotask(() => this.end(failed(err, this.abortReason())));
      return;
    }
    if (typeof (result as PromiseLike<unknown>)?.then !== 'function') {
      // A synchronous handler: end on the microtask queue, so the controller is never re-entered.
      queueMicrotask(() => this.end(succeeded(result, this.deps.maxResultBytes)));
      return;
    }
    this.timer = setTimeout(() => this.timeout(), this.frame.timeoutMs);
    (result as PromiseLike<unknown>).then(
      (value) => this.end(succeeded(value, this.deps.maxResultBytes)),
      (err) => this.end(failed(err, this.abortReason())),
    );
  }

  /** Aborts the handler's signal (lease lost, shutdown); the outcome still comes from the handler. */
  abort(reason: AttemptAborted): void {
    this.signal().abort(reason);
  }

  /** The attempt's AbortController, made on first use. */
  signal(): AbortController {
    this.controller ??= new AbortController();
    return this.controller;
  }

  private abortReason(): unknown {
    return this.controller?.signal.aborted ? this.controller.signal.reason : undefined;
  }

  private timeout(): void {
    this.timer = null;
    const reason = new AttemptAborted('timeout', `the attempt ran past its timeout of ${this.frame.timeoutMs} ms`);
    this.abort(reason);
    this.grace = setTimeout(() => this.report({ kind: 'timeout', error: taskErrorOf(reason) }), this.deps.timeoutGraceMs);
    this.grace.unref?.();
  }

  private end(o: AttemptOutcome): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.grace) clearTimeout(this.grace);
    this.report(o);
    this.deps.onSettled(this);
  }

  private report(o: AttemptOutcome): void {
    if (this.reported) return;
    this.reported = true;
    this.deps.onOutcome(this, o);
  }
}

function succeeded(result: unknown, maxResultBytes: number): AttemptOutcome {
  let json: string | undefined;
  try {
    json = result instanceof IsolatedResult ? result.json : JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    return {
      kind: 'fatal',
      error: taskErrorOf(new Error(`the handler returned a value that is not JSON-serialisable: ${(err as Error).message}`)),
    };
  }
  if (json === undefined) {
    return {
      kind: 'fatal',
      error: taskErrorOf(new Error('the handler returned a value that is not JSON-serialisable (a function or symbol)')),
    };
  }
  const bytes = jsonBytes(json);
  if (bytes > maxResultBytes) {
    return {
      kind: 'fatal',
      error: taskErrorOf(new Error(`the handler returned ${bytes} bytes of JSON, above the limit of ${maxResultBytes}`)),
    };
  }
  return { kind: 'done', resultJson: json, result: result instanceof IsolatedResult ? JSON.parse(json) : result };
}

function failed(err: unknown, abortReason: unknown): AttemptOutcome {
  if (err instanceof RetryAfter) return { kind: 'snoozed', error: taskErrorOf(err), snoozeMs: err.delayMs };
  if (abortReason instanceof AttemptAborted && abortReason.why === 'timeout') return { kind: 'timeout', error: taskErrorOf(abortReason) };
  if (isFatal(err)) return { kind: 'fatal', error: taskErrorOf(err) };
  if (abortReason instanceof AttemptAborted) return { kind: 'error', error: taskErrorOf(abortReason) };
  return { kind: 'error', error: taskErrorOf(err) };
}

/**
 * A handler's `ctx`. A class, so an attempt costs one object rather than an object and a
 * closure per member (at tens of thousands of attempts a second the worker spent a third of its
 * time collecting garbage); `heartbeat` and `log` stay safe to destructure, and JSON of it is
 * `{ task }`. Its state is in plain fields: true private fields and symbol-keyed ones were no
 * faster and mostly slower in interleaved bulk runs (within this machine's noise).
 */
class AttemptContext implements TaskContext {
  readonly task: TaskContext['task'];
  private logger: TaskLogger | null = null;
  private beat: (() => Promise<void>) | null = null;

  constructor(private readonly attempt: RunningAttempt) {
    const f = attempt.frame;
    this.task = {
      id: f.id,
      lambda: f.lambda,
      collection: f.collection,
      attempt: f.attempt,
      tries: f.tries,
      maxAttempts: f.maxAttempts,
      key: f.key,
      priority: f.priority,
    };
  }

  get signal(): AbortSignal {
    return this.attempt.signal().signal;
  }

  get heartbeat(): () => Promise<void> {
    const a = this.attempt;
    this.beat ??= () => a.deps.heartbeat(a.frame);
    return this.beat;
  }

  get log(): TaskLogger {
    if (!this.logger) {
      const f = this.attempt.frame;
      const child = this.attempt.deps.log.child({ task: f.id, lambda: f.lambda, attempt: f.attempt });
      this.logger = {
        info: (msg, fields) => child.info(fields ?? {}, msg),
        warn: (msg, fields) => child.warn(fields ?? {}, msg),
        error: (msg, fields) => child.error(fields ?? {}, msg),
      };
    }
    return this.logger;
  }

  toJSON(): { task: TaskContext['task'] } {
    return { task: this.task };
  }
}
