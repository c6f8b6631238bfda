import type { Clock } from '../clock.js';
import type { LambdaConfig } from '../core/lambda.js';
import type { Store } from '../store/store.js';

/** Fewest milliseconds between two reads caused by unknown lambda names. */
const MISS_REFRESH_MS = 1000;

/**
 * The lambdas a server knows: configured in-process, or registered by workers in their
 * hello. They are remembered in the store, so a task for a known lambda is accepted while no
 * worker that runs it is connected.
 */
export class LambdaRegistry {
  private readonly byName = new Map<string, LambdaConfig>();
  private missRefreshAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async load(): Promise<void> {
    for (const row of await this.store.read((o) => o.q.lambdaList())) this.byName.set(row.name, row.config);
  }

  get(name: string): LambdaConfig | undefined {
    return this.byName.get(name);
  }

  all(): LambdaConfig[] {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Remembers lambdas (newest settings win); writes only those that changed. Answers whether any did. */
  async register(configs: LambdaConfig[]): Promise<boolean> {
    const changed = configs.filter((c) => JSON.stringify(this.byName.get(c.name)) !== JSON.stringify(c));
    if (changed.length === 0) return false;
    const now = this.clock.now();
    await this.store.transaction((o) => o.q.lambdaUpsertMany(changed.map((config) => ({ name: config.name, config, updatedAt: now }))));
    for (const c of changed) this.byName.set(c.name, c);
    return true;
  }

  /** Picks up lambdas another server registered (PostgreSQL). */
  async refresh(): Promise<void> {
    await this.load();
  }

  /**
   * On a store other servers write to, re-reads the lambdas when one of `names` is unknown here:
   * a worker may have registered it on another server a moment ago, before that server's signal
   * arrived. At most once per MISS_REFRESH_MS, so requests for a name nobody registered cost no
   * read each.
   */
  async refreshIfUnknown(names: readonly unknown[]): Promise<void> {
    if (!this.store.driver.capabilities.multiProcess) return;
    if (!names.some((n) => typeof n === 'string' && !this.byName.has(n))) return;
    const now = this.clock.now();
    if (now - this.missRefreshAt < MISS_REFRESH_MS) return;
    this.missRefreshAt = now;
    await this.load();
  }
}
