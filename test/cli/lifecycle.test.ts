import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { conveyor, freePort } from '../crash/processes.js';
import { tempDir } from '../helpers.js';

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
