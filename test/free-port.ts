import { createServer } from 'node:net';

/** A free TCP port on loopback. Imports nothing from vitest: scripts outside the suite use it too. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
