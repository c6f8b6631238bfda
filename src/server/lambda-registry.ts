import type { Clock } from '../clock.js';
import type { LambdaConfig } from '../core/lambda.js';
import type { Store } from '../store/store.js';

/**
 * The lambdas a server knows: configured in-process, or registered by workers in their
 * hello. They are remembered in the store, so a task for a known lambda is accepted while no
 * worker that runs it is connected.
 */
export class LambdaRegistry {
  private readonly byName = new Map<string, LambdaConfig>();

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

  /** Remembers lambdas (newest settings win); writes only those that changed. */
  async register(configs: LambdaConfig[]): Promise<void> {
    const changed = configs.filter((c) => JSON.stringify(this.byName.get(c.name)) !== JSON.stringify(c));
    if (changed.length === 0) return;
    const now = this.clock.now();
    await this.store.transaction((o) => o.q.lambdaUpsertMany(changed.map((config) => ({ name: config.name, config, updatedAt: now }))));
    for (const c of changed) this.byName.set(c.name, c);
  }

  /** Picks up lambdas another server registered (PostgreSQL). */
  async refresh(): Promise<void> {
    await this.load();
  }
}
