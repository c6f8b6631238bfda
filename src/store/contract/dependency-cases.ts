import { describe, expect, it } from 'vitest';
import { type Harness, TIMING } from './harness.js';

/** The store contract's cases for dependencies (dependsOn), retention of their links included (see contract.ts). */
export function dependencyCases(harness: () => Harness): void {
  describe('dependencies', () => {
    it('refuses to retry a child whose dead parent retention deleted; one whose parent succeeded runs', async () => {
      const h = harness();
      const [dead] = await h.insert(h.task({ lambda: 'parent', maxAttempts: 1 }));
      const [done] = await h.insert(h.task());
      const [orphan, kid] = await h.insert(
        h.task({ lambda: 'child', dependsOn: [dead.id] }),
        h.task({ lambda: 'child', dependsOn: [done.id] }),
      );
      await h.fail((await h.claim('parent'))[0], 'fatal');
      await h.succeed((await h.claim())[0]);
      await h.tx((o) => o.cancel(kid.id, h.gate));
      h.clock.advance(TIMING.retentionMs + 1);
      // Only the parents (a sweep's batch may part parents from their children).
      expect(await h.tx((o) => o.q.taskDeleteMany([dead.id, done.id], h.clock.now()))).toBe(2);
      const refused = h.tx((o) => o.redrive(orphan.id, h.gate));
      await expect(refused).rejects.toMatchObject({ code: 'invalid_state', message: expect.stringContaining(dead.id) });
      expect((await h.tx((o) => o.redrive(kid.id, h.gate))).state).toBe('ENQUEUED');
    });

    it('a parent that succeeded takes the links of a child an insert added while the sweep deleted it', async () => {
      const h = harness();
      const [parent] = await h.insert(h.task());
      await h.succeed((await h.claim())[0]);
      h.clock.advance(TIMING.retentionMs + 1);
      let deleting!: Promise<number>;
      const child = await h.tx(async (o) => {
        const [out] = await o.insert([h.task({ lambda: 'child', dependsOn: [parent.id], maxAttempts: 1 })], h.gate);
        // The sweep's delete starts while the insert holds the parent, and waits for its commit.
        deleting = h.tx((d) => d.q.taskDeleteMany([parent.id], h.clock.now()));
        await new Promise((r) => setTimeout(r, 300));
        if ('error' in out) throw out.error;
        return out.task;
      });
      expect(await deleting).toBe(1);
      expect(await h.store.read((o) => o.q.depParents(child.id))).toEqual([]);
      await h.fail((await h.claim('child'))[0], 'fatal');
      expect((await h.tx((o) => o.redrive(child.id, h.gate))).state).toBe('ENQUEUED');
    });

    it('starts a child only after all parents succeeded', async () => {
      const h = harness();
      const [p1, p2] = await h.insert(h.task(), h.task());
      const [child] = await h.insert(h.task({ lambda: 'child', dependsOn: [p1.id, p2.id] }));
      expect(child.state).toBe('NEW');
      expect(child.hold).toBe('deps');
      const [c1, c2] = await h.claim('work', 2);
      await h.succeed(c1);
      expect((await h.get(child.id)).state).toBe('NEW');
      await h.succeed(c2);
      const row = await h.get(child.id);
      expect(row.state).toBe('ENQUEUED');
      expect(row.hold).toBeNull();
    });

    it('cancels children (and their children) with dependency_failed when a parent fails for good', async () => {
      const h = harness();
      const [p] = await h.insert(h.task({ maxAttempts: 1 }));
      const [child] = await h.insert(h.task({ lambda: 'child', dependsOn: [p.id] }));
      const [grandchild] = await h.insert(h.task({ lambda: 'child', dependsOn: [child.id] }));
      const [c] = await h.claim();
      await h.fail(c);
      for (const id of [child.id, grandchild.id]) {
        const row = await h.get(id);
        expect(row.state).toBe('CANCELLED');
        expect(row.reason).toBe('dependency_failed');
      }
    });

    it('cancels a new child of an already dead parent, and links to a parent earlier in the same batch', async () => {
      const h = harness();
      const [dead] = await h.insert(h.task());
      await h.tx((o) => o.cancel(dead.id, h.gate));
      const [child] = await h.insert(h.task({ dependsOn: [dead.id] }));
      expect(child.state).toBe('CANCELLED');
      expect(child.reason).toBe('dependency_failed');
      const parent = h.task();
      const [, kid] = await h.insert(parent, h.task({ lambda: 'child', dependsOn: [parent.id] }));
      expect(kid.hold).toBe('deps');
    });
  });
}
