import { expect, it } from 'vitest';
import { sleep, startConveyor } from '../helpers.js';

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
