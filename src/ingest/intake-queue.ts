import { ConveyorError } from '../errors.js';

/** Limits of an intake queue. */
export interface IntakeLimits {
  /** Most items accepted but not yet written (queued plus in a writer's batch). */
  maxItems: number;
  /** Most bytes of such items; one offer alone above it is still taken into an empty queue. */
  maxBytes: number;
  /** Writers running at once, each with one batch in flight. */
  writers: number;
  /** Most items in one writer's batch (whole offers only: an offer is never split). */
  batchMax: number;
  /** Seconds a refused caller is told to wait. */
  retryAfterS: number;
}

/** Counters of an intake queue, for metrics and tests. */
export interface IntakeStats {
  /** Items accepted and not yet written: queued plus in writers' batches (at most maxItems). */
  depth: number;
  /** Of depth, items still waiting for a writer. */
  queued: number;
  /** Bytes of depth. */
  bytes: number;
  maxItems: number;
  /** Offers accepted and items in them, since start. */
  acceptedOffers: number;
  acceptedItems: number;
  /** Offers refused because they did not fit (the 429s), and items in them (0 for refusals made before the items were known). */
  shedOffers: number;
  shedItems: number;
  /** Items written durably, and batches that wrote them. */
  writtenItems: number;
  batches: number;
  /** Items whose batch failed (their offers were rejected). */
  failedItems: number;
}

interface Offer<T> {
  items: T[];
  bytes: number;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * A bounded queue drained by a fixed number of batch writers. `offer()` takes all of a
 * caller's items or none: it refuses at once (queue_full, with a retry-after) when they do not
 * fit, and otherwise resolves once a writer wrote them. The bound counts items until they are
 * written, not only until a writer picks them up, so memory held for callers never exceeds it.
 * The Go article's dispatcher parked a goroutine per job instead, so its queue never pushed
 * back and its memory grew with the overload.
 *
 * Modes: open (offers accepted while they fit) -> closing (offers refused with shutting_down;
 * writers drain what is queued) -> closed (writers returned). A writer is idle (waiting for an
 * offer) or writing one batch: every queued offer up to `batchMax` items, in arrival order. A
 * batch that fails is written again one offer at a time, so only the offers that fail alone are
 * refused (as the group commit does with its own flushes).
 */
export class IntakeQueue<T> {
  private offers: Offer<T>[] = [];
  private queuedItems = 0;
  private depthItems = 0;
  private depthBytes = 0;
  private idle: Array<() => void> = [];
  private closing = false;
  private readonly writers: Promise<void>[];
  private readonly counters = {
    acceptedOffers: 0,
    acceptedItems: 0,
    shedOffers: 0,
    shedItems: 0,
    writtenItems: 0,
    batches: 0,
    failedItems: 0,
  };

  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    readonly limits: IntakeLimits,
  ) {
    this.writers = Array.from({ length: limits.writers }, () => this.writer());
  }

  /** Items accepted and not yet written. */
  get depth(): number {
    return this.depthItems;
  }

  /** Offers refused since start. */
  get shedOffers(): number {
    return this.counters.shedOffers;
  }

  /** Whether `items` items of `bytes` bytes would fit now (an empty queue takes any one offer). */
  fits(items: number, bytes = 0): boolean {
    if (this.depthItems + items > this.limits.maxItems) return false;
    return this.depthBytes === 0 || this.depthBytes + bytes <= this.limits.maxBytes;
  }

  /** Queues all of `items` or none; resolves once they are written, rejects if their batch failed. */
  offer(items: T[], bytes: number): Promise<void> {
    if (this.closing) return Promise.reject(new ConveyorError('shutting_down', 'the server is shutting down'));
    if (!this.fits(items.length, bytes)) {
      this.shed(items.length);
      return Promise.reject(this.fullError());
    }
    this.counters.acceptedOffers++;
    this.counters.acceptedItems += items.length;
    this.queuedItems += items.length;
    this.depthItems += items.length;
    this.depthBytes += bytes;
    return new Promise<void>((resolve, reject) => {
      this.offers.push({ items, bytes, resolve, reject });
      this.idle.pop()?.();
    });
  }

  /** Counts a refusal made before the items were known (e.g. before the request body was read). */
  shed(items: number): void {
    this.counters.shedOffers++;
    this.counters.shedItems += items;
  }

  /** The queue_full error refused callers get. */
  fullError(): ConveyorError {
    return new ConveyorError(
      'queue_full',
      `the ingest queue holds ${this.depthItems} of at most ${this.limits.maxItems} payloads (maxQueue); retry after ${this.limits.retryAfterS} s`,
      { retryAfterS: this.limits.retryAfterS },
    );
  }

  stats(): IntakeStats {
    return {
      depth: this.depthItems,
      queued: this.queuedItems,
      bytes: this.depthBytes,
      maxItems: this.limits.maxItems,
      ...this.counters,
    };
  }

  /** Refuses new offers and resolves once everything already accepted was written (or failed). */
  async close(): Promise<void> {
    this.closing = true;
    for (const wake of this.idle.splice(0)) wake();
    await Promise.all(this.writers);
  }

  private async writer(): Promise<void> {
    for (;;) {
      if (this.offers.length === 0) {
        if (this.closing) return;
        await new Promise<void>((r) => this.idle.push(r));
        continue;
      }
      const batch = this.take();
      const items: T[] = [];
      let bytes = 0;
      for (const o of batch) {
        for (const it of o.items) items.push(it);
        bytes += o.bytes;
      }
      try {
        await this.write(items);
        this.counters.writtenItems += items.length;
        this.counters.batches++;
        for (const o of batch) o.resolve();
      } catch (err) {
        if (batch.length === 1) this.failed(batch[0], err);
        else await this.writeAlone(batch);
      } finally {
        this.depthItems -= items.length;
        this.depthBytes -= bytes;
      }
    }
  }

  /** After a failed batch, each offer on its own: one bad offer cannot fail its neighbours. */
  private async writeAlone(batch: Offer<T>[]): Promise<void> {
    for (const o of batch) {
      try {
        await this.write(o.items);
        this.counters.writtenItems += o.items.length;
        this.counters.batches++;
        o.resolve();
      } catch (err) {
        this.failed(o, err);
      }
    }
  }

  private failed(o: Offer<T>, err: unknown): void {
    this.counters.failedItems += o.items.length;
    o.reject(err);
  }

  /** Whole offers in arrival order, up to batchMax items (at least one offer, whatever its size). */
  private take(): Offer<T>[] {
    let n = 0;
    let k = 0;
    while (k < this.offers.length && (k === 0 || n + this.offers[k].items.length <= this.limits.batchMax)) {
      n += this.offers[k].items.length;
      k++;
    }
    this.queuedItems -= n;
    return this.offers.splice(0, k);
  }
}
