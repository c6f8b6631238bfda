import { expect, it } from 'vitest';
import { toConveyorError } from '../../src/http/errors.js';
import { GroupCommit } from '../../src/server/group-commit.js';
import { Harness } from '../../src/store/contract/harness.js';
import { PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import type { StoreOps } from '../../src/store/store.js';
import { isConflict, StoreError } from '../../src/store/store-error.js';
import { onCleanup } from '../helpers.js';
import { describeIf, freshSchema, pgUnreachable } from './pg-env.js';

// Writers of several servers (and the concurrent flushes of one) can lock the same task rows
// in different orders: a sweep rescuing leases in the order they expire, a worker's report in
// the order its attempts ended. PostgreSQL then aborts one of the transactions as a deadlock's
// victim (SQLSTATE 40P01, after deadlock_timeout); nothing of it was written, and the group
// commit runs it again instead of failing every write in it.

const reason = await pgUnreachable();

describeIf(reason, 'postgres: a deadlock between two servers', () => {
  it('runs the victim again, and both writes commit', async () => {
    const { url } = freshSchema();
    const pg = new PostgresDriver({ url, maxConnections: 4 });
    onCleanup(() => pg.close());
    await pg.migrate();
    const h = new Harness(pg);
    const [a, b] = await h.insert(h.task(), h.task());
    // Two servers: a group commit each, one transaction at a time.
    const opts = { maxPending: 10, maxPerFlush: 10, concurrency: 1 };
    const servers = [new GroupCommit(h.store, opts), new GroupCommit(h.store, opts)];

    // Each write locks its first row, waits until the other holds its own first row, then
    // locks the other's: a lock cycle, the first time round.
    const holding: Array<() => void> = [];
    const bothHold = Promise.all([0, 1].map((i) => new Promise<void>((r) => (holding[i] = r))));
    const runs = [0, 0];
    const write = (i: number, first: string, second: string) => async (ops: StoreOps) => {
      runs[i]++;
      await ops.q.taskByIdsForUpdate([first]);
      holding[i]();
      await bothHold;
      await ops.q.taskByIdsForUpdate([second]);
      return i;
    };
    const outcomes = await Promise.allSettled([servers[0].run(write(0, a.id, b.id)), servers[1].run(write(1, b.id, a.id))]);
    expect(outcomes).toEqual([
      { status: 'fulfilled', value: 0 },
      { status: 'fulfilled', value: 1 },
    ]);
    // One of them was the victim and ran again.
    expect(runs.slice().sort()).toEqual([1, 2]);
  }, 20_000);

  it('fails a write that keeps clashing after a few tries, and the API answers it 503 with Retry-After', async () => {
    const { url } = freshSchema();
    const pg = new PostgresDriver({ url, maxConnections: 2 });
    onCleanup(() => pg.close());
    await pg.migrate();
    const h = new Harness(pg);
    const commit = new GroupCommit(h.store, { maxPending: 10, maxPerFlush: 10, concurrency: 1 });
    let runs = 0;
    const err = await commit
      .run(async () => {
        runs++;
        throw new StoreError('serialization', '40P01: deadlock detected');
      })
      .catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect(runs).toBe(4); // the first try and three more
    const answer = toConveyorError(err);
    expect({ code: answer.code, status: answer.status, retryAfterS: answer.retryAfterS }).toEqual({
      code: 'store_unavailable',
      status: 503,
      retryAfterS: 1,
    });
  });
});
