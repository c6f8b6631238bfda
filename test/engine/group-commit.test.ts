import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/server/group-commit.js';
import { Harness, LEASE_MS } from '../../src/store/contract/harness.js';
import { SqliteDriver } from '../../src/store/sqlite/sqlite-driver.js';
import type { StoreOps } from '../../src/store/store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('group commit', () => {
  it('tells what a write retried alone handed out before it failed, so the places go back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conveyor-gc-'));
    dirs.push(dir);
    const driver = new SqliteDriver({ path: join(dir, 'store.db') });
    await driver.migrate();
    const h = new Harness(driver);
    // Every ready task is handed to worker w1 as it is inserted.
    h.store.ctx.handout = {
      assign: (_ops, tasks) => tasks.map(() => ({ workerId: 'w1', leaseUntil: h.clock.now() + LEASE_MS })),
      settle: () => {},
    };
    const rolledBack: Array<StoreOps | null> = [];
    const discarded: StoreOps[] = [];
    const commit = new GroupCommit(
      h.store,
      { maxPending: 100, maxPerFlush: 100, concurrency: 1 },
      { afterRollback: (ops) => rolledBack.push(ops), discarded: (ops) => discarded.push(ops) },
    );
    const good = h.task();
    const bad = h.task();
    // Two writes in one flush; the second inserts (and hands out) its task, then fails.
    const outcomes = await Promise.allSettled([
      commit.run((ops) => ops.insert([good], h.gate)),
      commit.run(async (ops) => {
        await ops.insert([bad], h.gate);
        throw new Error('refused after the insert');
      }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected']);
    expect(rolledBack).toHaveLength(1); // the flush of both
    expect(discarded).toHaveLength(1); // the second, alone
    expect([...(discarded[0] as StoreOps).inserted]).toEqual([bad.id]);
    expect((await h.get(good.id)).state).toBe('CLAIMED');
    await expect(h.get(bad.id)).rejects.toThrow(/no task/);
    await driver.close();
  });
});
