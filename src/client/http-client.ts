import { systemClock } from '../clock.js';
import type { GateMode } from '../core/gate.js';
import type { SubmitInput } from '../core/submit.js';
import type { TaskView } from '../core/task.js';
import { isTerminal } from '../core/task-state.js';
import { waitTimeoutOf } from '../core/wait.js';
import { ConveyorError, isErrorCode } from '../errors.js';
import type { LambdaSummary } from '../server/engine.js';

export interface ClientOptions {
  /** @default 'http://127.0.0.1:8080' */
  server?: string;
  token?: string;
  /** Per request. @default 30000 */
  timeoutMs?: number;
}

/** Answers that say the server or its store is away for now, not that the wait is wrong. */
const PASSING: ReadonlySet<string> = new Set(['server_unreachable', 'store_unavailable', 'shutting_down']);

/**
 * The HTTP SDK for other processes: the same operations as the embedded Conveyor, over the
 * API of docs/api.md. Every failure is a ConveyorError with the server's code (or
 * `server_unreachable` when no answer came).
 */
export class ConveyorClient {
  readonly server: string;
  private readonly token?: string;
  private readonly timeoutMs: number;

  constructor(opts: ClientOptions = {}) {
    this.server = (opts.server ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async submit(input: SubmitInput): Promise<TaskView> {
    return (await this.call<{ task: TaskView }>('POST', '/v1/tasks', input)).task;
  }

  async submitMany(tasks: SubmitInput[]): Promise<TaskView[]> {
    return (await this.call<{ tasks: TaskView[] }>('POST', '/v1/tasks/batch', { tasks })).tasks;
  }

  async get(id: string): Promise<TaskView> {
    return (await this.call<{ task: TaskView }>('GET', `/v1/tasks/${segment(id)}`)).task;
  }

  list(
    q: { lambda?: string; state?: string; key?: string; limit?: number; cursor?: string } = {},
  ): Promise<{ tasks: TaskView[]; nextCursor: string | null }> {
    const qs = new URLSearchParams(
      Object.entries(q)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]): [string, string] => [k, String(v)]),
    );
    return this.call('GET', `/v1/tasks${qs.size ? `?${qs}` : ''}`);
  }

  async cancel(id: string): Promise<TaskView> {
    return (await this.call<{ task: TaskView }>('POST', `/v1/tasks/${segment(id)}/cancel`)).task;
  }

  async retry(id: string): Promise<TaskView> {
    return (await this.call<{ task: TaskView }>('POST', `/v1/tasks/${segment(id)}/retry`)).task;
  }

  async pause(lambda: string, opts: { collection?: string; mode?: Exclude<GateMode, 'open'> } = {}): Promise<LambdaSummary> {
    return (await this.call<{ lambda: LambdaSummary }>('POST', `/v1/lambdas/${segment(lambda)}/pause`, opts)).lambda;
  }

  async resume(lambda: string, opts: { collection?: string } = {}): Promise<LambdaSummary> {
    return (await this.call<{ lambda: LambdaSummary }>('POST', `/v1/lambdas/${segment(lambda)}/resume`, opts)).lambda;
  }

  async lambdas(): Promise<LambdaSummary[]> {
    return (await this.call<{ lambdas: LambdaSummary[] }>('GET', '/v1/lambdas')).lambdas;
  }

  /**
   * Polls until the task is terminal. A server that restarts, drains or loses its database for
   * a while does not end the wait: such answers are retried (after their Retry-After) until the
   * time is up, and the last of them is thrown then.
   */
  async waitFor(id: string, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<TaskView> {
    const until = systemClock.now() + waitTimeoutOf(opts.timeoutMs, 60_000);
    let pause = opts.pollMs ?? 50;
    for (;;) {
      let wait = pause;
      try {
        // A read that stalls is cut about when the wait is up, not after the client's own
        // timeout; the last read, at the deadline, still gets a second to answer.
        const within = Math.min(this.timeoutMs, Math.max(LAST_READ_MS, until - systemClock.now()));
        const t = (await this.call<{ task: TaskView }>('GET', `/v1/tasks/${segment(id)}`, undefined, within)).task;
        if (isTerminal(t.state)) return t;
        if (systemClock.now() > until) throw new ConveyorError('wait_timed_out', `task ${id} is still ${t.state} after waiting`);
      } catch (err) {
        if (!(err instanceof ConveyorError) || !PASSING.has(err.code) || systemClock.now() > until) throw err;
        wait = Math.max(pause, (err.retryAfterS ?? 0) * 1000);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(wait, until - systemClock.now() + 1))));
      pause = Math.min(1000, pause * 2);
    }
  }

  private async call<T>(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.server + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Within the same timeout and the same catch: a body that stalls or is cut off is the
      // server going away as much as a refused connection is.
      text = await res.text();
    } catch (err) {
      // fetch says only "fetch failed"; the reason (ECONNREFUSED, a refused port) is in its cause.
      const inner = (err as { cause?: { code?: string; message?: string } }).cause;
      const cause = inner?.code ?? inner?.message ?? (err as Error).name;
      throw new ConveyorError('server_unreachable', `cannot reach ${this.server} (${cause})`, { cause: err });
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      if (GATEWAY.has(res.status)) throw awayError(this.server, res);
      throw new ConveyorError('internal_error', `${method} ${path}: the server answered ${res.status} with a body that is not JSON`);
    }
    if (!res.ok) {
      const e = json !== null && typeof json === 'object' ? (json as { error?: { code?: string; message?: string } }).error : undefined;
      if (!isErrorCode(e?.code) && GATEWAY.has(res.status)) throw awayError(this.server, res);
      const code = isErrorCode(e?.code) ? e.code : 'internal_error';
      throw new ConveyorError(code, e?.message ?? `${method} ${path}: HTTP ${res.status}`, retryAfterOf(res.headers.get('retry-after')));
    }
    return json as T;
  }
}

/** The least time a waitFor read is given (the read made once the wait is up, to see the end). */
const LAST_READ_MS = 1000;

/**
 * Statuses that, without a Conveyor error in the body, come from something between the client
 * and a server (a proxy or load balancer whose server is restarting or away): the server is
 * unreachable for now, as with a refused connection, not an internal error.
 */
const GATEWAY: ReadonlySet<number> = new Set([502, 503, 504]);

function awayError(server: string, res: Response): ConveyorError {
  const message = `cannot reach ${server} (HTTP ${res.status} from a proxy in front of it)`;
  return new ConveyorError('server_unreachable', message, retryAfterOf(res.headers.get('retry-after')));
}

/** Retry-After in seconds: a number of seconds, or an HTTP date (RFC 9110). */
function retryAfterOf(header: string | null): { retryAfterS?: number } {
  if (header === null) return {};
  const s = /^\d+$/.test(header.trim()) ? Number(header) : Math.ceil((Date.parse(header) - systemClock.now()) / 1000);
  return Number.isFinite(s) ? { retryAfterS: Math.max(0, s) } : {};
}

/**
 * One path segment. A URL parser folds a segment of "." or ".." away, escaped or not, so
 * `cancel ..` would have asked for POST /v1/cancel: no task id or lambda is either of them.
 */
function segment(value: string): string {
  if (value === '.' || value === '..') throw new ConveyorError('validation_failed', `"${value}" is not a task id or a lambda name`);
  return encodeURIComponent(value);
}
