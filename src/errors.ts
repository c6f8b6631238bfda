import { LIMITS } from './core/lambda.js';
/**
 * The error catalogue: every code Conveyor can answer with, defined once with its HTTP status
 * and a one-line description. HTTP turns a ConveyorError into {"error":{"code","message"}},
 * the CLI prints "error: <message> (<code>)" and exits non-zero, the SDK throws it back.
 * docs/errors.md lists the same codes; test/tidy.test.ts keeps the two in step.
 */
export const ERROR_CATALOGUE = {
  invalid_json: { status: 400, description: 'The request body is not valid JSON.' },
  validation_failed: {
    status: 400,
    description: 'The request is well-formed JSON but a field is missing, of the wrong type or out of range.',
  },
  batch_too_large: { status: 400, description: 'A batch holds more items than the configured limit.' },
  unknown_dependency: { status: 400, description: 'A task in dependsOn does not exist (or was already deleted by retention).' },
  invalid_cursor: { status: 400, description: 'A list cursor was not produced by this server.' },
  unauthorized: { status: 401, description: 'A token is configured and the request did not carry it as "Authorization: Bearer <token>".' },
  not_found: { status: 404, description: 'No such route.' },
  task_not_found: { status: 404, description: 'No task has this id.' },
  unknown_lambda: { status: 404, description: 'No worker has registered a lambda of this name and none is configured.' },
  method_not_allowed: { status: 405, description: 'The route exists but not for this HTTP method.' },
  bad_request: { status: 400, description: 'The request is not well-formed HTTP; the server closes the connection.' },
  uri_too_long: { status: 414, description: 'A segment of the URL path is longer than 1024 characters.' },
  upgrade_required: {
    status: 426,
    description: 'The route speaks the worker protocol over a WebSocket (docs/protocol.md): send an upgrade request.',
  },
  headers_too_large: { status: 431, description: 'The request line and headers are larger than the server takes (16 KiB in all).' },
  invalid_state: {
    status: 409,
    description: 'The task is in a state that does not allow this operation (e.g. cancelling a running task).',
  },
  stale_attempt: {
    status: 409,
    description: 'A worker reported on an attempt it no longer holds (its lease expired or moved); the report was refused.',
  },
  body_too_large: { status: 413, description: 'The request body is larger than the configured limit.' },
  unsupported_media_type: { status: 415, description: 'The request body is not application/json, or declares a charset other than UTF-8.' },
  queue_full: { status: 429, description: 'The intake queue is full; retry after the number of seconds in Retry-After.' },
  internal_error: { status: 500, description: 'An unexpected error; the server log has the details.' },
  store_unavailable: {
    status: 503,
    description:
      'The store (database) does not answer, or gave the write up as clashing with concurrent writes (a deadlock); retry after the number of seconds in Retry-After.',
  },
  shutting_down: {
    status: 503,
    description:
      'The server is draining and takes no new work (answered on connections it still holds; it stops listening at once, so new connections are refused).',
  },
  server_unreachable: {
    status: 503,
    description: 'A client (SDK, CLI, worker) could not reach the server: connection refused, reset or timed out.',
  },
  wait_timed_out: {
    status: 408,
    description: 'waitFor (library, SDK) or `submit --wait` gave up: the task was not finished within the time asked for.',
  },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class ConveyorError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds a client should wait before retrying, for 429 and 503 answers. */
  readonly retryAfterS?: number;

  constructor(code: ErrorCode, message?: string, opts: { retryAfterS?: number; cause?: unknown } = {}) {
    super(message ?? ERROR_CATALOGUE[code].description, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ConveyorError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    if (opts.retryAfterS !== undefined) this.retryAfterS = opts.retryAfterS;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

/**
 * Thrown by a handler to end its task in FATAL_FAILURE at once, without retries.
 * Any error with `fatal: true` is treated the same way.
 */
export class FatalError extends Error {
  readonly fatal = true;
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'FatalError';
  }
}

/** Thrown by a handler (`throw retryAfter(30_000)`) to run the task again later without spending an attempt. */
export class RetryAfter extends Error {
  constructor(readonly delayMs: number) {
    // Checked here, not only in retryAfter(): a delay the server cannot take (NaN, Infinity)
    // would have it refuse the worker's whole report, and every outcome in it with this one.
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0 || delayMs > LIMITS.snoozeMsMax)
      throw new TypeError(`retryAfter: delayMs must be a number from 0 to ${LIMITS.snoozeMsMax} (a year), got ${String(delayMs)}`);
    super(`retry after ${delayMs} ms`);
    this.name = 'RetryAfter';
  }
}

export function retryAfter(delayMs: number): RetryAfter {
  return new RetryAfter(delayMs);
}

export function isFatal(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { fatal?: unknown }).fatal === true;
}
