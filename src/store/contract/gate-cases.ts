import { describe, expect, it } from 'vitest';
import { type Harness, TIMING } from './harness.js';

/** The store contract's cases for gates: pause, drop and resume (see contract.ts). */
export function gateCases(harness: () => Harness): void {
  describe('gates', () => {
    it('parks ready tasks on pause, keeps due ones waiting, and releases them by priority on resume', async () => {
      const h = harness();
      const [a] = await h.insert(h.task({ priority: 1 }));
      h.setGates([{ lambda: 'work', collection: '*', mode: 'pause' }]);
      const page = await h.tx((o) =>
        o.applyGate({ lambda: 'work', collection: '*', mode: 'pause', source: 'ready', limit: 100, after: null }, h.gate),
      );
      expect(page.moved).toBe(1);
      expect((await h.get(a.id)).hold).toBe('gate');
      const [b] = await h.insert(h.task({ priority: 9 }));
      expect(b.hold).toBe('gate');
      expect(await h.claim()).toEqual([]);
      h.setGates([]);
      const open = await h.tx((o) =>
        o.applyGate({ lambda: 'work', collection: '*', mode: 'open', source: 'held', limit: 100, after: null }, h.gate),
      );
      expect(open.enqueued).toBe(2);
      expect((await h.claim('work', 1))[0].id).toBe(b.id);
    });

    it('gates one collection and leaves the others running', async () => {
      const h = harness();
      h.setGates([{ lambda: 'work', collection: 'marketing', mode: 'pause' }]);
      const [m, r] = await h.insert(h.task({ collection: 'marketing' }), h.task({ collection: 'reset' }));
      expect(m.hold).toBe('gate');
      expect(r.state).toBe('ENQUEUED');
    });

    it('cancels due tasks of a dropped gate', async () => {
      const h = harness();
      const [a] = await h.insert(h.task());
      h.setGates([{ lambda: 'work', collection: '*', mode: 'drop' }]);
      await h.tx((o) => o.applyGate({ lambda: 'work', collection: '*', mode: 'drop', source: 'ready', limit: 100, after: null }, h.gate));
      expect((await h.get(a.id)).reason).toBe('dropped');
      const [b] = await h.insert(h.task());
      expect(b.state).toBe('CANCELLED');
      expect(b.reason).toBe('dropped');
    });

    it('applies a gate closed while a task was claimed when the worker gives it back', async () => {
      const h = harness();
      const [a, b, c] = await h.insert(h.task({ collection: 'c1' }), h.task({ collection: 'c2' }), h.task());
      const claimed = await h.claim();
      expect(claimed.map((r) => r.id).sort()).toEqual([a.id, b.id, c.id].sort());
      h.setGates([
        { lambda: 'work', collection: 'c1', mode: 'pause' },
        { lambda: 'work', collection: 'c2', mode: 'drop' },
      ]);
      const back = await h.tx((o) =>
        o.release(
          claimed.map((r) => ({ id: r.id, attempt: r.attempt })),
          h.gate,
        ),
      );
      expect(back.size).toBe(3);
      expect(await h.get(a.id)).toMatchObject({ state: 'NEW', hold: 'gate' });
      expect(await h.get(b.id)).toMatchObject({ state: 'CANCELLED', reason: 'dropped' });
      expect(await h.get(c.id)).toMatchObject({ state: 'ENQUEUED', hold: null });
      h.setGates([]);
      await h.tx((o) => o.applyGate({ lambda: 'work', collection: 'c1', mode: 'open', source: 'held', limit: 100, after: null }, h.gate));
      expect((await h.claim()).map((r) => r.id).sort()).toEqual([a.id, c.id].sort());
    });

    it('claims skip a gated collection even when a stale cache enqueued it, and only that collection', async () => {
      const h = harness();
      const [, c2, bare] = await h.insert(h.task({ collection: 'c1' }), h.task({ collection: 'c2' }), h.task());
      await h.tx((o) => o.q.gateSet({ lambda: 'work', collection: 'c1', mode: 'pause' }, h.clock.now()));
      await h.tx((o) => o.q.gateSet({ lambda: 'other', collection: '*', mode: 'pause' }, h.clock.now()));
      expect((await h.claim()).map((r) => r.id).sort()).toEqual([c2.id, bare.id].sort());
    });

    it('claims nothing of a lambda whose every collection is gated', async () => {
      const h = harness();
      await h.insert(h.task({ collection: 'c1' }), h.task());
      await h.tx((o) => o.q.gateSet({ lambda: 'work', collection: '*', mode: 'drop' }, h.clock.now()));
      expect(await h.claim()).toEqual([]);
      h.clock.advance(TIMING.enqueueTimeoutMs + 1);
      expect(await h.claim('work', 10, 10)).toEqual([]);
    });
  });
}
