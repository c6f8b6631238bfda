import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TaskContext } from '../../core/lambda.js';
import { RetryAfter } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { TaskFrame } from '../../protocol/frames.js';
import { forkTarget, startThread } from '../../threads.js';
import type { FromRunner, RunnerSpec, ToRunner } from './messages.js';

/** A result that crossed from an isolate already serialised (the executor does not stringify it again). */
export class IsolatedResult {
  constructor(readonly json: string) {}
}

export interface IsolateOptions {
  kind: 'thread' | 'process';
  log: Logger;
  /** Heap limit of the thread or process, in MiB (none: Node's default). */
  memoryMb?: number;
  /** After an abort, how long a handler may take to stop before its isolate is killed. @default 2000 */
  killGraceMs?: number;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  ctx: TaskContext;
  killTimer: NodeJS.Timeout | null;
}

interface Child {
  post(m: ToRunner): void;
  kill(): void;
}

const RUNNER = new URL(import.meta.url.endsWith('.ts') ? './runner.ts' : './runner.js', import.meta.url);
/** Restart backoff after a crash: doubling from the first, capped; reset by a minute without one. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 30_000;
const STABLE_MS = 60_000;
/** Longest line of an isolate's output that reaches the log. */
const MAX_LINE = 4096;

/**
 * Runs one lambda's attempts in a worker thread or a child process (Cape's isolation), so a
 * handler that calls process.exit, throws asynchronously or runs out of memory ends its own
 * attempts (each counts against maxAttempts) and never the worker. A handler that ignores
 * its abort signal past the grace period gets its isolate killed: the next attempt can never
 * overlap it.
 *
 * Modes: stopped -> starting (spawned, waiting for 'ready') -> up -> crashed (waiting out the
 * restart backoff; a crash loop doubles it up to 30 s) -> starting ... -> closed.
 */
export class IsolateHost {
  private child: Child | null = null;
  private ready: Promise<void> | null = null;
  private readonly pending = new Map<string, Pending>();
  private crashes = 0;
  private lastCrashAt = 0;
  private closed = false;

  constructor(
    private readonly spec: RunnerSpec,
    private readonly opts: IsolateOptions,
  ) {}

  /** Runs one attempt in the isolate; resolves with an IsolatedResult or rejects with the handler's error. */
  async run(frame: TaskFrame, ctx: TaskContext): Promise<unknown> {
    // The isolate may take long to come up (a slow module, a restart backoff of up to 30 s): an
    // attempt aborted meanwhile (timeout, lost lease, shutdown) must not start in it afterwards
    // with a fresh signal, since by then it may run elsewhere.
    await untilAborted(this.start(), ctx.signal);
    const key = `${frame.id}:${frame.attempt}`;
    return new Promise((resolve, reject) => {
      const p: Pending = { resolve, reject, ctx, killTimer: null };
      this.pending.set(key, p);
      ctx.signal.addEventListener(
        'abort',
        () => {
          const reason = ctx.signal.reason as Error;
          this.child?.post({ type: 'abort', key, name: reason?.name ?? 'AbortError', message: reason?.message ?? 'aborted' });
          p.killTimer = setTimeout(() => {
            this.opts.log.warn({ lambda: this.spec.lambda, task: frame.id }, 'a handler ignored its abort signal; killing its isolate');
            this.child?.kill();
          }, this.opts.killGraceMs ?? 2000);
          p.killTimer.unref?.();
        },
        { once: true },
      );
      this.child?.post({ type: 'run', key, frame });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.child?.kill();
    this.child = null;
  }

  private start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`the isolate of lambda ${this.spec.lambda} is closed`));
    this.ready ??= this.spawn();
    return this.ready;
  }

  private async spawn(): Promise<void> {
    const wait = this.crashes === 0 ? 0 : Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (this.crashes - 1));
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    // Closed during the backoff: a thread or process started now would outlive the worker.
    if (this.closed) throw new Error(`the isolate of lambda ${this.spec.lambda} is closed`);
    await new Promise<void>((resolve, reject) => {
      let up = false;
      const onMessage = (m: FromRunner) => {
        if (m.type === 'ready') {
          up = true;
          resolve();
        } else if (m.type === 'load_failed') reject(new Error(`isolated lambda ${this.spec.lambda}: ${m.message}`));
        else this.onRunnerMessage(m);
      };
      const onExit = (why: string) => {
        this.child = null;
        this.ready = null;
        this.crashed(why);
        if (!up) reject(new Error(`isolated lambda ${this.spec.lambda} did not start: ${why}`));
      };
      this.child = this.opts.kind === 'thread' ? this.thread(onMessage, onExit) : this.process(onMessage, onExit);
    });
  }

  private thread(onMessage: (m: FromRunner) => void, onExit: (why: string) => void): Child {
    const t = startThread(RUNNER, {
      workerData: this.spec,
      resourceLimits: this.opts.memoryMb ? { maxOldGenerationSizeMb: this.opts.memoryMb } : undefined,
      stdout: true,
      stderr: true,
    });
    this.forward(t.stdout, 'info');
    this.forward(t.stderr, 'warn');
    let error: Error | null = null;
    t.on('message', onMessage);
    t.on('error', (err) => {
      error = err;
    });
    t.on('exit', (code) => onExit(error ? `${error.name}: ${error.message}` : `the thread exited with code ${code}`));
    return { post: (m) => t.postMessage(m), kill: () => void t.terminate() };
  }

  private process(onMessage: (m: FromRunner) => void, onExit: (why: string) => void): Child {
    const target = forkTarget(RUNNER);
    const child: ChildProcess = fork(fileURLToPath(target.file), [], {
      env: { ...process.env, ...target.env, CONVEYOR_RUNNER_SPEC: JSON.stringify(this.spec) },
      execArgv: this.opts.memoryMb ? [`--max-old-space-size=${this.opts.memoryMb}`] : [],
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    if (child.stdout) this.forward(child.stdout, 'info');
    if (child.stderr) this.forward(child.stderr, 'warn');
    child.on('message', (m) => onMessage(m as FromRunner));
    let ended = false;
    const end = (why: string) => {
      if (ended) return;
      ended = true;
      onExit(why);
    };
    child.on('exit', (code, signal) => end(signal ? `the process was killed by ${signal}` : `the process exited with code ${code}`));
    child.on('error', (err) => {
      this.opts.log.error({ err, lambda: this.spec.lambda }, 'isolated process error');
      // One that could not be spawned (no pid: ENOENT, EAGAIN) emits no 'exit': without this its
      // start would never settle, and every attempt of the lambda would wait for its timeout.
      if (child.pid === undefined) end(`the process could not be started: ${err.message}`);
    });
    return {
      post: (m) => {
        if (child.connected) child.send(m);
      },
      kill: () => void child.kill('SIGKILL'),
    };
  }

  /** A handler's console output, and a crashing runtime's last words, go to the worker's log, line by line (bounded). */
  private forward(stream: NodeJS.ReadableStream, level: 'info' | 'warn'): void {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).slice(0, MAX_LINE);
        buf = buf.slice(nl + 1);
        if (line.trim()) this.opts.log[level]({ lambda: this.spec.lambda, isolate: this.opts.kind }, line);
        nl = buf.indexOf('\n');
      }
      if (buf.length > MAX_LINE) buf = buf.slice(-MAX_LINE);
    });
  }

  private onRunnerMessage(m: Exclude<FromRunner, { type: 'ready' | 'load_failed' }>): void {
    if (m.type === 'log') {
      this.opts.log[m.level]({ lambda: this.spec.lambda, attempt: m.key, ...(m.fields ?? {}) }, m.msg);
      return;
    }
    const p = this.pending.get(m.key);
    if (!p) return;
    if (m.type === 'heartbeat') {
      p.ctx.heartbeat().then(
        () => this.child?.post({ type: 'heartbeat_ack', req: m.req, error: null }),
        (err: Error) => this.child?.post({ type: 'heartbeat_ack', req: m.req, error: err.message }),
      );
      return;
    }
    this.settle(m.key, p);
    if (m.type === 'done') p.resolve(new IsolatedResult(m.resultJson));
    else if (m.type === 'failed') p.reject(rebuild(m));
  }

  private settle(key: string, p: Pending): void {
    if (p.killTimer) clearTimeout(p.killTimer);
    this.pending.delete(key);
  }

  /** The isolate is gone: every attempt in it failed; the next run restarts it after the backoff. */
  private crashed(why: string): void {
    const now = performance.now();
    this.crashes = now - this.lastCrashAt > STABLE_MS ? 1 : this.crashes + 1;
    this.lastCrashAt = now;
    if (!this.closed) this.opts.log.warn({ lambda: this.spec.lambda, crashes: this.crashes }, `isolated lambda crashed: ${why}`);
    for (const [key, p] of this.pending) {
      this.settle(key, p);
      const err = new Error(`the isolated ${this.opts.kind} running this attempt died: ${why}`);
      err.name = 'IsolateCrashed';
      p.reject(err);
    }
  }
}

function rebuild(m: Extract<FromRunner, { type: 'failed' }>): Error {
  if (m.snoozeMs !== null) return new RetryAfter(m.snoozeMs);
  const err = new Error(m.error.message);
  err.name = m.error.name ?? 'Error';
  if (m.error.stack) err.stack = m.error.stack;
  if (m.error.code) (err as Error & { code?: string }).code = m.error.code;
  if (m.fatal) (err as Error & { fatal?: boolean }).fatal = true;
  return err;
}

/** `p`, or a rejection with the signal's reason as soon as it aborts. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
