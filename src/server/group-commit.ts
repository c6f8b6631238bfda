import { ConveyorError } from '../errors.js';
import type { Store, StoreOps } from '../store/store.js';
import { isConflict, isUnavailable } from '../store/store-error.js';

type Op<T> = (ops: StoreOps) => Promise<T>;

/** How often one write is run again after the database gave up its transaction as a conflict. */
const MAX_CONFLICT_RETRIES = 3;

interface Queued {
  op: Op<unknown>;
  durable: boolean;
  /** Transactions of this write the database gave up as conflicts so far. */
  conflicts: number;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export interface GroupCommitHooks {
  /**
   * Runs last inside every flush transaction (the dispatcher claims here, so new tasks and
   * their claim share one commit). Answers whether it wrote something that must be durable
   * before afterCommit (a claim hands out a fencing token).
   */
  beforeCommit?(ops: StoreOps): Promise<boolean>;
  /**
   * Runs right after every commit, before its fsync: announce what the commit changed (ended
   * tasks, attempt outcomes), which readers of the store can already see.
   */
  committed?(ops: StoreOps): void;
  /**
   * Runs right after the commit, before the fsync, where the store can defer it (hand out what
   * is safe to hand out before the commit is durable).
   */
  afterCommitUndurable?(ops: StoreOps): void;
  /** Runs once a flush is durable (deliver what it claimed, announce what ended). */
  afterCommit?(ops: StoreOps): void;
  /** A flush rolled back: nothing it claimed exists. */
  afterRollback?(ops: StoreOps | null, err: unknown): void;
  /** A write retried alone failed: nothing its transaction handed out exists (a refused write is routine: no log). */
  discarded?(ops: StoreOps): void;
}

/**
 * Group commit: every write queued during one turn of the event loop runs in one transaction,
 * and each caller's promise resolves only once that transaction is durable ("durable before
 * acknowledged" at one fsync per batch instead of one per task; an fsync costs about 0.17 ms
 * on the reference disk, a batched insert about 6 us a row).
 *
 * Modes: idle -> scheduled (a flush is due on setImmediate) -> flushing (its transaction
 * runs; writes queued meanwhile wait for the next flush) -> syncing (committed, waiting for
 * the fsync; the next flush may already run) -> idle. Where the store runs transactions on
 * several connections (PostgreSQL), up to `concurrency` flushes run at once: a flush there
 * is mostly waiting for round trips (measured: the server 83% idle at one flush at a time). If a flush fails, its writes are
 * retried one transaction each, so one bad write cannot fail its neighbours; unless the store
 * is unavailable, which would fail each of them again: then they all fail at once (callers get
 * 503 store_unavailable at once, instead of one connection attempt each in turn), or the
 * database gave the transaction up as a conflict, which says nothing about the writes: then
 * they run again together (see again()).
 */
export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled = false;
  /** Flushes whose transaction runs now. */
  private flushing = 0;
  private wanted = false;
  private syncing = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly store: Store,
    private readonly opts: { maxPending: number; maxPerFlush: number; concurrency: number },
    private readonly hooks: GroupCommitHooks = {},
  ) {}

  /** Whether the next flush will probably claim (then it commits with an inline fsync). */
  mayClaim: () => boolean = () => true;

  get pending(): number {
    return this.queue.length;
  }

  /**
   * Queues a write for the next group commit; resolves with its result once it is durable.
   * `durable: false` resolves at the commit instead: for worker reports, whose loss in a
   * power cut only re-runs work (leases and fencing keep that safe; see docs/durability.md).
   */
  run<T>(op: Op<T>, opts: { durable?: boolean } = {}): Promise<T> {
    const full = this.refusal();
    if (full) return Promise.reject(full);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, durable: opts.durable ?? true, conflicts: 0, resolve: resolve as (v: unknown) => void, reject });
      this.poke();
    });
  }

  /** The queue_full refusal of one more write, counting `waiting` writes held outside the queue for it; null while there is room. */
  refusal(waiting = 0): ConveyorError | null {
    const n = this.queue.length + waiting;
    if (n < this.opts.maxPending) return null;
    return new ConveyorError('queue_full', `the write queue holds ${n} operations (maxPendingWrites); retry shortly`, { retryAfterS: 1 });
  }

  /** Asks for a flush even with nothing queued, so the beforeCommit hook runs (e.g. claims after credit arrived). */
  poke(): void {
    this.wanted = true;
    if (this.scheduled || this.flushing >= this.opts.concurrency) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /** Resolves when nothing is queued, flushing or waiting for its fsync. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private isIdle(): boolean {
    return !this.scheduled && this.flushing === 0 && this.syncing === 0 && this.queue.length === 0;
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.flushing++;
    this.wanted = false;
    if (this.queue.length === 0 && !this.mayClaim()) {
      // A poke with nothing to write and no worker to claim for (e.g. another server's signal
      // while every worker here is busy): no transaction at all.
      this.flushing--;
      this.next();
      return;
    }
    const batch = this.queue.splice(0, this.opts.maxPerFlush);
    let committed: { out: unknown[]; ops: StoreOps } | null = null;
    let claimedIn: StoreOps | null = null;
    const durableOps = batch.some((b) => b.durable);
    // Where the store can defer the fsync, commit without it and fsync after handing out the
    // fresh claims (see Dispatcher.deliverFresh); elsewhere a flush that must be durable
    // (acknowledged writes, claims) commits synchronously.
    const deferred = this.store.deferredSync;
    const syncInline = !deferred && (durableOps || this.mayClaim());
    let mustSync = durableOps;
    try {
      committed = await this.store.transactionWith(
        async (ops) => {
          claimedIn = ops;
          const results: unknown[] = new Array(batch.length);
          for (let i = 0; i < batch.length; i++) results[i] = await batch[i].op(ops);
          if (await this.hooks.beforeCommit?.(ops)) mustSync = true;
          return results;
        },
        { sync: syncInline },
      );
    } catch (err) {
      this.hooks.afterRollback?.(claimedIn, err);
      this.flushing--;
      if (isConflict(err)) this.again(batch, err);
      else if (batch.length === 1 || isUnavailable(err)) for (const item of batch) item.reject(err);
      else await this.runAlone(batch);
      this.next();
      return;
    }
    // Committed: the next flush may run while this one's fsync is in flight.
    this.flushing--;
    this.syncing++;
    this.next();
    try {
      this.hooks.committed?.(committed.ops);
      if (deferred) this.hooks.afterCommitUndurable?.(committed.ops);
      // Claims of tasks inserted before this flush hand out attempts that a lost commit could
      // hand out again: durable first. (Inline-synced commits are durable already.)
      if (mustSync && !syncInline) await this.store.durable();
      for (let i = 0; i < batch.length; i++) batch[i].resolve(committed.out[i]);
      this.hooks.afterCommit?.(committed.ops);
    } catch (err) {
      // Committed but the fsync failed: nothing may be acknowledged. The rows stay; a worker
      // that claimed them never hears of it and the leases expire.
      this.hooks.afterRollback?.(committed.ops, err);
      for (const item of batch) item.reject(err);
    } finally {
      this.syncing--;
      this.next();
    }
  }

  private next(): void {
    if (this.queue.length > 0 || this.wanted) this.poke();
    else if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async runAlone(batch: Queued[]): Promise<void> {
    for (const item of batch) {
      let opsIn: StoreOps | null = null;
      try {
        const { out, ops } = await this.store.transactionWith(
          (ops) => {
            opsIn = ops;
            return item.op(ops);
          },
          { sync: item.durable },
        );
        this.hooks.committed?.(ops);
        item.resolve(out);
        this.hooks.afterCommit?.(ops);
      } catch (err) {
        if (opsIn) this.hooks.discarded?.(opsIn);
        if (isConflict(err)) this.again([item], err);
        else item.reject(err);
      }
    }
  }

  /**
   * The database gave up these writes' transaction as a conflict (PostgreSQL aborts one
   * transaction of a deadlock; writers of several servers, or this server's concurrent
   * flushes, can lock the same rows in different orders): nothing of it was written, and run
   * again it usually finds the other transaction committed. They go back to the head of the
   * queue, a few times at most.
   */
  private again(items: Queued[], err: unknown): void {
    const back: Queued[] = [];
    for (const item of items) {
      if (++item.conflicts > MAX_CONFLICT_RETRIES) item.reject(err);
      else back.push(item);
    }
    this.queue.unshift(...back);
  }
}
