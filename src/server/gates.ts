import { type Gate, type GateLookup, type GateMode, gateLookupOf, WHOLE_LAMBDA } from '../core/gate.js';
import type { Store } from '../store/store.js';

/** The gates in force, cached from the store; every scheduler, dispatcher and worker decision reads this. */
export class GateCache {
  private gates: Gate[] = [];
  lookup: GateLookup = gateLookupOf([]);

  constructor(private readonly store: Store) {}

  async load(): Promise<void> {
    this.set(await this.store.read((o) => o.q.gateList()));
  }

  set(gates: Gate[]): void {
    this.gates = gates;
    this.lookup = gateLookupOf(gates);
  }

  list(): Gate[] {
    return this.gates;
  }

  /** The gate of the whole lambda. */
  lambdaMode(lambda: string): GateMode {
    return this.gates.find((g) => g.lambda === lambda && g.collection === WHOLE_LAMBDA)?.mode ?? 'open';
  }

  /** Gates on single collections of a lambda. */
  collections(lambda: string): Gate[] {
    return this.gates.filter((g) => g.lambda === lambda && g.collection !== WHOLE_LAMBDA);
  }
}
