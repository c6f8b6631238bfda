import { ConveyorError } from '../errors.js';
import type { Store, StoreOps } from '../store/store.js';

type Op<T> = (ops: StoreOps) => Promise<T>;

interface Queued {
  op: Op<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export interface GroupCommitHooks {
  /** Runs last inside every flush transaction (the dispatcher claims here, so new tasks and their claim share one commit). */
  beforeCommit?(ops: StoreOps): Promise<void>;
  /** Runs after a flush committed (deliver what was claimed, announce what ended). */
  afterCommit?(ops: StoreOps): void;
  /** A flush rolled back (forget what was claimed in it). */
  afterRollback?(err: unknown): void;
}

/**
 * Group commit: every write queued during one turn of the event loop runs in one transaction,
 * and each caller's promise resolves only after that transaction committed ("durable before
 * acknowledged" at one fsync per batch instead of one per task; an fsync costs about 0.17 ms
 * on the reference disk, a batched insert about 3 us a row).
 *
 * Modes: idle (nothing queued) -> scheduled (a flush is due on setImmediate) -> flushing (a
 * transaction runs; writes queued meanwhile wait for the next flush). If a flush fails, its
 * writes are retried one transaction each, so one bad write cannot fail its neighbours.
 */
export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled = false;
  private flushing = false;
  private wanted = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly store: Store,
    private readonly opts: { maxPending: number; maxPerFlush: number },
    private readonly hooks: GroupCommitHooks = {},
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  /** Queues a write for the next group commit; resolves with its result after the commit. */
  run<T>(op: Op<T>): Promise<T> {
    if (this.queue.length >= this.opts.maxPending) {
      return Promise.reject(
        new ConveyorError('queue_full', `the write queue holds ${this.queue.length} operations (maxPendingWrites); retry shortly`, {
          retryAfterS: 1,
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      this.poke();
    });
  }

  /** Asks for a flush even with nothing queued, so the beforeCommit hook runs (e.g. claims after credit arrived). */
  poke(): void {
    this.wanted = true;
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /** Resolves when nothing is queued or flushing. */
  idle(): Promise<void> {
    if (!this.scheduled && !this.flushing && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.flushing = true;
    this.wanted = false;
    const batch = this.queue.splice(0, this.opts.maxPerFlush);
    const results: unknown[] = new Array(batch.length);
    let flushed: StoreOps | null = null;
    try {
      await this.store.transaction(async (ops) => {
        for (let i = 0; i < batch.length; i++) results[i] = await batch[i].op(ops);
        await this.hooks.beforeCommit?.(ops);
        flushed = ops;
      });
      for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i]);
      if (flushed) this.hooks.afterCommit?.(flushed);
    } catch (err) {
      this.hooks.afterRollback?.(err);
      if (batch.length === 1) batch[0].reject(err);
      else await this.runAlone(batch);
    } finally {
      this.flushing = false;
      if (this.queue.length > 0 || this.wanted) this.poke();
      else for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async runAlone(batch: Queued[]): Promise<void> {
    for (const item of batch) {
      try {
        let alone: StoreOps | null = null;
        const result = await this.store.transaction((ops) => {
          alone = ops;
          return item.op(ops);
        });
        item.resolve(result);
        if (alone) this.hooks.afterCommit?.(alone);
      } catch (err) {
        item.reject(err);
      }
    }
  }
}
