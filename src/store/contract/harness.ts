import { expect } from 'vitest';
import { ManualClock, seededRandom } from '../../clock.js';
import { type GateLookup, gateLookupOf, openGates } from '../../core/gate.js';
import { IdGenerator } from '../../core/ids.js';
import { type LambdaConfig, lambdaConfigOf } from '../../core/lambda.js';
import { claimedFields, type NewTask, type TaskRow } from '../../core/task.js';
import type { Driver } from '../driver.js';
import { Store, type StoreOps } from '../store.js';

/** What the contract suite needs from a dialect: a fresh, empty, migrated driver per test. */
export interface ContractTarget {
  name: string;
  makeDriver(): Promise<Driver>;
  /** Removes what makeDriver created (a temp file, a schema). */
  cleanup?(driver: Driver): Promise<void>;
}

export const TIMING = { enqueueTimeoutMs: 1000, retentionMs: 60_000 };
export const LEASE_MS = 5000;

/** One store under test with a pinned clock. */
export class Harness {
  readonly clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
  readonly random = seededRandom(42);
  readonly ids = new IdGenerator(this.clock, this.random);
  readonly store: Store;
  private readonly lambdas = new Map<string, LambdaConfig>();
  gate: GateLookup = openGates;

  constructor(readonly driver: Driver) {
    this.store = new Store(driver, {
      clock: this.clock,
      random: this.random,
      timing: TIMING,
      lambda: (name) => this.lambdas.get(name) ?? lambdaConfigOf({ name, backoff: { baseMs: 100, maxMs: 1000 } }),
    });
  }

  tx<T>(fn: (ops: StoreOps) => Promise<T>): Promise<T> {
    return this.store.transaction(fn);
  }

  setGates(gates: Array<{ lambda: string; collection: string; mode: 'open' | 'pause' | 'drop' }>): void {
    this.gate = gateLookupOf(gates);
  }

  task(over: Partial<NewTask> = {}): NewTask {
    return {
      id: this.ids.next(),
      lambda: 'work',
      collection: null,
      payload: JSON.stringify({ n: 1 }),
      priority: 0,
      runAt: this.clock.now(),
      key: null,
      ordered: false,
      idempotencyKey: null,
      maxAttempts: 3,
      timeoutMs: 1000,
      dependsOn: [],
      ...over,
    };
  }

  /** Inserts tasks and answers their rows (throws on an insert error). */
  async insert(...tasks: NewTask[]): Promise<TaskRow[]> {
    const out = await this.tx((o) => o.insert(tasks, this.gate));
    return out.map((r) => {
      if ('error' in r) throw r.error;
      return r.task;
    });
  }

  /** Claims and answers the claimed tasks as full rows. */
  async claim(lambda = 'work', limit = 10, overdue = 0, workerId = 'w1'): Promise<TaskRow[]> {
    const { rows: claimed } = await this.tx((o) => o.claim({ lambda, limit, overdue, workerId, leaseMs: LEASE_MS }));
    const rows = await this.store.read((o) => o.q.taskByIds(claimed.map((c) => c.id)));
    const byId = new Map(rows.map((r) => [r.id, r]));
    return claimed.map((c) => {
      const r = byId.get(c.id) as TaskRow;
      expect(c).toEqual(claimedFields(r));
      return r;
    });
  }

  async get(id: string): Promise<TaskRow> {
    const row = await this.store.read((o) => o.q.taskGet(id));
    if (!row) throw new Error(`no task ${id}`);
    return row;
  }

  succeed(row: { id: string; attempt: number }, result: unknown = { ok: true }): Promise<Set<string>> {
    return this.tx((o) =>
      o.succeed(
        [{ id: row.id, attempt: row.attempt, workerId: 'w1', startedAt: this.clock.now(), result: JSON.stringify(result) }],
        this.gate,
      ),
    );
  }

  fail(
    row: { id: string; attempt: number },
    kind: 'error' | 'fatal' | 'timeout' | 'snoozed' = 'error',
    snoozeMs?: number,
  ): Promise<Set<string>> {
    return this.tx((o) =>
      o.fail(
        [
          {
            id: row.id,
            attempt: row.attempt,
            kind,
            error: JSON.stringify({ message: 'boom' }),
            workerId: 'w1',
            startedAt: this.clock.now(),
            snoozeMs,
          },
        ],
        this.gate,
      ),
    );
  }

  sweep(limit = 1000) {
    return this.tx((o) => o.sweep(this.gate, limit));
  }
}
