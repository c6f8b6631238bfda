import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { Worker } from '../../src/worker/worker.js';
import { onCleanup, sleep } from '../helpers.js';

describe('remote worker transport', () => {
  it('backs off when the server takes the connection but refuses every hello (1008, 1013)', async () => {
    // A server that upgrades and then refuses the hello, as one of another protocol version
    // does, or one whose store is away (1013): each connection opens, so only a backoff that
    // waits for a welcome keeps the worker from reconnecting every 50-100 ms.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => wss.once('listening', r));
    onCleanup(() => new Promise<void>((r) => wss.close(() => r())));
    let connections = 0;
    wss.on('connection', (ws) => {
      connections++;
      ws.once('message', () => {
        ws.send(JSON.stringify({ type: 'error', error: { code: 'store_unavailable', message: 'the store is away' } }));
        ws.close(1013, 'the store is away');
      });
    });
    const { port } = wss.address() as { port: number };
    const worker = new Worker({ server: `http://127.0.0.1:${port}`, lambdas: [{ name: 'echo', handler: async (p) => p }] }).start();
    onCleanup(() => worker.stop(0));
    await sleep(2000);
    // With backoff (100 ms doubling, jitter): about five connections in 2 s; without, 20 or more.
    expect(connections).toBeGreaterThan(1);
    expect(connections).toBeLessThanOrEqual(8);
  });
});
