import { expect, it } from 'vitest';
import { Harness } from '../../src/store/contract/harness.js';
import type { Driver, Queries } from '../../src/store/driver.js';
import { PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import { onCleanup } from '../helpers.js';
import { describeIf, freshSchema, pgUnreachable } from './pg-env.js';

// Writers on PostgreSQL run side by side (four flushes a server, and many servers), at READ
// COMMITTED. What an insert decides from what it read (a parent still running, a key's head
// still open) must still hold when it commits, or the end that would have released the new
// task finds nothing to release. These tests stop one transaction right after such a read and
// let another one end the task it read about.

interface Pause {
  /** Resolves when the paused transaction has made its read. */
  reached: Promise<void>;
  /** Lets it go on. */
  release(): void;
}

/** A driver whose next call of `query` in a transaction stops after answering, until released. */
function pausing(driver: Driver, query: keyof Queries): { driver: Driver; pause(): Pause } {
  let armed: { reached(): void; go: Promise<void> } | null = null;
  const wrap = (q: Queries): Queries =>
    new Proxy(q, {
      get(target, name, receiver) {
        const real = Reflect.get(target, name, receiver);
        if (name !== query || typeof real !== 'function') return real;
        return async (...args: unknown[]) => {
          const out = await real.apply(target, args);
          const a = armed;
          if (a) {
            armed = null;
            a.reached();
            await a.go;
          }
          return out;
        };
      },
    });
  const wrapped = Object.create(driver) as Driver;
  wrapped.transaction = (fn, opts) => driver.transaction((q) => fn(wrap(q)), opts);
  return {
    driver: wrapped,
    pause() {
      let reached!: () => void;
      let release!: () => void;
      const r = new Promise<void>((res) => (reached = res));
      const go = new Promise<void>((res) => (release = res));
      armed = { reached, go };
      return { reached: r, release };
    },
  };
}

const reason = await pgUnreachable();

describeIf(reason, 'postgres: inserts racing the end of what they read', () => {
  async function harness(query: keyof Queries) {
    const { url } = freshSchema();
    const pg = new PostgresDriver({ url, maxConnections: 4 });
    onCleanup(() => pg.close());
    await pg.migrate();
    const p = pausing(pg, query);
    return { h: new Harness(p.driver), pause: p.pause };
  }

  /** Settles within `ms`, or says it is still waiting (blocked behind the other transaction). */
  const within = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p.then(() => 'settled' as const), new Promise<'waiting'>((r) => setTimeout(r, ms, 'waiting'))]);

  it('a child inserted while its parent succeeds starts once both commit', async () => {
    const { h, pause } = await harness('taskByIdsForUpdate');
    const [parent] = await h.insert(h.task());
    const [claimed] = await h.claim('work', 1);
    const child = h.task({ lambda: 'child', dependsOn: [parent.id] });
    const stop = pause();
    const inserting = h.insert(child);
    await stop.reached; // the insert read its parent: still running, so the child waits for it
    const succeeding = h.succeed(claimed);
    // The parent's end waits for the insert (its row is held), else it would miss the child.
    expect(await within(succeeding, 300)).toBe('waiting');
    stop.release();
    await inserting;
    await succeeding;
    const row = await h.get(child.id);
    expect(row.state).toBe('ENQUEUED');
    expect(row.hold).toBeNull();
  });

  it('a task of an ordered key inserted while the head ends is released by that end', async () => {
    const { h, pause } = await harness('taskOrderedBusy');
    const [head] = await h.insert(h.task({ key: 'k', ordered: true }));
    const [claimed] = await h.claim('work', 1);
    expect(claimed.id).toBe(head.id);
    const next = h.task({ key: 'k', ordered: true });
    const stop = pause();
    const inserting = h.insert(next);
    await stop.reached; // the insert found the key busy: the new task will wait for the key
    const succeeding = h.succeed(claimed);
    expect(await within(succeeding, 300)).toBe('waiting');
    stop.release();
    await inserting;
    await succeeding;
    const row = await h.get(next.id);
    expect(row.state).toBe('ENQUEUED');
    expect(row.hold).toBeNull();
  });

  it('two inserts of one free ordered key make one head, not two', async () => {
    const { h, pause } = await harness('taskOrderedBusy');
    const first = h.task({ key: 'k', ordered: true });
    const second = h.task({ key: 'k', ordered: true });
    const stop = pause();
    const a = h.insert(first);
    await stop.reached; // the first insert found the key free
    const b = h.insert(second);
    expect(await within(b, 300)).toBe('waiting');
    stop.release();
    await Promise.all([a, b]);
    const rows = await Promise.all([h.get(first.id), h.get(second.id)]);
    expect(rows.map((r) => [r.state, r.hold])).toEqual([
      ['ENQUEUED', null],
      ['NEW', 'key'],
    ]);
  });

  it('an ordered key does not wait for the same key of another schema (another Conveyor in the database)', async () => {
    const one = await harness('taskOrderedBusy');
    const other = await harness('taskOrderedBusy');
    const stop = one.pause();
    const inserting = one.h.insert(one.h.task({ key: 'k', ordered: true }));
    await stop.reached; // holds its key until it commits
    const elsewhere = other.h.insert(other.h.task({ key: 'k', ordered: true }));
    try {
      expect(await within(elsewhere, 300)).toBe('settled');
    } finally {
      stop.release();
      await Promise.all([inserting, elsewhere]);
    }
  });
});
