import { type BackoffOptions, DEFAULT_BACKOFF } from './backoff.js';

/** What a handler learns about the task it runs. */
export interface TaskInfo {
  id: string;
  lambda: string;
  collection: string | null;
  /** The fencing token: grows by one at every claim. */
  attempt: number;
  /** Attempts of the budget spent, this one included. */
  tries: number;
  maxAttempts: number;
  key: string | null;
  priority: number;
}

export interface TaskLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * What a handler gets beside its payload. `signal`, `heartbeat` and `log` are read-only and
 * made on first read (accessors, not own properties): pass `ctx` itself along, or its members;
 * a copy made by spreading it (`{ ...ctx }`) does not have them. Its JSON is `{ task }`.
 */
export interface TaskContext {
  readonly task: TaskInfo;
  /** Aborted when the attempt times out, loses its lease, or the worker stops past its grace period. */
  readonly signal: AbortSignal;
  /**
   * Renews this attempt's lease now and resolves once the server confirmed it still holds it;
   * rejects if the lease was lost. Leases are renewed automatically; call this to learn early
   * that a long handler should stop.
   */
  readonly heartbeat: () => Promise<void>;
  readonly log: TaskLogger;
}

export type Handler<P = unknown, R = unknown> = (payload: P, ctx: TaskContext) => Promise<R> | R;

/** A schedule for periodic tasks (croner syntax). */
export interface CronSpec {
  pattern: string;
  /** IANA time zone. @default 'UTC' */
  timezone?: string;
  /** Payload of each occurrence. @default {} */
  payload?: unknown;
}

/** Where a handler runs. */
export type Isolation = 'inline' | 'thread' | 'process';

/** The settings of a lambda: defaults for its tasks and limits for its workers. */
export interface LambdaSettings {
  /** Abort an attempt after this long. @default 300000 */
  timeoutMs?: number;
  /** Attempts before FATAL_FAILURE. @default 5 */
  maxAttempts?: number;
  backoff?: Partial<BackoffOptions>;
  /** At most this many attempts of this lambda at once on one worker. @default the worker's concurrency */
  concurrency?: number;
  /** Priority of tasks that do not set one; higher starts first. @default 0 */
  priority?: number;
  /** Create a task on this schedule (one server creates each occurrence, once). */
  cron?: string | CronSpec;
  /** @default 'inline' */
  isolation?: Isolation;
}

/** A lambda as a module exports it: a name, a handler and its settings. */
export interface LambdaDefinition<P = any, R = any> extends LambdaSettings {
  name: string;
  handler: Handler<P, R>;
  /**
   * The module file this lambda is exported from. Isolated lambdas (`isolation: 'thread' |
   * 'process'`) load it again in their thread or process; the lambda loader sets it.
   */
  module?: string;
  /** Heap limit of an isolated lambda's thread or process, in MiB. @default Node's default */
  memoryMb?: number;
}

/** Only adds types; a lambda module may export plain objects instead. */
export function defineLambda<P = unknown, R = unknown>(def: LambdaDefinition<P, R>): LambdaDefinition<P, R> {
  return def;
}

/** A lambda's settings with defaults applied: what the server stores and what tasks inherit. */
export interface LambdaConfig {
  name: string;
  timeoutMs: number;
  maxAttempts: number;
  backoff: BackoffOptions;
  concurrency: number | null;
  priority: number;
  cron: CronSpec | null;
  isolation: Isolation;
}

export const LAMBDA_DEFAULTS = { timeoutMs: 300_000, maxAttempts: 5, priority: 0 } as const;

// Bounds with reasons: timers above 2^31-1 ms fire at once in Node; a budget above 1000
// attempts is a retry loop, not a policy; priorities are int32 so both stores index them alike;
// a snooze of a year is already a reminder, not a retry.
export const LIMITS = {
  nameLength: 128,
  timeoutMsMax: 2 ** 31 - 1,
  maxAttemptsMax: 1000,
  priorityMin: -(2 ** 31),
  priorityMax: 2 ** 31 - 1,
  keyLength: 512,
  collectionLength: 128,
  idempotencyKeyLength: 512,
  dependsOnMax: 100,
  concurrencyMax: 10_000,
  /** MiB: 1 TiB, past any heap V8 can address; the flag takes any size and ignores what it cannot use. */
  memoryMbMax: 1_048_576,
  snoozeMsMax: 365 * 24 * 3_600_000,
} as const;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/** Checks a lambda definition and fills in defaults; throws a TypeError naming the field. */
export function lambdaConfigOf(def: LambdaSettings & { name: string; memoryMb?: number }): LambdaConfig {
  const where = `lambda ${JSON.stringify(def.name)}`;
  if (typeof def.name !== 'string' || !NAME.test(def.name) || def.name.length > LIMITS.nameLength) {
    throw new TypeError(
      `${where}: name must be 1-${LIMITS.nameLength} characters of letters, digits and . _ : - (starting with a letter or digit)`,
    );
  }
  const int = (field: string, v: unknown, min: number, max: number, dflt: number | null): number | null => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new TypeError(`${where}: ${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const backoff = { ...DEFAULT_BACKOFF };
  if (def.backoff !== undefined) {
    backoff.baseMs = int('backoff.baseMs', def.backoff.baseMs, 0, LIMITS.timeoutMsMax, backoff.baseMs) as number;
    backoff.maxMs = int('backoff.maxMs', def.backoff.maxMs, 0, LIMITS.timeoutMsMax, backoff.maxMs) as number;
    if (def.backoff.factor !== undefined) {
      if (typeof def.backoff.factor !== 'number' || !(def.backoff.factor >= 1 && def.backoff.factor <= 100)) {
        throw new TypeError(`${where}: backoff.factor must be a number from 1 to 100`);
      }
      backoff.factor = def.backoff.factor;
    }
  }
  const isolation = def.isolation ?? 'inline';
  if (!['inline', 'thread', 'process'].includes(isolation)) {
    throw new TypeError(`${where}: isolation must be 'inline', 'thread' or 'process'`);
  }
  // Not part of the config (it stays on the worker), but checked with it: a bad one would
  // otherwise reach the isolate's --max-old-space-size, which warns on stderr and runs unbounded.
  int('memoryMb', def.memoryMb, 1, LIMITS.memoryMbMax, null);
  return {
    name: def.name,
    timeoutMs: int('timeoutMs', def.timeoutMs, 1, LIMITS.timeoutMsMax, LAMBDA_DEFAULTS.timeoutMs) as number,
    maxAttempts: int('maxAttempts', def.maxAttempts, 1, LIMITS.maxAttemptsMax, LAMBDA_DEFAULTS.maxAttempts) as number,
    backoff,
    concurrency: int('concurrency', def.concurrency, 1, LIMITS.concurrencyMax, null),
    priority: int('priority', def.priority, LIMITS.priorityMin, LIMITS.priorityMax, LAMBDA_DEFAULTS.priority) as number,
    cron: cronSpecOf(where, def.cron),
    isolation,
  };
}

function cronSpecOf(where: string, cron: LambdaSettings['cron']): CronSpec | null {
  if (cron === undefined || cron === null) return null;
  const spec = typeof cron === 'string' ? { pattern: cron } : cron;
  if (typeof spec.pattern !== 'string' || spec.pattern.trim() === '') {
    throw new TypeError(`${where}: cron must be a croner pattern such as "*/5 * * * *"`);
  }
  return { pattern: spec.pattern, timezone: spec.timezone ?? 'UTC', payload: spec.payload ?? {} };
}

/** Checks that a module export looks like a lambda (plain object with a name and a handler). */
export function isLambdaDefinition(value: unknown): value is LambdaDefinition {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { name?: unknown }).name === 'string' &&
    typeof (value as { handler?: unknown }).handler === 'function'
  );
}
