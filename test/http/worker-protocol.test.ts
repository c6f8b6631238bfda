import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Worker } from '../../src/worker/worker.js';
import { startConveyor, until } from '../helpers.js';

const echo = { name: 'echo', handler: async (p: unknown) => ({ echo: p }) };

async function rawSocket(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/workers/connect`, { headers });
  const frames: Array<Record<string, unknown>> = [];
  const status = await new Promise<number>((resolve) => {
    ws.on('open', () => resolve(101));
    ws.on('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      req.destroy();
    });
    ws.on('error', () => resolve(-1));
  });
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  return { ws, status, frames };
}

/**
 * A TCP relay between a worker and the server that can swallow what the worker sends, as a
 * connection does that died without either end knowing yet.
 */
async function relay(target: URL) {
  const open = new Map<Socket, { up: Socket; swallowed: boolean }>();
  let accepted = 0;
  const server = createServer((down) => {
    accepted++;
    const up = connect(Number(target.port), target.hostname);
    const conn = { up, swallowed: false };
    open.set(down, conn);
    for (const s of [down, up]) s.on('error', () => undefined);
    down.on('data', (d) => {
      if (!conn.swallowed) up.write(d);
    });
    up.pipe(down);
    down.on('close', () => {
      open.delete(down);
      up.destroy();
    });
    up.on('close', () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    /** What workers send over the connections open now goes nowhere. */
    swallow: () => {
      for (const c of open.values()) c.swallowed = true;
    },
    connections: () => accepted,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('worker protocol over a real WebSocket', () => {
  it('runs tasks on a remote worker that connects with the token, and refuses one without it', async () => {
    const server = await startConveyor({ lambdas: [echo], worker: false });
    const url = await server.listen({ port: 0, token: 't0ken' });
    expect((await rawSocket(url)).status).toBe(401);
    expect((await rawSocket(url, { authorization: 'Bearer nope' })).status).toBe(401);
    // A worker with the wrong token hears why and stops trying (retrying cannot help).
    const wrong = new Worker({ server: url, token: 'nope', lambdas: [echo] }).start();
    await expect(wrong.ready).rejects.toMatchObject({ code: 'unauthorized' });
    await wrong.stop(0);

    let ready = false;
    const worker = new Worker({
      server: url,
      token: 't0ken',
      lambdas: [echo],
      concurrency: 4,
      events: { ready: () => (ready = true) },
    }).start();
    try {
      await until(() => ready, 5000, 'worker welcomed');
      const t = await server.submit('echo', { n: 1 });
      expect((await server.waitFor(t.id)).result).toEqual({ echo: { n: 1 } });
      expect((await server.lambdas())[0].workers).toBe(1);
    } finally {
      await worker.stop();
    }
  });

  it('finds a connection that died silently under a report, reconnects and sends the outcome again; the task runs once', async () => {
    const server = await startConveyor({ lambdas: [echo], worker: false, heartbeatMs: 200 });
    const link = await relay(new URL(await server.listen({ port: 0 })));
    let runs = 0;
    const worker = new Worker({
      server: link.url,
      lambdas: [
        {
          name: 'echo',
          handler: async (p: unknown) => {
            runs++;
            // From here the connection swallows what the worker sends, its report and its
            // pings too, and never closes: only the unanswered pings show it is dead.
            link.swallow();
            return { echo: p };
          },
        },
      ],
    }).start();
    try {
      await worker.ready;
      const t = await server.submit('echo', { n: 1 });
      // Leases last 20 s here: only the outcome sent again can finish the task this soon.
      const done = await server.waitFor(t.id, { timeoutMs: 10_000 });
      expect(done).toMatchObject({ state: 'SUCCESS', attempt: 1, result: { echo: { n: 1 } } });
      expect(runs).toBe(1);
      expect(link.connections()).toBe(2);
    } finally {
      await worker.stop();
      await link.close();
    }
  });

  it('answers a malformed or hostile frame with an error frame and keeps serving', async () => {
    const server = await startConveyor({ lambdas: [echo], worker: false });
    const url = await server.listen({ port: 0 });
    const { ws, status, frames } = await rawSocket(url);
    expect(status).toBe(101);
    ws.send('{not json');
    ws.send(JSON.stringify({ type: 'report', done: 'lots' }));
    ws.send(JSON.stringify({ type: 'hello', protocol: 99, workerId: 'w', lambdas: [], capacity: 1, concurrency: 1 }));
    ws.send(JSON.stringify({ type: 'hello', protocol: 1, workerId: 'w', lambdas: [{ name: 'bad name!' }], capacity: 1, concurrency: 1 }));
    ws.send(
      JSON.stringify({
        type: 'hello',
        protocol: 1,
        workerId: 'w',
        lambdas: [{ name: 'echo', __proto__: { polluted: true } }],
        capacity: 1,
        concurrency: 1,
      }),
    );
    // Values no store can hold are refused here, not left to fail a write (a bigint of 1e300).
    const item = { id: 'x', attempt: 1, kind: 'snoozed', error: { message: 'm' } };
    ws.send(JSON.stringify({ type: 'report', done: [{ id: 'x', attempt: 1, startedAt: 1e300 }] }));
    ws.send(JSON.stringify({ type: 'report', failed: [{ ...item, startedAt: null, snoozeMs: 1e300 }] }));
    ws.send(JSON.stringify({ type: 'report', started: [{ id: 'x', attempt: 2 ** 40, at: 1 }] }));
    await until(() => frames.filter((f) => f.type === 'error').length >= 7, 5000, 'error frames');
    const codes = frames.filter((f) => f.type === 'error').map((f) => (f.error as { code: string }).code);
    expect(codes.slice(0, 7)).toEqual(['invalid_json', ...Array(6).fill('validation_failed')]);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    ws.close();
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
  });

  it('keeps accepting tasks for a lambda a worker registered once, while no worker is connected', async () => {
    const server = await startConveyor({ worker: false });
    const url = await server.listen({ port: 0 });
    let ready = false;
    const worker = new Worker({ server: url, lambdas: [echo], events: { ready: () => (ready = true) } }).start();
    await until(() => ready, 5000, 'worker welcomed');
    await worker.stop();
    const t = await server.submit('echo', 'later');
    expect(t.state).toBe('ENQUEUED');
    let again = false;
    const back = new Worker({ server: url, lambdas: [echo], events: { ready: () => (again = true) } }).start();
    await until(() => again, 5000, 'second worker');
    expect((await server.waitFor(t.id)).state).toBe('SUCCESS');
    await back.stop();
  });
});
