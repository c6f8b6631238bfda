import { Ajv } from 'ajv';
import { LIMITS, lambdaConfigOf } from '../core/lambda.js';
import { PLAIN_TEXT } from '../core/submit.js';
import { ConveyorError } from '../errors.js';
import { PROTOCOL_VERSION, type WorkerFrame } from './frames.js';

// Frames from a remote worker are input like any request body: checked before they reach
// the HSC, so a buggy or hostile worker gets an error frame, never a crashed server.
const id = { type: 'string', minLength: 1, maxLength: 64, pattern: PLAIN_TEXT };
// Bounds the stores can hold: attempts are int32, times integer epoch ms a Date can show.
const attempt = { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1 };
const ms = { type: 'integer', minimum: 0, maximum: 8.64e15 };
const ref = { type: 'object', required: ['id', 'attempt'], properties: { id, attempt } };
const list = (items: object, maxItems = 100_000) => ({ type: 'array', maxItems, items });
// What a worker holds (or gives back at once) is bounded by the places it may grant: a worker
// may hold more than 100,000 tasks (10,000 running and 100,000 buffered).
const CAPACITY_MAX = 1_000_000;
const error = {
  type: 'object',
  required: ['message'],
  properties: { message: { type: 'string' }, name: { type: 'string' }, code: { type: 'string' }, stack: { type: 'string' } },
};

const schema = {
  oneOf: [
    {
      type: 'object',
      required: ['type', 'protocol', 'workerId', 'lambdas', 'capacity', 'concurrency'],
      properties: {
        type: { const: 'hello' },
        protocol: { type: 'integer' },
        workerId: { type: 'string', minLength: 1, maxLength: 256, pattern: PLAIN_TEXT },
        lambdas: list({ type: 'object', required: ['name'] }, 10_000),
        capacity: { type: 'integer', minimum: 0, maximum: CAPACITY_MAX },
        concurrency: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        held: list(
          {
            type: 'object',
            required: ['id', 'attempt', 'lambda'],
            properties: { id, attempt, lambda: { type: 'string', minLength: 1, maxLength: LIMITS.nameLength } },
          },
          CAPACITY_MAX,
        ),
      },
    },
    {
      type: 'object',
      required: ['type'],
      properties: {
        type: { const: 'report' },
        credit: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        started: list({ type: 'object', required: ['id', 'attempt', 'at'], properties: { id, attempt, at: ms } }),
        done: list({ type: 'object', required: ['id', 'attempt', 'startedAt'], properties: { id, attempt, startedAt: ms } }),
        failed: list({
          type: 'object',
          required: ['id', 'attempt', 'kind', 'error'],
          properties: {
            id,
            attempt,
            startedAt: { anyOf: [ms, { type: 'null' }] },
            kind: { enum: ['error', 'timeout', 'fatal', 'snoozed'] },
            error,
            snoozeMs: { type: 'number', minimum: 0, maximum: LIMITS.snoozeMsMax },
          },
        }),
        released: list(ref, CAPACITY_MAX),
        seq: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
    {
      type: 'object',
      required: ['type', 'seq', 'held'],
      properties: { type: { const: 'heartbeat' }, seq: { type: 'integer' }, held: list(ref, CAPACITY_MAX) },
    },
    { type: 'object', required: ['type'], properties: { type: { const: 'bye' } } },
  ],
};

const check = new Ajv({ allErrors: false, strict: false }).compile(schema);

/** Parses and checks one frame from a worker; throws validation_failed with what is wrong. */
export function parseWorkerFrame(text: string): WorkerFrame {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch (err) {
    throw new ConveyorError('invalid_json', `frame is not JSON: ${(err as Error).message}`);
  }
  if (!check(frame)) {
    const type = (frame as { type?: unknown })?.type;
    throw new ConveyorError('validation_failed', `bad ${typeof type === 'string' ? `"${type.slice(0, 20)}" ` : ''}frame`);
  }
  const f = frame as unknown as WorkerFrame;
  if (f.type === 'hello') {
    if (f.protocol !== PROTOCOL_VERSION) {
      throw new ConveyorError(
        'validation_failed',
        `protocol version ${f.protocol} is not supported; this server speaks ${PROTOCOL_VERSION}`,
      );
    }
    try {
      f.lambdas = f.lambdas.map((l) => lambdaConfigOf(l as never));
    } catch (err) {
      throw new ConveyorError('validation_failed', (err as Error).message);
    }
  }
  return f;
}
