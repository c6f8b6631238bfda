import { expect, it } from 'vitest';
import type { LambdaDefinition } from '../../src/core/lambda.js';
import type { ClaimedRow } from '../../src/core/task.js';
import type { Session } from '../../src/server/dispatcher.js';
import type { Driver } from '../../src/store/driver.js';
import { startConveyor, until } from '../helpers.js';
import { describeIf, freshSchema, pgUnreachable } from './pg-env.js';

// A server on PostgreSQL runs up to four flushes at once, each with its own claim phase. A
// claim that comes back short takes its lambda off the ready list; it cannot see tasks that a
// flush still committing made ready. Nothing may then leave those tasks for the polling
// fallback while a worker of this server has room for them.

const echo: LambdaDefinition = { name: 'echo', handler: (p: unknown) => p };

function session(id: string, credit: number): Session & { sent: ClaimedRow[] } {
  const sent: ClaimedRow[] = [];
  return {
    id,
    workerId: `worker-${id}`,
    lambdas: new Set(['echo']),
    link: { sendTasks: (rows) => sent.push(...rows), send: () => {}, close: () => {} },
    credit,
    outstanding: 0,
    capacity: Math.max(credit, 1),
    concurrency: Math.max(credit, 1),
    connectedAt: 0,
    caps: new Map(),
    capped: new Map(),
    sent,
  };
}

/** Holds the next transaction of `driver` just before its COMMIT, until released. */
function holdNextCommit(driver: Driver): { reached: Promise<void>; release(): void } {
  const real = driver.transaction.bind(driver);
  let reached!: () => void;
  let release!: () => void;
  const r = new Promise<void>((res) => (reached = res));
  const go = new Promise<void>((res) => (release = res));
  let armed = true;
  driver.transaction = (fn, opts) =>
    real(async (q) => {
      const out = await fn(q);
      if (armed) {
        armed = false;
        reached();
        await go;
      }
      return out;
    }, opts);
  return { reached: r, release };
}

describeIf(await pgUnreachable(), 'postgres: claims of concurrent flushes', () => {
  it('hands a task made ready by a flush to a worker whose claim ran short while that flush committed', async () => {
    const { url } = freshSchema();
    const c = await startConveyor({ store: url, lambdas: [echo], worker: false, sweepIntervalMs: 60_000 });
    const { engine } = c;
    // No tick may mark the lambda ready again: only the flushes' own bookkeeping counts here.
    await engine.scheduler.stop();
    await engine.cron.stop();
    const a = session('a', 1);
    const b = session('b', 0);
    engine.dispatcher.attach(a);
    engine.dispatcher.attach(b);
    await until(() => !engine.dispatcher.mayHaveReady('echo'), 5000, 'the first claim to come back short');
    await engine.commit.idle();

    const hold = holdNextCommit(engine.store.driver);
    const submitted = engine.submit([
      { lambda: 'echo', payload: 1 },
      { lambda: 'echo', payload: 2 },
    ]);
    // The first task went to a at the insert; the second is ready, and nobody has room for it.
    await hold.reached;
    // b gets room: a second flush claims for it, and cannot see the uncommitted task.
    engine.dispatcher.grant(b, 1);
    await until(() => !engine.dispatcher.mayHaveReady('echo'), 5000, 'the claim for b to come back short');
    hold.release();
    const [first, second] = await submitted;
    await until(() => a.sent.length === 1, 5000, 'the first task at a');
    expect(a.sent[0].id).toBe(first.task.id);
    await until(() => b.sent.length === 1, 3000, 'the second task at b').catch(() => undefined);
    expect(b.sent.map((r) => r.id)).toEqual([second.task.id]);
  });
});
