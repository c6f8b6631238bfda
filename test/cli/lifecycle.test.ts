import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { conveyor, freePort } from '../crash/processes.js';
import { onCleanup, tempDir } from '../helpers.js';
import { describeIf, freshSchema, pgUnreachable } from '../pg/pg-env.js';

const LAMBDAS = join(import.meta.dirname, '../../examples/quickstart/lambdas.mjs');

describe('CLI process lifecycles', () => {
  it('conveyor worker exits 1 with unauthorized when a server it reconnects to refuses its token', async () => {
    const dir = tempDir();
    const port = String(await freePort());
    const store = ['--store', join(dir, 's.db'), '--port', port];
    const first = conveyor(['server', ...store, '--token', 'old']);
    const url = await first.ready;
    const worker = conveyor(['worker', '--server', url, '--token', 'old', '--lambdas', LAMBDAS]);
    await worker.ready;
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    // The server comes back with another token: retrying cannot help, as at the first connection.
    const second = conveyor(['server', ...store, '--token', 'new']);
    await second.ready;
    expect(await worker.exited).toBe(1);
    expect(worker.stderr()).toMatch(/^error: the server refused the token \(unauthorized\)$/m);
  });
});

describeIf(await pgUnreachable(), 'CLI process lifecycles on PostgreSQL', () => {
  it('conveyor server exits 1 when its port is taken, instead of staying up on its open store', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    onCleanup(() => new Promise<void>((r) => taken.close(() => r())));
    const { port } = taken.address() as { port: number };
    const server = conveyor(['server', '--store', freshSchema().url, '--port', String(port)]);
    server.ready.catch(() => {}); // it never gets ready: the exit is what is awaited
    // The pool's connections (and the duties the server took) held the process after the error.
    const code = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    expect(code).toBe(1);
    expect(server.stderr()).toMatch(/^error: listen EADDRINUSE/m);
  }, 20_000);
});
