import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { LambdaDefinition } from '../../src/index.js';
import { startConveyor, until } from '../helpers.js';

const lambdas: LambdaDefinition[] = [{ name: 'echo', handler: async (p) => p }];

/** Reads one HTTP answer (headers and a Content-Length body) from a kept-alive socket. */
function answer(socket: Socket): Promise<{ status: number; head: string; json: any }> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('utf8');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = got.slice(0, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (Buffer.byteLength(got.slice(end + 4)) < length) return;
      socket.off('data', onData);
      const body = got.slice(end + 4, end + 4 + length);
      resolve({ status: Number(head.split(' ')[1]), head, json: body ? JSON.parse(body) : null });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    // Closed (by the server) without an answer: status 0.
    if (socket.destroyed) resolve({ status: 0, head: '', json: null });
    socket.once('close', () => resolve({ status: 0, head: got, json: null }));
  });
}

describe('stopping the HTTP server', () => {
  it('answers the requests being written before it closes their connections, and refuses new ones with shutting_down', async () => {
    const c = await startConveyor({ lambdas });
    const url = await c.listen({ port: 0 });
    // A kept-alive connection, opened before the stop.
    const { port } = new URL(url);
    const held = connect(Number(port), '127.0.0.1');
    await new Promise((r) => held.once('connect', r));
    held.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await answer(held)).status).toBe(200);

    // Writes take a while: the stop begins while a submit and an ingest are being written.
    const engine = c.engine;
    const insert = engine.insertPrepared.bind(engine);
    let writing = 0;
    let release = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    engine.insertPrepared = async (tasks) => {
      writing++;
      await released;
      return insert(tasks);
    };
    const post = (path: string, body: unknown) =>
      fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
        async (r) => ({ status: r.status, json: await r.json() }),
        (err: Error) => ({ status: 0, json: String((err.cause as Error)?.message ?? err) }),
      );
    const submitted = post('/v1/tasks', { lambda: 'echo', payload: 'submitted' });
    const ingested = post('/v1/ingest/echo', { data: ['ingested'] });
    await until(() => writing === 2, 5000, 'both writes to start');

    const closed = c.close();
    await new Promise((r) => setTimeout(r, 50));
    // A request on a connection the server still holds: refused in the catalogue's shape.
    held.write('POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"lambda":"echo"}');
    const refused = await answer(held).finally(release);
    expect(refused.status).toBe(503);
    expect(refused.json).toMatchObject({ error: { code: 'shutting_down' } });
    expect(refused.head).toMatch(/\r\nretry-after: \d+/i);
    // The writes go through, and their clients are told so (they used to see the connection reset).
    expect(await submitted).toMatchObject({ status: 201, json: { task: { payload: 'submitted' } } });
    expect(await ingested).toEqual({ status: 202, json: { accepted: 1 } });
    await closed;
    held.destroy();
  });
});
