import { suggest } from '../core/suggest.js';
import type { NewTask } from '../core/task.js';
import { ConveyorError } from '../errors.js';
import { IntakeQueue, type IntakeStats } from './intake-queue.js';

/** What the ingest needs from the engine (Engine implements it; no import cycle). */
export interface IngestEngine {
  readonly registry: { get(name: string): unknown };
  /** The tasks of one lambda for bare payloads, checked and given ids (throws unknown_lambda, validation_failed). */
  prepareTasks(lambda: string, payloads: unknown[]): NewTask[];
  /** Inserts prepared tasks in one group commit; resolves once durable. */
  insertPrepared(tasks: NewTask[]): Promise<unknown>;
}

export interface IngestOptions {
  /** Most payloads accepted but not yet committed (maxQueue). */
  maxQueue: number;
  /** Batch writers (ingestWriters). */
  writers: number;
  /** Most payloads in one request (batchMax, and never more than maxQueue). */
  batchMax: number;
}

export interface IngestStats extends IntakeStats {
  /** Most payloads one request may carry. */
  requestItemsMax: number;
}

// Bytes of payload text the queue may hold, whatever maxQueue says: 10,000 payloads of up to
// maxPayloadBytes (1 MiB) each would be 10 GiB; 64 MiB is 500,000 payloads of the bench's 130
// bytes, far above what maxQueue lets in, so it only binds for big payloads. (The memory behind
// them, with the parsed requests and the rows, is a few times the text.)
const INTAKE_BYTES_MAX = 64 * 1024 * 1024;
// Payloads per writer batch (one ops.insert, sharing one group commit with the other writers'):
// a batch blocks the event loop about 8.5 us a row, so 1,000 rows is ~9 ms, which keeps the p99
// of requests around it low; StoreOps.insert measured 8.5 us a row at 640 and at 2,000 rows a
// transaction alike (9.2 at 5,000), so bigger batches would only add latency.
const WRITER_BATCH_MAX = 1000;
// A full queue drains in well under a second at the writers' ~100k rows/s, so 1 s (the
// smallest whole Retry-After) finds room again.
const RETRY_AFTER_S = 1;
const TOKEN_MAX = 4096;
const VERSION_MAX = 128;
const FIELDS = ['token', 'version', 'data'];

/**
 * The ingestion endpoint's work (docs/api.md, "Ingestion"): each payload of a request becomes one task
 * of the lambda; the request's payloads are queued all or none in a bounded intake queue, and
 * the answer waits until a batch writer committed them ("durable before acknowledged"). A full
 * queue answers 429 at once.
 */
export class Ingest {
  readonly requestItemsMax: number;
  private readonly queue: IntakeQueue<NewTask>;

  constructor(
    private readonly engine: IngestEngine,
    opts: IngestOptions,
  ) {
    this.requestItemsMax = Math.min(opts.batchMax, opts.maxQueue);
    this.queue = new IntakeQueue<NewTask>(
      async (tasks) => {
        await this.engine.insertPrepared(tasks);
      },
      {
        maxItems: opts.maxQueue,
        maxBytes: INTAKE_BYTES_MAX,
        writers: opts.writers,
        batchMax: WRITER_BATCH_MAX,
        retryAfterS: RETRY_AFTER_S,
      },
    );
  }

  /**
   * Refusal that needs no body: an unknown lambda, or a queue without room for one more
   * payload. The HTTP route asks before reading the body, so overload is shed cheaply.
   */
  refusal(lambda: string): ConveyorError | null {
    if (this.engine.registry.get(lambda) === undefined) return unknownLambda(lambda);
    if (this.queue.fits(1)) return null;
    this.queue.shed(0);
    return this.queue.fullError();
  }

  /** Turns each payload of `body.data` into a task of `lambda`; resolves with their count once committed. */
  async accept(lambda: string, body: unknown): Promise<number> {
    const payloads = payloadsOf(body, this.requestItemsMax);
    if (!this.queue.fits(payloads.length)) {
      this.queue.shed(payloads.length);
      throw this.queue.fullError();
    }
    const tasks = this.engine.prepareTasks(lambda, payloads);
    let bytes = 0;
    for (const t of tasks) bytes += t.payload.length;
    await this.queue.offer(tasks, bytes);
    return tasks.length;
  }

  stats(): IngestStats {
    return { ...this.queue.stats(), requestItemsMax: this.requestItemsMax };
  }

  /** Payloads accepted and not yet committed (for metrics: a gauge read on scrape). */
  queueDepth(): number {
    return this.queue.depth;
  }

  /** Requests answered 429 queue_full since start (for metrics: a counter read on scrape). */
  shedTotal(): number {
    return this.queue.shedOffers;
  }

  /** Refuses new requests and waits until every accepted payload is committed. */
  close(): Promise<void> {
    return this.queue.close();
  }
}

function unknownLambda(lambda: string): ConveyorError {
  return new ConveyorError('unknown_lambda', `no lambda named ${JSON.stringify(lambda.slice(0, 200))} is registered`);
}

/** Checks an ingest body's shape (no schema engine: a few type tests per request, none per payload). */
export function payloadsOf(body: unknown, itemsMax: number): unknown[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ConveyorError('validation_failed', 'body must be an object {"token"?, "version"?, "data": [payload, ...]}');
  }
  const b = body as Record<string, unknown>;
  for (const key in b) {
    if (FIELDS.includes(key)) continue;
    const hint = suggest(key, FIELDS);
    throw new ConveyorError(
      'validation_failed',
      `unknown field ${JSON.stringify(key.slice(0, 100))}${hint ? ` (did you mean "${hint}"?)` : ''}`,
    );
  }
  const { token, version, data } = b;
  if (token !== undefined && (typeof token !== 'string' || token.length > TOKEN_MAX)) {
    throw new ConveyorError('validation_failed', `token must be a string of at most ${TOKEN_MAX} characters`);
  }
  if (
    version !== undefined &&
    !(typeof version === 'string' && version.length <= VERSION_MAX) &&
    !(typeof version === 'number' && Number.isFinite(version))
  ) {
    throw new ConveyorError('validation_failed', `version must be a number or a string of at most ${VERSION_MAX} characters`);
  }
  if (data === undefined) throw new ConveyorError('validation_failed', 'body must have the field "data": [payload, ...]');
  if (!Array.isArray(data)) throw new ConveyorError('validation_failed', 'data must be an array of payloads');
  if (data.length === 0) throw new ConveyorError('validation_failed', 'data must hold at least one payload');
  if (data.length > itemsMax) {
    throw new ConveyorError(
      'batch_too_large',
      `data holds ${data.length} payloads; a request may hold ${itemsMax} (batchMax, and at most maxQueue)`,
    );
  }
  return data;
}

/** The error of payload `i` that newTaskOf refused (or JSON.stringify could not write). */
export function payloadError(err: unknown, i: number): unknown {
  return err instanceof ConveyorError ? new ConveyorError(err.code, `data[${i}]: ${err.message}`) : err;
}
