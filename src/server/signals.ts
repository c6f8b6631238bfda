import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Store, StoreOps } from '../store/store.js';
import type { Dispatcher } from './dispatcher.js';
import type { GateCache } from './gates.js';
import type { LambdaRegistry } from './lambda-registry.js';
import type { Scheduler } from './scheduler.js';
import type { SingletonDuty } from './singleton.js';

/** The channel servers (and conveyor_enqueue, migration 0002) send wake-ups on. */
export const CHANNEL = 'conveyor';

/**
 * What a commit tells the other servers of the store. One NOTIFY per group-commit flush at
 * most, never one per task; short keys, because every server parses every payload (and
 * PostgreSQL caps one at 8000 bytes). conveyor_enqueue in migration 0002 sends `{s:"sql", d}`.
 */
export interface Signal {
  /** The sender: a server id, or "sql" for conveyor_enqueue. A server ignores its own. */
  s: string;
  /** Lambdas that got ready tasks which the sender's own workers may not have taken; "*": any lambda. */
  r?: string[] | '*';
  /** The earliest next check the commit set (epoch ms), when due within a sweep interval: wakes the sweep. */
  d?: number;
  /** Gates changed (pause, resume, drop): reload them. */
  g?: 1;
  /** Lambdas were registered or changed: reload them. */
  l?: 1;
}

/** What a server does when another one signals. */
export interface SignalHandlers {
  /** Tasks of these lambdas (null: of any) may be ready: let the dispatcher claim. */
  ready(lambdas: string[] | null): void;
  /** A task is due at this time (epoch ms): the sweep holder should wake by then. */
  due(at: number): void;
  gates(): Promise<void>;
  lambdas(): Promise<void>;
}

/** The parts of a server that other servers' signals move (the engine hands them over). */
export interface SignalTargets {
  dispatcher: Dispatcher;
  registry: LambdaRegistry;
  gates: GateCache;
  scheduler: Scheduler;
  /** The sweep's duty: only its holder wakes for a due task. */
  sweep: SingletonDuty;
  /** Sends the gates in force to this server's workers. */
  broadcastGates(): void;
}

/** What a server does on each signal. */
export function signalHandlers(t: SignalTargets): SignalHandlers {
  // Only lambdas a worker here runs: the others would only cost this server empty claims.
  const markServed = (lambdas: string[] | null) => {
    const names = lambdas ?? t.registry.all().map((l) => l.name);
    t.dispatcher.markReady(names.filter((l) => t.dispatcher.serves(l)));
  };
  return {
    ready: markServed,
    due: (at) => {
      if (t.sweep.holding()) t.scheduler.wakeAt(at);
    },
    gates: async () => {
      const before = JSON.stringify(t.gates.list());
      await t.gates.load();
      if (JSON.stringify(t.gates.list()) === before) return;
      t.broadcastGates();
      markServed(null); // a resume may have released work
    },
    lambdas: () => t.registry.refresh(),
  };
}

/**
 * Longest list of lambda names one signal carries (as JSON); past it the signal says "*" and
 * the receivers try every lambda they serve. Far below PostgreSQL's 8000-byte payload limit.
 */
const READY_NAMES_MAX_BYTES = 1000;
/**
 * Polling fallback for what signals carry besides ready work: gates and lambdas are re-read
 * this often on a store other processes write to, in case a signal was lost. Ready work has
 * its own fallback (the scheduler's tick marks every lambda ready each sweep interval).
 */
export const REFRESH_FALLBACK_MS = 5000;

/**
 * Wake-ups between the servers of one store (LISTEN/NOTIFY on PostgreSQL), so a server learns
 * within milliseconds what another one's commit changed, instead of at its next poll. Each is
 * only a hint: polling still finds everything, signals only make it sooner.
 *
 * Modes: off (the store has no listenNotify: SQLite, one process) -> listening -> (connection
 * lost: the driver listens again by itself, and calls back; signals sent meanwhile are lost, so
 * everything is re-read then) -> listening ... -> closed.
 */
export class Signals {
  /** Gate and lambda changes to announce with the commit of a flush. */
  private readonly marks = new WeakMap<StoreOps, { g?: 1; l?: 1 }>();
  private unlisten: (() => Promise<void>) | null = null;
  private listens = 0;
  private refreshedAt: number;
  private refreshing = false;
  readonly enabled: boolean;
  private readonly multiProcess: boolean;
  /** For tests and metrics. */
  readonly counters = { sent: 0, received: 0, relistens: 0 };

  constructor(
    private readonly store: Store,
    private readonly serverId: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly handlers: SignalHandlers,
    private readonly opts: { sweepIntervalMs: number },
  ) {
    const caps = store.driver.capabilities;
    this.enabled = caps.listenNotify && typeof store.driver.listen === 'function';
    this.multiProcess = caps.multiProcess;
    this.refreshedAt = clock.now();
  }

  async start(): Promise<void> {
    if (!this.enabled || this.unlisten) return;
    this.unlisten = await (this.store.driver.listen as NonNullable<Store['driver']['listen']>)(
      CHANNEL,
      (payload) => this.receive(payload),
      () => this.onListen(),
    );
  }

  /** Announces a gate or lambda change with the commit of the flush that `ops` belongs to. */
  mark(ops: StoreOps, what: 'gates' | 'lambdas'): void {
    if (!this.enabled) return;
    const m = this.marks.get(ops) ?? {};
    if (what === 'gates') m.g = 1;
    else m.l = 1;
    this.marks.set(ops, m);
  }

  /**
   * Runs last in every flush transaction (after the claim phase), so the NOTIFY goes out with
   * the commit, or not at all. `leftover`: lambdas that got ready tasks in this flush and are
   * still marked ready after this server's own claims (no worker here for them, or not
   * enough credit). `holdsSweep`: this server's own scheduler wakes itself.
   */
  async beforeCommit(ops: StoreOps, leftover: string[], holdsSweep: boolean): Promise<void> {
    if (!this.enabled) return;
    const sig: Signal = { s: this.serverId };
    let any = false;
    if (leftover.length) {
      const names = JSON.stringify(leftover);
      sig.r = names.length > READY_NAMES_MAX_BYTES ? '*' : leftover;
      any = true;
    }
    if (!holdsSweep && ops.earliestCheck < this.clock.now() + this.opts.sweepIntervalMs) {
      sig.d = ops.earliestCheck;
      any = true;
    }
    const m = this.marks.get(ops);
    if (m) {
      Object.assign(sig, m);
      any = true;
    }
    if (!any) return;
    await ops.q.notify(CHANNEL, JSON.stringify(sig));
    this.counters.sent++;
  }

  /** Sends a signal on its own (for writes that do not go through the group commit). */
  async send(sig: Omit<Signal, 's'>): Promise<void> {
    if (!this.enabled) return;
    await this.store.read((o) => o.q.notify(CHANNEL, JSON.stringify({ s: this.serverId, ...sig })));
    this.counters.sent++;
  }

  /** Called on every scheduler tick: the polling fallback for gates and lambdas. */
  tick(): void {
    if (!this.multiProcess || this.refreshing) return;
    const now = this.clock.now();
    if (now - this.refreshedAt < REFRESH_FALLBACK_MS) return;
    this.refreshedAt = now;
    void this.refresh();
  }

  async close(): Promise<void> {
    const stop = this.unlisten;
    this.unlisten = null;
    await stop?.();
  }

  private receive(payload: string): void {
    let sig: Signal;
    try {
      sig = JSON.parse(payload) as Signal;
    } catch {
      return; // not ours: someone else NOTIFYs on this channel
    }
    if (typeof sig !== 'object' || sig === null || sig.s === this.serverId) return;
    this.counters.received++;
    if (sig.r === '*') this.handlers.ready(null);
    else if (Array.isArray(sig.r)) this.handlers.ready(sig.r.filter((l): l is string => typeof l === 'string'));
    if (typeof sig.d === 'number' && Number.isFinite(sig.d)) this.handlers.due(sig.d);
    if (sig.g) void this.handlers.gates().catch((err) => this.log.warn({ err }, 'reloading gates failed; polling will catch up'));
    if (sig.l) void this.handlers.lambdas().catch((err) => this.log.warn({ err }, 'reloading lambdas failed; polling will catch up'));
  }

  /** The first call is the start itself; every later one follows a lost connection. */
  private onListen(): void {
    if (this.listens++ === 0) return;
    this.counters.relistens++;
    this.log.info('listening for other servers again; re-reading what signals may have been lost');
    this.handlers.ready(null);
    this.handlers.due(this.clock.now());
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    this.refreshing = true;
    try {
      await this.handlers.lambdas();
      await this.handlers.gates();
    } catch (err) {
      this.log.warn({ err }, 're-reading gates and lambdas failed; retrying later');
    } finally {
      this.refreshing = false;
      this.refreshedAt = this.clock.now();
    }
  }
}
