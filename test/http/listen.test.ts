import { createServer } from 'node:net';
import { expect, it } from 'vitest';
import { onCleanup, startConveyor } from '../helpers.js';

it('listens on another port after a listen that failed (address in use)', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise<void>((r) => taken.close(() => r())));
  const { port } = taken.address() as { port: number };
  const c = await startConveyor({ lambdas: [{ name: 'echo', handler: async (p) => p }] });
  await expect(c.listen({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  const url = await c.listen({ port: 0 });
  expect((await fetch(`${url}/healthz`)).status).toBe(200);
});
