import { expect, it, vi } from 'vitest';
import { Controller } from '../../src/worker/controller.js';
import { onCleanup, sleep, startConveyor } from '../helpers.js';

it('close() ends the waits still pending with shutting_down, instead of holding the process until their timeout', async () => {
  const c = await startConveyor({ lambdas: [{ name: 'later', handler: async () => 'done' }] });
  const t = await c.submit('later', null, { delayMs: 60_000 });
  const wait = c.waitFor(t.id, { timeoutMs: 60_000 });
  await c.close();
  // Its timer kept the process alive for the whole wait, and 'ended' can never come after close.
  const outcome = await Promise.race([
    wait.then(
      () => 'resolved',
      (err) => err,
    ),
    sleep(1000).then(() => 'still waiting'),
  ]);
  expect(outcome).toMatchObject({ code: 'shutting_down' });
});

it('two close() calls at once drain the worker once, and both end when the store is closed', async () => {
  const c = await startConveyor({ lambdas: [{ name: 'echo', handler: async (p) => p }] });
  const { store } = c.engine;
  const stop = vi.spyOn(Controller.prototype, 'stop');
  onCleanup(() => stop.mockRestore());
  await Promise.all([c.close(), c.close()]);
  expect(stop).toHaveBeenCalledTimes(1);
  await expect(store.read((o) => o.q.gateList())).rejects.toMatchObject({ code: 'unavailable' });
});

it('two listen() calls at once: one listens, the other is refused', async () => {
  const c = await startConveyor({ worker: false });
  const both = await Promise.allSettled([c.listen({ port: 0 }), c.listen({ port: 0 })]);
  expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  expect(both.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'validation_failed' } });
});
