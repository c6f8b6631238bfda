import { describe, expect, it } from 'vitest';
import { type ClaimedRow, claimedFields } from '../../core/task.js';
import type { StoreOps } from '../store.js';
import { type Harness, LEASE_MS } from './harness.js';

/**
 * The store contract's cases for tasks handed to a worker as they are inserted (the server's
 * dispatcher is the Handout; here a stand-in places what it is told to).
 */
export function handoutCases(harness: () => Harness): void {
  describe('hand-out at insert', () => {
    /** A handout that places the first `places` tasks offered with worker w9 and records what it is told. */
    const handout = (h: Harness, places: number, during?: (ops: StoreOps) => Promise<unknown>) => {
      const seen = { offered: [] as string[], written: [] as ClaimedRow[], unwritten: 0, pending: [] as Promise<unknown>[] };
      h.store.ctx.handout = {
        assign: (ops, tasks) => {
          seen.offered.push(...tasks.map((t) => t.id));
          if (during) seen.pending.push(during(ops));
          return tasks.map((_, i) => (i < places ? { workerId: 'w9', leaseUntil: h.clock.now() + LEASE_MS } : null));
        },
        settle: (_ops, written, unwritten) => {
          seen.written.push(...written.map((w) => w.row));
          seen.unwritten += unwritten.length;
        },
      };
      return seen;
    };

    it('writes the ready tasks it places as claimed, highest priority first, and leaves the rest ready', async () => {
      const h = harness();
      const seen = handout(h, 2);
      const [low, high, mid, later] = await h.insert(
        h.task({ priority: 0 }),
        h.task({ priority: 10 }),
        h.task({ priority: 5 }),
        h.task({ runAt: h.clock.now() + 60_000 }),
      );
      expect(seen.offered).toEqual([high.id, mid.id, low.id]);
      for (const r of [high, mid]) {
        const claimed = { state: 'CLAIMED', attempt: 1, tries: 1, workerId: 'w9', nextCheckAt: h.clock.now() + LEASE_MS };
        expect(r).toMatchObject(claimed);
        expect(await h.get(r.id)).toMatchObject(claimed);
      }
      expect(seen.written).toEqual([claimedFields(await h.get(high.id)), claimedFields(await h.get(mid.id))]);
      expect(low).toMatchObject({ state: 'ENQUEUED', attempt: 0, workerId: null });
      expect((await h.get(later.id)).state).toBe('NEW');
      expect((await h.claim('work', 10)).map((r) => r.id)).toEqual([low.id]);
      expect(await h.succeed(high)).toEqual(new Set([high.id]));
      expect((await h.get(high.id)).state).toBe('SUCCESS');
    });

    it('hands out under the same fencing and lease as a claim', async () => {
      const h = harness();
      handout(h, 1);
      const [t] = await h.insert(h.task());
      h.store.ctx.handout = undefined;
      expect(await h.succeed({ id: t.id, attempt: 0 })).toEqual(new Set());
      h.clock.advance(LEASE_MS + 1);
      expect((await h.sweep()).rescued).toBe(1);
      expect(await h.get(t.id)).toMatchObject({ state: 'RETRIABLE_FAILURE', attempt: 1, tries: 1 });
      expect(await h.succeed({ id: t.id, attempt: 1 })).toEqual(new Set());
    });

    it('gives back the places of tasks an idempotency key kept out', async () => {
      const h = harness();
      const { dependsOn: _, ...rival } = h.task({ idempotencyKey: 'k' });
      const now = h.clock.now();
      const row = { ...rival, state: 'ENQUEUED' as const, attempt: 0, workerId: null, reason: null, hold: null };
      // Another writer takes the key between the insert's read and its write.
      const seen = handout(h, 1, (ops) =>
        ops.q.taskInsertMany([{ ...row, depsPending: 0, nextCheckAt: now + 1000, finishedAt: null, now }]),
      );
      const [mine] = await h.tx(async (o) => {
        const out = await o.insert([h.task({ idempotencyKey: 'k' })], h.gate);
        await Promise.all(seen.pending);
        return out;
      });
      expect(mine).toMatchObject({ created: false, task: { id: rival.id } });
      expect(seen).toMatchObject({ written: [], unwritten: 1 });
    });
  });
}
