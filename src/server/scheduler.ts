import { type Clock, MAX_TIMER_MS } from '../clock.js';
import type { Logger } from '../log.js';
import type { Store, SweepResult } from '../store/store.js';
import { isUnavailable } from '../store/store-error.js';
import type { GateCache } from './gates.js';
import type { GroupCommit } from './group-commit.js';
import type { SingletonDuty } from './singleton.js';

export interface SchedulerOptions {
  sweepIntervalMs: number;
  sweepBatch: number;
  /**
   * No lease is rescued before this time (epoch ms): a server starts with every lease
   * extended by one lease period, because lease renewals are acknowledged before they are
   * fsynced and a power cut may have rolled some back (docs/durability.md). A worker cut off
   * by the outage stops within three heartbeats, well inside that period.
   */
  rescueFrom: number;
  /**
   * After the store was unavailable, no lease is rescued for this long either: renewals that
   * the outage rolled back (a database crash loses the last asynchronous commits) or that
   * could not be written must not make a lease look expired while its worker still runs.
   */
  leaseMs: number;
}

export interface SchedulerEvents {
  /** After each sweep pass that changed something. */
  swept?(r: SweepResult): void;
  /** Once per tick, so the dispatcher retries lambdas whose ready work came from elsewhere. */
  tick?(): void;
}

/**
 * The scheduler (ATF's store consumer): one sweep over next_check_at moves due tasks to
 * ENQUEUED, rescues expired leases and deletes expired rows. It sleeps until the earliest
 * next check (or sweepIntervalMs at most), and a submit with an earlier runAt wakes it.
 * Modes: stopped -> waiting (timer set for nextAt) -> sweeping -> waiting ... -> stopped.
 * A sweep that finds the store unavailable retries at the next tick; the first tick after the
 * outage holds rescues off for one lease period (see SchedulerOptions.leaseMs).
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private nextAt = Number.POSITIVE_INFINITY;
  private running: Promise<void> | null = null;
  /** A wake fired while a sweep was running (see fire()). */
  private again = false;
  private stopped = true;
  private rescueFrom: number;
  private storeDown = false;

  constructor(
    private readonly store: Store,
    private readonly commit: GroupCommit,
    private readonly gates: GateCache,
    private readonly duty: SingletonDuty,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: SchedulerOptions,
    private readonly events: SchedulerEvents = {},
  ) {
    this.rescueFrom = opts.rescueFrom;
  }

  start(): void {
    this.stopped = false;
    this.wakeAt(this.clock.now());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Something is due at `at` (epoch ms): make sure a sweep runs by then. */
  wakeAt(at: number): void {
    if (this.stopped || at >= this.nextAt) return;
    this.nextAt = at;
    if (this.timer) clearTimeout(this.timer);
    // A task due weeks away: Node fires a longer timer at once (with a warning); one at the
    // limit fires in 24.8 days at the latest, and the sweep then sets the next.
    this.timer = setTimeout(() => this.fire(), Math.min(MAX_TIMER_MS, Math.max(0, at - this.clock.now())));
    this.timer.unref?.();
  }

  /** Runs one full sweep now (tests drive the scheduler this way with a pinned clock). */
  async sweepNow(): Promise<SweepResult[]> {
    const out: SweepResult[] = [];
    for (;;) {
      const rescue = this.clock.now() >= this.rescueFrom;
      const r = await this.commit.run((ops) => ops.sweep(this.gates.lookup, this.opts.sweepBatch, { rescue }));
      out.push(r);
      if (r.seen > 0) this.events.swept?.(r);
      if (r.seen < this.opts.sweepBatch || this.stopped) return out;
      // A backlog can take longer than the lease: renewed between batches (no store access
      // until it is due), the duty stays here instead of passing to a second sweeper meanwhile.
      if (!(await this.duty.held())) return out;
    }
  }

  private fire(): void {
    this.timer = null;
    this.nextAt = Number.POSITIVE_INFINITY;
    if (this.running) {
      // A wake for something that came due while a sweep runs: that sweep may have read the
      // next check before it was written, so sweep again once it ends rather than lose the
      // wake until the next poll.
      this.again = true;
      return;
    }
    this.running = this.tick().finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.wakeAt(this.clock.now());
      }
    });
  }

  private async tick(): Promise<void> {
    let delay = this.opts.sweepIntervalMs;
    try {
      this.events.tick?.();
      if (await this.duty.held()) {
        if (this.storeDown) {
          // The store answers again (or this sweep fails and we are back here next tick).
          this.storeDown = false;
          this.rescueFrom = Math.max(this.rescueFrom, this.clock.now() + this.opts.leaseMs);
        }
        await this.sweepNow();
        const next = await this.store.read((o) => o.q.taskNextCheck());
        const now = this.clock.now();
        // Before rescueFrom, expired leases stay due without being swept: do not spin on them.
        if (next !== null && (next > now || now >= this.rescueFrom)) delay = Math.min(delay, Math.max(0, next - now));
        if (now < this.rescueFrom) delay = Math.min(delay, this.rescueFrom - now);
        // Sleeping past the lease would hand the duty to whoever asks first and leave this server
        // not holding it between sweeps: the second pass over changed gates and the wake-ups that
        // other servers send for due tasks both go only to the holder.
        delay = Math.min(delay, Math.max(0, this.duty.renewAt() - now));
      }
    } catch (err) {
      if (isUnavailable(err)) this.storeDown = true;
      this.log.warn({ err }, 'sweep failed; retrying');
    }
    if (!this.stopped) this.wakeAt(this.clock.now() + delay);
  }
}
