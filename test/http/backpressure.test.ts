import { describe, expect, it } from 'vitest';
import { startConveyor, until } from '../helpers.js';

describe('writes waiting for a group commit', () => {
  it('refuses submits beyond maxPendingWrites with 429 queue_full and Retry-After while the store is slow', async () => {
    const c = await startConveyor({ lambdas: [{ name: 'echo', handler: async (p) => p }], maxPendingWrites: 4 });
    const url = await c.listen({ port: 0 });
    // The store stalls on its next write, as a slow or locked database does.
    const store = c.engine.store;
    const write = store.transactionWith.bind(store);
    let release = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    let stalled = 0;
    store.transactionWith = async (fn, opts) => {
      stalled++;
      await released;
      return write(fn, opts);
    };
    const submit = (n: number) =>
      fetch(`${url}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ lambda: 'echo', payload: n }),
      }).then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), json: await r.json() }));
    const first = submit(0);
    await until(() => stalled > 0, 5000, 'the first write to stall');
    // Those beyond the limit are answered at once, while the store has not moved.
    let answered = 0;
    const rest = Array.from({ length: 20 }, (_, i) =>
      submit(i + 1).then((a) => {
        answered++;
        return a;
      }),
    );
    const early = await until(() => answered >= 16, 3000, 'the refusals').catch(() => false);
    release();
    expect(early).toBe(true);
    const all = [await first, ...(await Promise.all(rest))];
    const refused = all.filter((a) => a.status === 429);
    for (const a of refused) expect(a).toMatchObject({ retryAfter: '1', json: { error: { code: 'queue_full' } } });
    // The first write, and those that fit behind it.
    expect(all.filter((a) => a.status === 201)).toHaveLength(all.length - refused.length);
    expect(refused.length).toBeGreaterThanOrEqual(all.length - 5);
  });
});
