import type { Clock } from '../clock.js';
import type { LambdaDefinition, TaskContext, TaskLogger } from '../core/lambda.js';
import { type TaskError, taskErrorOf } from '../core/task.js';
import { isFatal, RetryAfter } from '../errors.js';
import type { FailedItem, TaskFrame } from '../protocol/frames.js';

/** How one attempt ended, as the worker reports it. */
export type AttemptOutcome =
  | { kind: 'done'; resultJson: string; result: unknown }
  | { kind: Exclude<FailedItem['kind'], never>; error: TaskError; snoozeMs?: number };

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

export interface RunningAttempt {
  readonly frame: TaskFrame;
  readonly startedAt: number;
  readonly controller: AbortController;
  /** Resolves with the outcome to report (at the timeout at the latest, plus a short grace). */
  readonly outcome: Promise<AttemptOutcome>;
  /** Resolves when the handler itself has returned; its slot is busy until then. */
  readonly settled: Promise<void>;
}

export interface ExecutorDeps {
  clock: Clock;
  log: TaskLogger;
  heartbeat(frame: TaskFrame): Promise<void>;
  maxResultBytes: number;
  /** After a timeout, how long a handler that ignores its signal may take to return before the attempt is reported anyway. */
  timeoutGraceMs: number;
}

/**
 * Runs one attempt of a handler in this process: builds its context, aborts the signal at the
 * timeout, and classifies the end (done, error, fatal, timeout, snoozed). A handler that
 * ignores its signal keeps its slot until it returns, so concurrency is never exceeded, but its
 * attempt is reported as timed out after a short grace so the task can be retried.
 */
export function startAttempt(def: LambdaDefinition, frame: TaskFrame, deps: ExecutorDeps): RunningAttempt {
  const controller = new AbortController();
  const startedAt = deps.clock.now();
  const ctx: TaskContext = {
    task: {
      id: frame.id,
      lambda: frame.lambda,
      collection: frame.collection,
      attempt: frame.attempt,
      tries: frame.tries,
      maxAttempts: frame.maxAttempts,
      key: frame.key,
      priority: frame.priority,
    },
    signal: controller.signal,
    heartbeat: () => deps.heartbeat(frame),
    log: deps.log,
  };
  let handlerDone!: Promise<unknown>;
  try {
    handlerDone = Promise.resolve(def.handler(frame.payload, ctx));
  } catch (err) {
    handlerDone = Promise.reject(err);
  }
  const settled = handlerDone.then(
    () => undefined,
    () => undefined,
  );
  const classified = handlerDone.then(
    (result) => succeeded(result, deps.maxResultBytes),
    (err) => failed(err, controller.signal),
  );
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<AttemptOutcome>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new AttemptAborted('timeout', `the attempt ran past its timeout of ${frame.timeoutMs} ms`));
      const grace = setTimeout(() => resolve(failed(controller.signal.reason, controller.signal)), deps.timeoutGraceMs);
      grace.unref?.();
      void settled.then(() => clearTimeout(grace));
    }, frame.timeoutMs);
    timer.unref?.();
  });
  const outcome = Promise.race([classified, timedOut]).finally(() => clearTimeout(timer));
  return { frame, startedAt, controller, outcome, settled };
}

function succeeded(result: unknown, maxResultBytes: number): AttemptOutcome {
  let json: string | undefined;
  try {
    json = JSON.stringify(result === undefined ? null : result);
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
  if (json.length > maxResultBytes) {
    return {
      kind: 'fatal',
      error: taskErrorOf(new Error(`the handler returned ${json.length} bytes of JSON, above the limit of ${maxResultBytes}`)),
    };
  }
  return { kind: 'done', resultJson: json, result };
}

function failed(err: unknown, signal: AbortSignal): AttemptOutcome {
  if (err instanceof RetryAfter) return { kind: 'snoozed', error: taskErrorOf(err), snoozeMs: err.delayMs };
  const reason = signal.aborted ? signal.reason : undefined;
  if (reason instanceof AttemptAborted && reason.why === 'timeout') return { kind: 'timeout', error: taskErrorOf(reason) };
  if (isFatal(err)) return { kind: 'fatal', error: taskErrorOf(err) };
  if (reason instanceof AttemptAborted) return { kind: 'error', error: taskErrorOf(reason) };
  return { kind: 'error', error: taskErrorOf(err) };
}
