import { hostname } from 'node:os';
import type { Clock } from '../clock.js';
import type { WorkerConfig } from '../config/options.js';
import { type GateLookup, gateLookupOf } from '../core/gate.js';
import { type LambdaConfig, type LambdaDefinition, lambdaConfigOf } from '../core/lambda.js';
import type { Logger } from '../log.js';
import { type AttemptRef, PROTOCOL_VERSION, type ServerFrame, type StartedItem, type TaskFrame } from '../protocol/frames.js';
import type { WorkerTransport } from '../protocol/transport.js';
import { AttemptAborted, type AttemptOutcome, type ExecutorDeps, RunningAttempt } from './executor.js';
import { HeartbeatAcks } from './heartbeat-acks.js';
import { IsolateHost } from './isolation/host.js';
import { Outcomes, REPORT_CHUNK, refKey } from './outcomes.js';
import { PriorityBuffer } from './priority-buffer.js';

/**
 * ATF's rule: after this many heartbeat intervals without an answer, stop before the lease can
 * move (leases last more than three heartbeats, so the worker stops first).
 */
const HEARTBEAT_FAILURES_MAX = 3;

export interface ControllerEvents {
  /** The server welcomed this worker (after every (re)connection). */
  ready?(): void;
  started?(t: TaskFrame): void;
  finished?(t: TaskFrame, outcome: AttemptOutcome): void;
  /** An attempt was aborted because the server says it no longer holds it. */
  leaseLost?(ref: AttemptRef): void;
  /** Heartbeats failed three times in a row: running attempts were aborted. */
  suspended?(): void;
}

const refOf = (t: AttemptRef): AttemptRef => ({ id: t.id, attempt: t.attempt });

/**
 * A worker's controller (ATF): holds the tasks the server granted it in per-lambda priority
 * buffers, starts them on a bounded pool of executor slots (with per-lambda caps), reports
 * starts and outcomes in batched frames, renews leases by heartbeat, and gives credit back as
 * places free up.
 *
 * Modes: connecting (no server yet; reports wait) -> running (taking work) -> suspended (three
 * heartbeats unanswered: running attempts aborted, no credit given until a heartbeat is
 * answered again) -> running ... -> draining (stop(): no new work, buffered tasks released,
 * running ones get a grace period) -> stopped.
 */
export class Controller {
  readonly workerId: string;
  private readonly defs = new Map<string, LambdaDefinition>();
  /** Lambdas that run in their own thread or process. */
  private readonly isolates = new Map<string, IsolateHost>();
  private readonly configs: LambdaConfig[];
  private readonly capacity: number;
  private readonly buffer = new PriorityBuffer<TaskFrame>();
  private readonly running = new Map<string, RunningAttempt>();
  private readonly runningByLambda = new Map<string, number>();
  private readonly deps = new Map<string, ExecutorDeps>();
  /** Refs whose outcome must not be reported (the server took the lease back). */
  private readonly forsaken = new Set<string>();
  private busySlots = 0;
  private gate: GateLookup = gateLookupOf([]);
  private mode: 'connecting' | 'running' | 'suspended' | 'draining' | 'stopped' = 'connecting';
  private up = false;
  /** The server answered this connection's hello: frames sent before that would be dropped. */
  private welcomed = false;
  private credit = 0;
  /** Starts not yet reported; an attempt that ends before the next report is reported once, as its outcome. */
  private started = new Map<string, StartedItem>();
  private readonly outcomes = new Outcomes();
  private released: AttemptRef[] = [];
  private flushScheduled = false;
  private heartbeatMs = 5000;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private seq = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly acks = new HeartbeatAcks();
  private idleWaiters: Array<() => void> = [];

  constructor(
    lambdas: LambdaDefinition[],
    private readonly cfg: WorkerConfig,
    private readonly transport: WorkerTransport,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly events: ControllerEvents = {},
    private readonly limits: { maxResultBytes: number; timeoutGraceMs: number } = { maxResultBytes: 1024 * 1024, timeoutGraceMs: 2000 },
  ) {
    for (const l of lambdas) {
      if (this.defs.has(l.name)) throw new TypeError(`lambda "${l.name}" is defined twice`);
      this.defs.set(l.name, l);
      const isolation = l.isolation ?? 'inline';
      if (isolation === 'inline') continue;
      if (!l.module) {
        throw new TypeError(
          `lambda "${l.name}": isolation '${isolation}' loads the lambda again in its own ${isolation}, so it must come from a module file (--lambdas FILE, or set module: '/path/to/lambdas.mjs')`,
        );
      }
      this.isolates.set(l.name, new IsolateHost({ module: l.module, lambda: l.name }, { kind: isolation, log, memoryMb: l.memoryMb }));
    }
    this.configs = lambdas.map(lambdaConfigOf);
    this.capacity = cfg.concurrency + cfg.prefetch;
    this.workerId = cfg.workerId ?? `${hostname()}:${process.pid}:${Math.floor(clock.now() % 1e6).toString(36)}`;
  }

  start(): void {
    this.transport.connect(
      (f) => this.onFrame(f),
      (state) => this.onLink(state),
    );
  }

  /** Attempts running now. */
  get inFlight(): number {
    return this.running.size;
  }

  /** Stops taking work, releases buffered tasks, lets running ones finish within the grace period, then aborts the rest. */
  async stop(graceMs = this.cfg.shutdownGraceMs): Promise<void> {
    if (this.mode === 'stopped') return;
    const graceEnd = this.clock.now() + graceMs;
    this.mode = 'draining';
    this.releaseWhere(() => true);
    this.flush();
    const drained = this.whenIdle();
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref?.());
    if ((await Promise.race([drained, timer])) === 'timeout' && this.running.size > 0) {
      this.log.warn({ running: this.running.size }, 'grace period over; aborting running attempts');
      for (const a of this.running.values()) a.abort(new AttemptAborted('shutdown', 'the worker is shutting down'));
      // Handlers that honour the signal end now; give their outcomes a moment to be reported.
      const until = this.clock.now() + 1000;
      while (this.running.size > 0 && this.clock.now() < until) await new Promise((r) => setTimeout(r, 10));
    }
    this.flush();
    // The last outcomes are kept until the server has written them, through a reconnect if
    // need be (the transport keeps trying), for what is left of the grace period.
    const end = Math.max(graceEnd, this.clock.now() + 1000);
    while (this.outcomes.unwritten > 0 && this.clock.now() < end) await new Promise((r) => setTimeout(r, 10));
    if (this.outcomes.unwritten > 0)
      this.log.warn(
        `stopping with ${this.outcomes.unwritten} outcomes the server has not confirmed; their tasks run again once their leases expire`,
      );
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    this.mode = 'stopped';
    this.acks.giveUp();
    if (this.up) this.transport.send({ type: 'bye' });
    await this.transport.close();
    await Promise.all([...this.isolates.values()].map((h) => h.close()));
  }

  private onLink(state: 'up' | 'down'): void {
    this.up = state === 'up';
    this.welcomed = false;
    if (!this.up) return;
    if (this.mode === 'stopped') return;
    // A fresh session: grant the places that are free now, and say what we still hold.
    const held = this.busySlots + this.buffer.size;
    this.credit = 0;
    this.transport.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      workerId: this.workerId,
      lambdas: this.configs,
      capacity: this.mode === 'draining' ? 0 : Math.max(0, this.capacity - held),
      concurrency: this.cfg.concurrency,
      held: this.holding().map((t) => ({ ...refOf(t), lambda: t.lambda })),
    });
  }

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'welcome':
        if (this.mode === 'connecting') this.mode = 'running';
        this.welcomed = true;
        this.outcomes.welcome(f.reportAcks === true);
        this.heartbeatMs = f.heartbeatMs;
        this.transport.checkEvery?.(f.heartbeatMs);
        this.gate = gateLookupOf(f.gates);
        this.startHeartbeats();
        this.heartbeat();
        this.flush();
        this.events.ready?.();
        return;
      case 'tasks':
        for (const t of f.tasks) this.buffer.push(t);
        if (this.mode !== 'running') this.releaseWhere(() => true);
        this.pump();
        return;
      case 'heartbeat_ack':
        this.onAck(f.seq, f.lost);
        return;
      case 'report_ack':
        this.outcomes.acknowledged(f.seq);
        return;
      case 'refused': {
        const again = this.outcomes.resentOf(f.items);
        this.log.warn(
          { attempts: f.items.slice(0, 10) },
          `the server refused reports on ${f.items.length} attempts this worker no longer holds (lease expired or moved on)${
            again ? `; ${again} of them were sent again after a reconnect, so the server may have had them already` : ''
          }`,
        );
        this.forsake(f.items);
        return;
      }
      case 'gates':
        this.gate = gateLookupOf(f.gates);
        this.releaseWhere((t) => this.gate(t.lambda, t.collection) !== 'open');
        this.pump();
        return;
      case 'error':
        this.log.error({ code: f.error.code }, `server refused this worker: ${f.error.message}`);
        return;
    }
  }

  /** Starts buffered tasks while slots are free, most urgent first. */
  private pump(): void {
    while (this.mode === 'running' && this.busySlots < this.cfg.concurrency) {
      const t = this.buffer.take((l) => this.lambdaHasRoom(l));
      if (!t) return;
      if (this.gate(t.lambda, t.collection) !== 'open') {
        this.release(t);
        continue;
      }
      this.run(t);
    }
  }

  private lambdaHasRoom(lambda: string): boolean {
    const cap = this.defs.get(lambda)?.concurrency;
    return cap === undefined || (this.runningByLambda.get(lambda) ?? 0) < cap;
  }

  private run(t: TaskFrame): void {
    const def = this.defs.get(t.lambda);
    if (!def) {
      // The server only sends lambdas this worker registered; give it back if that ever breaks.
      this.log.error({ task: t.id, lambda: t.lambda }, 'received a task for a lambda this worker does not run');
      this.release(t);
      return;
    }
    const key = refKey(t);
    this.busySlots++;
    this.runningByLambda.set(t.lambda, (this.runningByLambda.get(t.lambda) ?? 0) + 1);
    const attempt = new RunningAttempt(def, t, this.depsOf(t.lambda));
    this.running.set(key, attempt);
    this.started.set(key, { id: t.id, attempt: t.attempt, at: attempt.startedAt });
    this.events.started?.(t);
    this.scheduleFlush();
    attempt.start();
  }

  /** What the attempts of one lambda share (made once: a literal per attempt was garbage at once). */
  private depsOf(lambda: string): ExecutorDeps {
    let deps = this.deps.get(lambda);
    if (!deps) {
      const isolate = this.isolates.get(lambda);
      deps = {
        clock: this.clock,
        log: this.log,
        heartbeat: (frame) => this.heartbeatFor(frame),
        maxResultBytes: this.limits.maxResultBytes,
        timeoutGraceMs: this.limits.timeoutGraceMs,
        onOutcome: (a, o) => this.finish(a, o),
        onSettled: (a) => this.settled(a),
        invoke: isolate ? (frame, ctx) => isolate.run(frame, ctx) : undefined,
      };
      this.deps.set(lambda, deps);
    }
    return deps;
  }

  /** The handler returned: its slot is free. */
  private settled(a: RunningAttempt): void {
    this.busySlots--;
    this.runningByLambda.set(a.frame.lambda, (this.runningByLambda.get(a.frame.lambda) ?? 1) - 1);
    this.give(1);
    this.pump();
    this.checkIdle();
  }

  private finish(a: RunningAttempt, o: AttemptOutcome): void {
    const key = refKey(a.frame);
    this.running.delete(key);
    this.started.delete(key);
    this.events.finished?.(a.frame, o);
    if (this.forsaken.delete(key)) return; // the server already took this attempt back
    const f = a.frame;
    if (o.kind === 'done')
      this.outcomes.add({ done: { id: f.id, attempt: f.attempt, startedAt: a.startedAt, result: o.result, resultJson: o.resultJson } });
    else
      this.outcomes.add({
        failed: { id: f.id, attempt: f.attempt, startedAt: a.startedAt, kind: o.kind, error: o.error, snoozeMs: o.snoozeMs },
      });
    // Report in chunks while fast handlers run through the buffer, so the server claims the
    // next tasks while this worker still has work (otherwise the two take turns idling).
    if (this.outcomes.pending >= REPORT_CHUNK) this.flush();
    else this.scheduleFlush();
    this.checkIdle();
  }

  /** The server no longer holds these attempts for us: abort them, drop them from the buffer. */
  private forsake(items: AttemptRef[]): void {
    const keys = new Set(items.map(refKey));
    for (const k of keys) {
      const a = this.running.get(k);
      if (!a) continue;
      this.forsaken.add(k);
      this.events.leaseLost?.(a.frame);
      a.abort(new AttemptAborted('lease_lost', 'this attempt lost its lease; another attempt may run the task'));
    }
    const dropped = this.buffer.removeWhere((t) => keys.has(refKey(t)));
    this.give(dropped.length);
  }

  private releaseWhere(match: (t: TaskFrame) => boolean): void {
    for (const t of this.buffer.removeWhere(match)) this.release(t, false);
    this.scheduleFlush();
  }

  private release(t: TaskFrame, schedule = true): void {
    this.released.push({ id: t.id, attempt: t.attempt });
    this.give(1);
    if (schedule) this.scheduleFlush();
  }

  private give(n: number): void {
    if (n <= 0) return;
    this.credit += n;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Sends everything to report (outcomes are kept while disconnected): one frame, or several
   * when more outcomes piled up than one takes (see Outcomes.take).
   */
  private flush(): void {
    if (!this.welcomed) return;
    const credit = this.mode === 'running' ? this.credit : 0;
    if (credit === 0 && !this.started.size && !this.outcomes.pending && !this.released.length) return;
    this.outcomes.take().forEach(({ done, failed, seq }, i) => {
      const first = i === 0;
      this.transport.send({
        type: 'report',
        ...(first && credit ? { credit } : {}),
        ...(first && this.started.size ? { started: [...this.started.values()] } : {}),
        ...(done.length ? { done } : {}),
        ...(failed.length ? { failed } : {}),
        ...(first && this.released.length ? { released: this.released } : {}),
        ...(seq === undefined ? {} : { seq }),
      });
    });
    if (this.mode === 'running') this.credit = 0;
    this.started = new Map();
    this.released = [];
  }

  private startHeartbeats(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatMs);
    this.heartbeatTimer.unref?.();
    // A welcome renews no lease: the count of unanswered intervals goes on from the last answer
    // (a connection that keeps dropping must not push the deadline past the leases).
    if (!this.watchdog) this.armWatchdog();
  }

  /** Suspends the worker if no heartbeat is answered for three intervals from now. */
  private armWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      this.watchdog = null;
      this.suspend();
    }, this.heartbeatMs * HEARTBEAT_FAILURES_MAX);
    this.watchdog.unref?.();
  }

  /**
   * Every attempt this worker holds, running or buffered. Not those it gave up whose handlers
   * have yet to return: renewing their leases would keep their tasks from running again
   * elsewhere for as long as the handlers take, for outcomes that are never reported.
   */
  private holding(): TaskFrame[] {
    const out: TaskFrame[] = [];
    for (const [key, a] of this.running) if (!this.forsaken.has(key)) out.push(a.frame);
    for (const t of this.buffer.values()) out.push(t);
    return out;
  }

  /** Renews every held lease; answers go to onAck. */
  private heartbeat(): number {
    const seq = ++this.seq;
    this.acks.sent(seq, this.clock.now(), this.heartbeatMs);
    if (this.up) this.transport.send({ type: 'heartbeat', seq, held: this.holding().map(refOf) });
    return seq;
  }

  private onAck(seq: number, lost: AttemptRef[]): void {
    if (this.mode !== 'stopped') this.armWatchdog();
    if (lost.length) this.forsake(lost);
    this.acks.answer(seq, lost);
    if (this.mode === 'suspended') {
      this.log.info('heartbeats answered again; taking work');
      this.mode = 'running';
      this.scheduleFlush();
      this.pump();
    }
  }

  private suspend(): void {
    // While draining too: a grace period may outlast the leases, which must not move on while
    // their attempts still run here.
    if (this.mode !== 'running' && this.mode !== 'draining') return;
    this.log.error(
      `no heartbeat answered for ${HEARTBEAT_FAILURES_MAX} intervals; aborting ${this.running.size} running attempts before their leases can move`,
    );
    if (this.mode === 'running') this.mode = 'suspended';
    this.events.suspended?.();
    this.forsake(this.holding().map(refOf));
  }

  private heartbeatFor(frame: TaskFrame): Promise<void> {
    const seq = this.heartbeat();
    return new Promise((resolve, reject) => {
      this.acks.wait(seq, (lost) => {
        if (lost === null) reject(new Error('heartbeat unanswered: the server did not confirm the lease in time'));
        else if (lost.some((l) => l.id === frame.id && l.attempt === frame.attempt))
          reject(new AttemptAborted('lease_lost', 'this attempt lost its lease'));
        else resolve();
      });
    });
  }

  private whenIdle(): Promise<void> {
    if (this.busySlots === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private checkIdle(): void {
    if (this.busySlots === 0 && this.running.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }
}
