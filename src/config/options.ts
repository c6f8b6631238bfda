import type { Clock, Random } from '../clock.js';
import { MAX_TIMER_MS, systemClock, systemRandom } from '../clock.js';
import { suggest } from '../core/suggest.js';

/** Options of a Conveyor server (and of an embedded Conveyor). */
export interface ServerOptions {
  /**
   * Where tasks live: a SQLite file path, `sqlite:PATH`, `:memory:`, or a `postgres://` URL.
   * @default './conveyor.db'
   */
  store?: string;
  /** Lease of a claimed or running attempt; a worker renews it every `heartbeatMs`. @default 4 * heartbeatMs */
  leaseMs?: number;
  /** How often workers renew their leases. @default 5000 */
  heartbeatMs?: number;
  /** ENQUEUED tasks older than this join the oldest-first share of claims (aging). @default 30000 */
  enqueueTimeoutMs?: number;
  /** Share of every claim given to tasks past their enqueue timeout, oldest first. @default 0.1 */
  agingShare?: number;
  /** How long finished tasks (and their idempotency keys) are kept. @default 604800000 (7 days) */
  retentionMs?: number;
  /** Longest pause between sweeps; the scheduler also wakes at the next due time. @default 1000 */
  sweepIntervalMs?: number;
  /** Rows per sweep transaction. @default 1000 */
  sweepBatch?: number;
  /** Largest payload, as JSON text. @default 1048576 */
  maxPayloadBytes?: number;
  /** Most tasks in one batch submit. @default 1000 */
  batchMax?: number;
  /** Most write operations waiting for the next group commit; beyond it callers get queue_full. @default 100000 */
  maxPendingWrites?: number;
  /** Most tasks one claim hands to one worker. @default 500 */
  claimBatchMax?: number;
  /**
   * Most ingested payloads (POST /v1/ingest/:lambda) accepted but not yet committed; a request
   * that would go past it gets 429 queue_full at once. @default 10000
   */
  maxQueue?: number;
  /** Batch writers draining the ingest queue, each inserting one batch per group commit. @default 2 */
  ingestWriters?: number;
  /**
   * Most open connections to the HTTP server (API clients, dashboards and workers together);
   * past it a new connection is closed at once. Each may hold a request body up to the body
   * limit while it uploads, so this bounds that memory too. @default 10000
   */
  maxConnections?: number;
  /** SQLite: `full` survives power loss, `normal` survives a killed process. @default 'full' */
  synchronous?: 'full' | 'normal';
  /**
   * PostgreSQL: most connections this process opens (its pool), besides one for LISTEN; the
   * reason for the default is at DEFAULT_POOL in store/postgres/postgres-driver.ts. @default 10
   */
  pgPool?: number;
  /** Time source (tests pin it). */
  clock?: Clock;
  /** Random source (tests make jitter repeatable). */
  random?: Random;
}

export type ServerConfig = Readonly<Required<Omit<ServerOptions, 'leaseMs'>> & { leaseMs: number }>;

const SERVER_DEFAULTS = {
  store: './conveyor.db',
  heartbeatMs: 5000,
  enqueueTimeoutMs: 30_000,
  agingShare: 0.1,
  retentionMs: 7 * 24 * 3600 * 1000,
  sweepIntervalMs: 1000,
  sweepBatch: 1000,
  maxPayloadBytes: 1024 * 1024,
  batchMax: 1000,
  maxPendingWrites: 100_000,
  claimBatchMax: 500,
  // 10,000 payloads: about 0.1 s of what the writers commit on the reference machine (~100k
  // rows/s), so a full queue adds at most that much wait; a few MB of 100-byte payloads with
  // their rows; 15 times the 640 payloads the ingest bench keeps in flight. Far smaller queues
  // cap throughput: a loop turn then takes at most maxQueue payloads (200 let 1,000 busy
  // connections through at 160 requests/s).
  maxQueue: 10_000,
  // 2: one writer's batch waits for its commit while the other takes what arrived meanwhile.
  // The group commit runs one flush at a time on any store, so more writers only split the same
  // rows into smaller batches (4 made batches half as big for no gain on the bench machine).
  ingestWriters: 2,
  maxConnections: 10_000,
  synchronous: 'full' as const,
  pgPool: 10,
};

type Rule = [min: number, max: number];
// Bounds and their reasons: timers above 2^31-1 ms fire at once in Node; a lease must outlive
// three heartbeats (ATF); claim batches past 10k make one transaction hold the store too long;
// each ingest writer holds a batch in flight, and past 64 they only queue for the same store.
const MS_MAX = MAX_TIMER_MS;
const SERVER_RULES: Record<string, Rule> = {
  leaseMs: [100, MS_MAX],
  heartbeatMs: [10, MS_MAX],
  enqueueTimeoutMs: [1, MS_MAX],
  agingShare: [0, 1],
  retentionMs: [0, 10 * 365 * 24 * 3600 * 1000],
  sweepIntervalMs: [5, 3_600_000],
  sweepBatch: [1, 100_000],
  maxPayloadBytes: [2, 256 * 1024 * 1024],
  batchMax: [1, 100_000],
  maxPendingWrites: [1, 10_000_000],
  claimBatchMax: [1, 10_000],
  maxQueue: [1, 10_000_000],
  ingestWriters: [1, 64],
  maxConnections: [1, 1_000_000],
  pgPool: [1, 1000],
};

/** Applies defaults and checks every option once; the result is frozen. */
export function compileServerOptions(opts: ServerOptions = {}): ServerConfig {
  checkKnown('server option', opts, [
    ...Object.keys(SERVER_DEFAULTS),
    'leaseMs',
    'clock',
    'random',
    'lambdas',
    'worker',
    'concurrency',
    'prefetch',
    'logger',
    'shutdownGraceMs',
  ]);
  const merged = { ...SERVER_DEFAULTS, clock: systemClock, random: systemRandom, ...stripUndefined(opts) } as Required<ServerOptions>;
  for (const [name, rule] of Object.entries(SERVER_RULES)) {
    const v = (merged as unknown as Record<string, unknown>)[name];
    if (v !== undefined) checkRange(name, v, rule, name === 'agingShare');
  }
  const leaseMs = opts.leaseMs ?? merged.heartbeatMs * 4;
  if (leaseMs <= merged.heartbeatMs * 3) {
    throw new TypeError(
      `leaseMs (${leaseMs}) must be more than three heartbeats (3 x heartbeatMs = ${merged.heartbeatMs * 3}), so a worker notices a lost lease before it can be handed on`,
    );
  }
  if (!['full', 'normal'].includes(merged.synchronous))
    throw new TypeError(`synchronous must be 'full' or 'normal', got ${JSON.stringify(merged.synchronous)}`);
  if (typeof merged.store !== 'string' || merged.store === '')
    throw new TypeError('store must be a file path, sqlite:PATH, :memory: or a postgres:// URL');
  return Object.freeze({ ...merged, leaseMs });
}

/** Options of a worker (in-process or remote). */
export interface WorkerOptions {
  /** Handlers running at once. @default 10 */
  concurrency?: number;
  /** Tasks held ready beyond the running ones, so a finished slot refills without a round trip. @default concurrency */
  prefetch?: number;
  /** On stop, how long running handlers may finish before they are aborted. @default 10000 */
  shutdownGraceMs?: number;
  /** Stable id of this worker; the default is host:pid:random. */
  workerId?: string;
}

export interface WorkerConfig {
  concurrency: number;
  prefetch: number;
  shutdownGraceMs: number;
  workerId: string | undefined;
}

export function compileWorkerOptions(opts: WorkerOptions = {}): WorkerConfig {
  checkKnown('worker option', opts, ['concurrency', 'prefetch', 'shutdownGraceMs', 'workerId']);
  const concurrency = opts.concurrency ?? 10;
  checkRange('concurrency', concurrency, [1, 10_000]);
  const prefetch = opts.prefetch ?? concurrency;
  checkRange('prefetch', prefetch, [0, 100_000]);
  const shutdownGraceMs = opts.shutdownGraceMs ?? 10_000;
  checkRange('shutdownGraceMs', shutdownGraceMs, [0, MS_MAX]);
  return { concurrency, prefetch, shutdownGraceMs, workerId: opts.workerId };
}

export function checkRange(name: string, v: unknown, [min, max]: Rule, float = false): void {
  if (typeof v !== 'number' || Number.isNaN(v) || (!float && !Number.isInteger(v)) || v < min || v > max) {
    throw new TypeError(`${name} must be ${float ? 'a number' : 'an integer'} from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
}

export function checkKnown(what: string, opts: object, known: string[]): void {
  for (const k of Object.keys(opts)) {
    if (known.includes(k)) continue;
    const hint = suggest(k, known);
    throw new TypeError(`unknown ${what} "${k}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
