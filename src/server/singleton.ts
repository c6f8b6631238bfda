import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';

/**
 * A duty that one server at a time performs (sweeps, cron), held through a lease row. The
 * holder renews when half the lease is gone; a server that dies stops renewing and another
 * takes the duty once the lease expires.
 */
export class SingletonDuty {
  private until = 0;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    readonly name: string,
    private readonly holder: string,
    private readonly leaseMs: number,
  ) {}

  /** Whether this server holds the duty now (taking or renewing the lease when due). */
  async held(): Promise<boolean> {
    const now = this.clock.now();
    if (this.fresh(now) && this.until - now > this.leaseMs / 2) return true;
    const ok = await this.store.transaction((o) => o.q.leaseTry(this.name, this.holder, now, now + this.leaseMs));
    this.until = ok ? now + this.leaseMs : 0;
    return ok;
  }

  /** When held() next renews the lease (epoch ms): a holder that checks no later keeps the duty. */
  renewAt(): number {
    return this.until - this.leaseMs / 2;
  }

  /** Whether this server held the duty at its last check and the lease has not run out since (no store access). */
  holding(): boolean {
    const now = this.clock.now();
    return this.fresh(now) && this.until > now;
  }

  /**
   * A lease can be at most leaseMs ahead; more, and this server's clock was set back since it
   * was taken. Trusted, it would keep the duty here without asking the store for as long as
   * the clock moved, while the others, whose clocks did not move, see the stored lease run out
   * and take the duty too.
   */
  private fresh(now: number): boolean {
    return this.until - now <= this.leaseMs;
  }

  /** Gives the duty up (clean shutdown), so another server takes it now instead of after the lease. */
  async release(): Promise<void> {
    if (this.until === 0) return;
    this.until = 0;
    await this.store.transaction((o) => o.q.leaseRelease(this.name, this.holder));
  }
}
