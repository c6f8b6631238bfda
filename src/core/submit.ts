import { Ajv, type ErrorObject } from 'ajv';
import { ConveyorError } from '../errors.js';
import { type LambdaConfig, LIMITS } from './lambda.js';
import { suggest } from './suggest.js';
import type { NewTask } from './task.js';

/** What a client sends to create a task (POST /v1/tasks, Conveyor.submit). */
export interface SubmitInput {
  lambda: string;
  payload?: unknown;
  /** ISO 8601 time or epoch milliseconds; not before this. */
  runAt?: string | number | Date;
  /** Not before now + delayMs (instead of runAt). */
  delayMs?: number;
  /** Higher starts first. @default the lambda's priority (0) */
  priority?: number;
  /** A label inside the lambda that can be paused on its own. */
  collection?: string;
  key?: string;
  /** With a key: run after every earlier task of the same lambda and key has ended. */
  ordered?: boolean;
  /** A second submit with the same key returns the first task. */
  idempotencyKey?: string;
  maxAttempts?: number;
  timeoutMs?: number;
  /** Start only after these tasks succeeded; cancelled if one of them fails for good. */
  dependsOn?: string[];
}

/**
 * Names, keys and ids hold text either store keeps as sent: no NUL (PostgreSQL's text cannot
 * store it; SQLite can, and a submit must mean the same on either store), and no half of a
 * surrogate pair (JSON can spell one, "\ud800", but it is no character: both stores would
 * write U+FFFD in its place, and a filter on the value as sent would then never match it).
 * ajv matches patterns by code point, so a whole pair (an emoji) passes.
 */
export const PLAIN_TEXT = '^[^\\u0000\\uD800-\\uDFFF]*$';
const str = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength, pattern: PLAIN_TEXT });
/** A collection may not be "*": gates store the whole lambda's gate under that name. */
export const COLLECTION = {
  type: 'string',
  minLength: 1,
  maxLength: LIMITS.collectionLength,
  pattern: '^(?!\\*$)[^\\u0000\\uD800-\\uDFFF]*$',
};
/** The latest time a JavaScript Date can hold (year 275760). */
const MAX_TIME = 8.64e15;
const int = (minimum: number, maximum: number) => ({ type: 'integer', minimum, maximum });

/** JSON schema of one submitted task, shared by the HTTP routes (and OpenAPI) and the library. */
export const submitSchema = {
  $id: 'SubmitTask',
  type: 'object',
  required: ['lambda'],
  additionalProperties: false,
  properties: {
    lambda: str(LIMITS.nameLength),
    payload: {},
    runAt: { anyOf: [{ type: 'string', minLength: 1, maxLength: 64 }, int(0, MAX_TIME)] },
    delayMs: int(0, MAX_TIME),
    priority: int(LIMITS.priorityMin, LIMITS.priorityMax),
    collection: COLLECTION,
    key: str(LIMITS.keyLength),
    ordered: { type: 'boolean' },
    idempotencyKey: str(LIMITS.idempotencyKeyLength),
    maxAttempts: int(1, LIMITS.maxAttemptsMax),
    timeoutMs: int(1, LIMITS.timeoutMsMax),
    dependsOn: { type: 'array', maxItems: LIMITS.dependsOnMax, items: str(64) },
  },
} as const;

const FIELDS = Object.keys(submitSchema.properties);
const ajv = new Ajv({ allErrors: false, strict: true });
const validateSubmit = ajv.compile(submitSchema);

/**
 * One readable line from ajv's errors, the same wording for HTTP and the library. A failed
 * anyOf comes after the errors of its branches; it, not the first branch, says what was wanted.
 */
export function describeSchemaError(errors: ErrorObject[], root = ''): string {
  const e = errors.find((x) => x.keyword === 'anyOf') ?? errors[0];
  const path = `${root}${e.instancePath.replace(/^\//, '').replaceAll('/', '.')}`;
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    const hint = suggest(extra, FIELDS);
    return `${path ? `${path}: ` : ''}unknown field "${extra}"${hint ? ` (did you mean "${hint}"?)` : ''}`;
  }
  if (e.keyword === 'anyOf' && path.endsWith('runAt')) return `${path} must be an ISO 8601 time or epoch milliseconds (0 to ${MAX_TIME})`;
  if (e.keyword === 'pattern') {
    const pattern = (e.params as { pattern: string }).pattern;
    const chars = 'NUL characters or unpaired surrogates (a lone \\ud800-\\udfff)';
    if (pattern === PLAIN_TEXT) return `${path} must not contain ${chars}`;
    if (pattern === COLLECTION.pattern) return `${path} must not be "*" (it stands for the whole lambda) nor contain ${chars}`;
  }
  return `${path || 'body'} ${e.message ?? 'is invalid'}`;
}

/** JSON schema of a pause or resume's body: an optional collection, and a mode out of `modes`. */
export const gateSchema = (modes: readonly string[]) =>
  ({
    type: ['object', 'null'],
    additionalProperties: false,
    properties: {
      collection: COLLECTION,
      ...(modes.length ? { mode: { type: 'string', enum: modes } } : {}),
    },
  }) as const;
const validateGate = ajv.compile(gateSchema(['pause', 'drop', 'open']));

/** Checks a gate change's shape as the HTTP routes do; throws validation_failed with the first problem. */
export function checkGateShape(input: { collection?: string; mode: string }): void {
  const { collection, mode } = input;
  if (!validateGate(collection === undefined ? { mode } : { collection, mode })) {
    throw new ConveyorError('validation_failed', describeSchemaError(validateGate.errors!));
  }
}

/** Checks one submit's shape; throws validation_failed with the first problem. */
export function checkSubmitShape(input: unknown, where = ''): asserts input is SubmitInput {
  if (!validateSubmit(input)) {
    throw new ConveyorError('validation_failed', describeSchemaError(validateSubmit.errors!, where));
  }
}

// Accept what people write: full ISO 8601 with a time zone, or a plain date (UTC midnight).
const ISO = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/i;

/** The time a submit asks for, in epoch ms (now when it gives none); throws validation_failed. */
export function runAtOf(input: SubmitInput, now: number, where: string): number {
  if (input.runAt !== undefined && input.delayMs !== undefined) {
    throw new ConveyorError('validation_failed', `${where}give either runAt or delayMs, not both`);
  }
  const at = runAtMs(input, now, where);
  // Times are shown as ISO 8601 (the API, the dashboard), which a Date beyond this cannot be.
  if (!(at >= 0 && at <= MAX_TIME)) {
    const field = input.delayMs !== undefined ? 'delayMs' : 'runAt';
    throw new ConveyorError('validation_failed', `${where}${field}: the start time must fall between 1970 and the year 275760`);
  }
  return at;
}

function runAtMs(input: SubmitInput, now: number, where: string): number {
  if (input.delayMs !== undefined) return now + input.delayMs;
  const r = input.runAt;
  if (r === undefined) return now;
  if (r instanceof Date) return r.getTime();
  if (typeof r === 'number') return r;
  const ms = ISO.test(r) && isCalendarDay(r) ? Date.parse(r) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new ConveyorError(
      'validation_failed',
      `${where}runAt must be an ISO 8601 time with a zone (e.g. 2026-01-01T12:00:00Z) or epoch milliseconds, got ${JSON.stringify(r)}`,
    );
  }
  return ms;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether the date part names a day of the calendar: Date.parse rolls 2026-02-30 over to March 2. */
function isCalendarDay(iso: string): boolean {
  const [y, m, d] = iso.slice(0, 10).split('-').map(Number) as [number, number, number];
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return m >= 1 && m <= 12 && d >= 1 && d <= (m === 2 && leap ? 29 : (DAYS[m - 1] as number));
}

/**
 * Deepest nesting of arrays and objects a payload may have. JSON.stringify recurses, so how
 * deep it gets depends on the stack left where it runs: a payload that just fitted when it was
 * submitted overflowed when an answer holding it was written, and GET /v1/tasks/:id answered
 * 500 for that task, as did every list page that held it. A fixed bound, far below what any of
 * those places can write, makes what a submit takes readable everywhere.
 */
export const PAYLOAD_DEPTH_MAX = 1000;

/** Refuses a batch of more than batchMax tasks (the HTTP route asks before it checks each task). */
export function checkBatchSize(count: number, batchMax: number): void {
  if (count > batchMax)
    throw new ConveyorError('batch_too_large', `a batch may hold ${batchMax} tasks (batchMax), this one holds ${count}`);
}

/**
 * The bytes JSON text takes in UTF-8, which the byte limits count (maxPayloadBytes, the result
 * limit). Its `length` counts UTF-16 units: CJK text is 3 bytes a unit and an emoji 4 bytes in
 * 2 units, so a limit read off `length` let such payloads through at up to three times it.
 */
export function jsonBytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Whether JSON text nests arrays and objects deeper than PAYLOAD_DEPTH_MAX (a payload's, a result's). */
export function jsonTooDeep(text: string): boolean {
  // Each level takes two characters: shorter text cannot be too deep (every ingest payload the
  // bench sends), and is not scanned.
  if (text.length <= 2 * PAYLOAD_DEPTH_MAX) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character (a quote in the string, or another backslash).
      if (c === 92) i++;
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > PAYLOAD_DEPTH_MAX) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/** The payload as JSON text; a payload that cannot be stored is a validation error, never a crash. */
function payloadJson(payload: unknown, where: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload === undefined ? null : payload);
  } catch (err) {
    // JSON.stringify recurses: a payload nested some thousands of levels deep (which
    // JSON.parse, iterative, accepted) overflows the stack; a cycle or a BigInt throws too.
    const deep = err instanceof RangeError && /call stack/i.test(err.message);
    throw new ConveyorError(
      'validation_failed',
      `${where}payload ${deep ? 'is nested too deeply to store' : `is not JSON-serialisable (${(err as Error).message})`}`,
    );
  }
  if (text === undefined) throw new ConveyorError('validation_failed', `${where}payload is not JSON-serialisable`);
  if (jsonTooDeep(text))
    throw new ConveyorError('validation_failed', `${where}payload is nested more than ${PAYLOAD_DEPTH_MAX} levels deep`);
  return text;
}

/**
 * Turns a checked submit into the row to insert, applying the lambda's defaults.
 * `payloadText` lets a caller that already has the payload's JSON text skip a stringify.
 */
export function newTaskOf(
  input: SubmitInput,
  lambda: LambdaConfig,
  ctx: { now: number; id: string; maxPayloadBytes: number; where?: string },
): NewTask {
  const where = ctx.where ?? '';
  const payload = payloadJson(input.payload, where);
  const bytes = jsonBytes(payload);
  if (bytes > ctx.maxPayloadBytes) {
    throw new ConveyorError('validation_failed', `${where}payload is ${bytes} bytes, above the limit of ${ctx.maxPayloadBytes}`);
  }
  if (input.ordered && input.key === undefined) {
    throw new ConveyorError('validation_failed', `${where}ordered: true needs a key (order holds per lambda and key)`);
  }
  return {
    id: ctx.id,
    lambda: lambda.name,
    collection: input.collection ?? null,
    payload,
    priority: input.priority ?? lambda.priority,
    runAt: runAtOf(input, ctx.now, where),
    key: input.key ?? null,
    ordered: input.ordered ?? false,
    idempotencyKey: input.idempotencyKey ?? null,
    maxAttempts: input.maxAttempts ?? lambda.maxAttempts,
    timeoutMs: input.timeoutMs ?? lambda.timeoutMs,
    dependsOn: input.dependsOn ? [...new Set(input.dependsOn)] : [],
  };
}
