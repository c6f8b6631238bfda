import { describe, expect, it } from 'vitest';
import type { Conveyor } from '../../src/conveyor.js';
import type { LambdaDefinition } from '../../src/index.js';
import { StoreError } from '../../src/store/store-error.js';
import { sleep, startConveyor, until } from '../helpers.js';

/**
 * Makes every store call of a running Conveyor fail with StoreError 'unavailable' while `down`,
 * as a PostgreSQL that went away does (connection refused): the roles above the driver (group
 * commit, HSC, scheduler, cron, dispatcher, HTTP) must ride it out and recover on their own.
 */
function outage(c: Conveyor): { down(v: boolean): void } {
  const d = c.engine.store.driver as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  let down = false;
  for (const m of ['transaction', 'read', 'durable', 'ping']) {
    const real = d[m].bind(d);
    d[m] = (...args) => (down ? Promise.reject(new StoreError('unavailable', 'ECONNREFUSED: injected outage')) : real(...args));
  }
  return {
    down(v) {
      down = v;
    },
  };
}

const work: LambdaDefinition = { name: 'work', handler: async (p: { ms: number }) => sleep(p.ms).then(() => 'done') };
const tick: LambdaDefinition = { name: 'tick', cron: '* * * * * *', handler: () => 'tock' };

describe('store outage (every store call fails for a while)', () => {
  it('answers 503 with Retry-After meanwhile, then finishes every accepted task with nothing left leased', async () => {
    const c = await startConveyor({ lambdas: [work, tick], concurrency: 4, heartbeatMs: 50, leaseMs: 300 });
    const url = await c.listen({ port: 0 });
    const store = outage(c);
    const accepted = (
      await c.submitMany(Array.from({ length: 40 }, (_, i) => ({ lambda: 'work', payload: { ms: 20 + (i % 3) * 20 } })))
    ).map((t) => t.id);
    await until(async () => (await c.get(accepted[5])).state === 'SUCCESS', 5000, 'work to be under way');

    store.down(true);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).toBe('1');
    const refused = await fetch(`${url}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ lambda: 'work', payload: { ms: 1 } }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect((await refused.json()).error.code).toBe('store_unavailable');
    const read = await fetch(`${url}/v1/tasks/${accepted[0]}`);
    expect(read.status).toBe(503);
    // Longer than three heartbeats (the worker suspends and aborts its attempts) and than a
    // lease (every lease held before is expired when the store comes back).
    await sleep(800);
    store.down(false);

    const late = await c.submit('work', { ms: 1 });
    accepted.push(late.id);
    for (const id of accepted) expect((await c.waitFor(id, { timeoutMs: 15_000 })).state).toBe('SUCCESS');
    const leased = await c.engine.store.read((o) => o.q.taskCounts());
    // the cron lambda ticks every second and may be running right now: only 'work' is settled
    expect(leased.filter((r) => r.lambda === 'work' && (r.state === 'CLAIMED' || r.state === 'PROCESSING'))).toEqual([]);
    // cron goes on creating occurrences after the outage
    const cronBefore = (await c.engine.list({ lambda: 'tick', limit: 1000 })).tasks.length;
    await until(async () => (await c.engine.list({ lambda: 'tick', limit: 1000 })).tasks.length > cronBefore, 5000, 'a cron occurrence');
  }, 30_000);

  it('writes worker reports that arrived during the outage once the store is back (no re-run needed)', async () => {
    let runs = 0;
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    const c = await startConveyor({
      lambdas: [
        {
          name: 'once',
          handler: async () => {
            runs++;
            await gate;
          },
        },
      ],
      // Heartbeats and leases far longer than the outage: nothing expires, so a task runs again
      // only if its outcome report was dropped.
      heartbeatMs: 2000,
    });
    const store = outage(c);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await c.submit('once', i)).id);
    await until(() => runs === 5, 5000, 'the handlers to start');
    store.down(true);
    finish(); // the outcomes reach the server while the store is down
    await sleep(300);
    store.down(false);
    for (const id of ids) expect((await c.waitFor(id, { timeoutMs: 5000 })).state).toBe('SUCCESS');
    expect(runs).toBe(5);
  });
});
