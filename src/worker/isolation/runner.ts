import { parentPort, workerData } from 'node:worker_threads';
import type { LambdaDefinition, TaskContext } from '../../core/lambda.js';
import { taskErrorOf } from '../../core/task.js';
import { isFatal, RetryAfter } from '../../errors.js';
import { loadLambdaModules } from '../lambda-loader.js';
import type { FromRunner, RunnerSpec, ToRunner } from './messages.js';

/**
 * The far side of an isolated lambda: runs in a worker thread or a child process, loads the
 * lambda's module, and runs attempts on request. Whatever a handler does here (exit, throw
 * asynchronously, run out of memory) ends this thread or process, not the worker.
 */
const send: (m: FromRunner) => void = parentPort ? (m) => parentPort?.postMessage(m) : (m) => process.send?.(m);
const spec: RunnerSpec = parentPort ? workerData : JSON.parse(process.env.CONVEYOR_RUNNER_SPEC ?? '{}');
const running = new Map<string, AbortController>();
const heartbeats = new Map<number, { resolve(): void; reject(e: Error): void }>();
let seq = 0;

function onMessage(m: ToRunner): void {
  if (m.type === 'run') void run(m.key, m.frame);
  else if (m.type === 'abort') {
    const err = new Error(m.message);
    err.name = m.name;
    running.get(m.key)?.abort(err);
  } else if (m.type === 'heartbeat_ack') {
    const w = heartbeats.get(m.req);
    heartbeats.delete(m.req);
    if (m.error === null) w?.resolve();
    else w?.reject(new Error(m.error));
  }
}

let def: LambdaDefinition;

async function run(key: string, frame: Extract<ToRunner, { type: 'run' }>['frame']): Promise<void> {
  const controller = new AbortController();
  running.set(key, controller);
  const log = (level: 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) =>
    send({ type: 'log', key, level, msg, fields });
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
    heartbeat: () =>
      new Promise<void>((resolve, reject) => {
        const req = ++seq;
        heartbeats.set(req, { resolve, reject });
        send({ type: 'heartbeat', key, req });
      }),
    log: { info: log('info'), warn: log('warn'), error: log('error') },
  };
  let result: unknown;
  try {
    result = await def.handler(frame.payload, ctx);
  } catch (err) {
    const snoozeMs = err instanceof RetryAfter ? err.delayMs : null;
    send({ type: 'failed', key, error: taskErrorOf(err), fatal: isFatal(err), snoozeMs });
    return;
  } finally {
    running.delete(key);
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    json = undefined;
    send({
      type: 'failed',
      key,
      error: taskErrorOf(new Error(`the handler returned a value that is not JSON-serialisable: ${(err as Error).message}`)),
      fatal: true,
      snoozeMs: null,
    });
    return;
  }
  if (json === undefined) {
    send({
      type: 'failed',
      key,
      error: taskErrorOf(new Error('the handler returned a value that is not JSON-serialisable')),
      fatal: true,
      snoozeMs: null,
    });
    return;
  }
  send({ type: 'done', key, resultJson: json });
}

try {
  const found = (await loadLambdaModules([spec.module])).find((l) => l.name === spec.lambda);
  if (!found) throw new Error(`module ${spec.module} has no lambda named ${spec.lambda}`);
  def = found;
  if (parentPort) parentPort.on('message', onMessage);
  else process.on('message', (m) => onMessage(m as ToRunner));
  // A child process must not outlive its worker.
  if (!parentPort) process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
} catch (err) {
  send({ type: 'load_failed', message: (err as Error).message });
}
