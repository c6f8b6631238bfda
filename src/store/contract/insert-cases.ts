import { describe, expect, it } from 'vitest';
import type { NewTask } from '../../core/task.js';
import { ConveyorError } from '../../errors.js';
import type { Harness } from './harness.js';

/** The store contract's cases for inserts and first placements (see contract.ts). */
export function insertCases(harness: () => Harness): void {
  describe('insert and placement', () => {
    it('places a due task in ENQUEUED and a future one in NEW with runAt as its next check', async () => {
      const h = harness();
      const [due, later] = await h.insert(h.task(), h.task({ runAt: h.clock.now() + 5000 }));
      expect((await h.get(due.id)).state).toBe('ENQUEUED');
      const l = await h.get(later.id);
      expect(l.state).toBe('NEW');
      expect(l.nextCheckAt).toBe(h.clock.now() + 5000);
      expect(l.payload).toBe(JSON.stringify({ n: 1 }));
    });

    it('keeps every column of every row of a batch, whether its rows are alike or not', async () => {
      const h = harness();
      // Alike rows (one lambda, differing in id, payload and runAt) take a cheaper path
      // (taskInsertUniform), which binds the shared columns once: the alike batches carry other
      // values than the defaults in those. Each later batch differs from its first row in one column.
      const now = h.clock.now();
      const shared = { collection: 'c1', priority: 5, key: 'k', maxAttempts: 9, timeoutMs: 4321 };
      const alike = [0, 1, 2].map((n) => h.task({ payload: JSON.stringify({ n }), runAt: now - n }));
      const alikeShared = [0, 1, 2].map((n) => h.task({ ...shared, payload: JSON.stringify({ n }), runAt: now - n }));
      const alikeLater = [0, 1, 2].map((n) => h.task({ payload: JSON.stringify({ n }), runAt: now + 5000 }));
      const variants: Array<Partial<NewTask>> = [
        { lambda: 'other' },
        { collection: 'c1' },
        { priority: 5 },
        { key: 'k' },
        { key: 'k', ordered: true },
        { maxAttempts: 9 },
        { timeoutMs: 4321 },
        { runAt: now + 5000 },
        { idempotencyKey: 'only-this-one' },
      ];
      const batches = [alike, alikeShared, alikeLater, ...variants.map((v) => [h.task(), h.task(v), h.task()])];
      for (const batch of batches) {
        const rows = await h.insert(...batch);
        for (const [i, t] of batch.entries()) {
          const got = await h.get(rows[i].id);
          const { dependsOn: _, ...want } = t;
          expect(got).toMatchObject(want);
          // The placement's columns too: a later run waits as NEW until its time.
          if (batch === alikeLater) expect(got).toMatchObject({ state: 'NEW', nextCheckAt: now + 5000, attempt: 0 });
          if (batch === alike) expect(got).toMatchObject({ state: 'ENQUEUED', hold: null, depsPending: 0 });
        }
      }
    });

    it('answers the existing task for a repeated idempotency key, also within one batch', async () => {
      const h = harness();
      const [a] = await h.insert(h.task({ idempotencyKey: 'k1' }));
      const out = await h.tx((o) =>
        o.insert([h.task({ idempotencyKey: 'k1' }), h.task({ idempotencyKey: 'k2' }), h.task({ idempotencyKey: 'k2' })], h.gate),
      );
      const rows = out.map((r) => ('task' in r ? r : null));
      expect(rows[0]).toMatchObject({ created: false, task: { id: a.id } });
      expect(rows[1]?.created).toBe(true);
      expect(rows[2]).toMatchObject({ created: false, task: { id: rows[1]?.task.id } });
    });

    it('refuses a dependency on an unknown task without inserting it', async () => {
      const h = harness();
      const t = h.task({ dependsOn: ['01ZZZZZZZZZZZZZZZZZZZZZZZZ'] });
      const [r] = await h.tx((o) => o.insert([t], h.gate));
      expect('error' in r && r.error).toBeInstanceOf(ConveyorError);
      expect('error' in r && r.error.code).toBe('unknown_dependency');
      expect(await h.store.read((o) => o.q.taskGet(t.id))).toBeNull();
    });
  });
}
