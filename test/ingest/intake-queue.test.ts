import { describe, expect, it } from 'vitest';
import { IntakeQueue } from '../../src/ingest/intake-queue.js';

const limits = { maxItems: 10, maxBytes: 1000, writers: 1, batchMax: 6, retryAfterS: 1 };

/** A write that waits until released, recording each batch it was given. */
function gatedWrite() {
  const batches: number[][] = [];
  let release: () => void = () => {};
  let gate = new Promise<void>((r) => (release = r));
  return {
    batches,
    open: () => release(),
    close: () => {
      gate = new Promise<void>((r) => (release = r));
    },
    write: async (items: number[]) => {
      batches.push(items);
      await gate;
    },
  };
}

describe('IntakeQueue', () => {
  it('takes offers all or nothing up to maxItems, counting items until they are written', async () => {
    const w = gatedWrite();
    const q = new IntakeQueue(w.write, limits);
    const a = q.offer([1, 2, 3, 4], 40);
    await Promise.resolve();
    expect(w.batches).toEqual([[1, 2, 3, 4]]);
    const b = q.offer([5, 6, 7, 8], 40);
    await expect(q.offer([9, 10, 11], 30)).rejects.toMatchObject({ code: 'queue_full', retryAfterS: 1 });
    const c = q.offer([9, 10], 20);
    expect(q.stats()).toMatchObject({ depth: 10, queued: 6, acceptedOffers: 3, shedOffers: 1, shedItems: 3 });
    expect(q.fits(1)).toBe(false);
    w.open();
    await Promise.all([a, b, c]);
    // whole offers per batch, up to batchMax items
    expect(w.batches).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8, 9, 10],
    ]);
    expect(q.stats()).toMatchObject({ depth: 0, queued: 0, bytes: 0, writtenItems: 10, batches: 2 });
    await q.close();
  });

  it('bounds bytes too, but an empty queue takes any one offer', async () => {
    const w = gatedWrite();
    const q = new IntakeQueue(w.write, { ...limits, maxBytes: 100 });
    const big = q.offer([1], 5000);
    await expect(q.offer([2], 1)).rejects.toMatchObject({ code: 'queue_full' });
    w.open();
    await big;
    await q.offer([3], 60);
    await q.close();
  });

  it('runs a fixed number of writers, each with one batch in flight', async () => {
    const w = gatedWrite();
    const q = new IntakeQueue(w.write, { ...limits, maxItems: 100, writers: 2, batchMax: 1 });
    const offers = [q.offer([1], 1), q.offer([2], 1), q.offer([3], 1), q.offer([4], 1)];
    await new Promise((r) => setImmediate(r));
    expect(w.batches).toEqual([[1], [2]]);
    expect(q.stats()).toMatchObject({ depth: 4, queued: 2 });
    w.open();
    await Promise.all(offers);
    expect(w.batches).toEqual([[1], [2], [3], [4]]);
    await q.close();
  });

  it('writes a failed batch again offer by offer, so only the bad offer is refused', async () => {
    const written: number[][] = [];
    let hold!: () => void;
    const first = new Promise<void>((r) => (hold = r));
    const q = new IntakeQueue<number>(
      async (items) => {
        if (items.includes(0)) await first;
        if (items.includes(-1)) throw new Error('bad row');
        written.push(items);
      },
      { ...limits, maxItems: 100, batchMax: 100 },
    );
    const warm = q.offer([0], 1);
    const good1 = q.offer([1, 2], 2);
    const bad = q.offer([-1], 1);
    const good2 = q.offer([3], 1);
    hold();
    await warm;
    await expect(bad).rejects.toThrow('bad row');
    await Promise.all([good1, good2]);
    expect(written).toEqual([[0], [1, 2], [3]]);
    expect(q.stats()).toMatchObject({ depth: 0, writtenItems: 4, failedItems: 1 });
    await q.close();
  });

  it('closes by writing everything accepted, then refuses offers', async () => {
    const w = gatedWrite();
    const q = new IntakeQueue(w.write, limits);
    const a = q.offer([1, 2], 2);
    const b = q.offer([3], 1);
    let closed = false;
    const closing = q.close().then(() => (closed = true));
    await expect(q.offer([4], 1)).rejects.toMatchObject({ code: 'shutting_down' });
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    w.open();
    await Promise.all([a, b, closing]);
    expect(w.batches.flat()).toEqual([1, 2, 3]);
  });
});
