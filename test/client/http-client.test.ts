import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConveyorClient } from '../../src/client/http-client.js';
import { ConveyorError } from '../../src/errors.js';
import { onCleanup } from '../helpers.js';

/** A server that answers every request with `answer`, on a free port; its URL. */
async function serverThat(answer: (res: ServerResponse) => void): Promise<string> {
  const server = createServer((_req, res) => answer(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The error a client call ends with. */
async function failure(server: string): Promise<ConveyorError> {
  const err = await new ConveyorClient({ server, timeoutMs: 500 }).get('01ZZZZZZZZZZZZZZZZZZZZZZZZ').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConveyorError);
  return err as ConveyorError;
}

describe('the HTTP SDK on a misbehaving server', () => {
  it('answers a typed error whatever the server does with the body', async () => {
    // headers sent, then the body never comes
    const stalls = await serverThat((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"task":');
    });
    expect((await failure(stalls)).code).toBe('server_unreachable');
    // the connection is cut in the middle of the body
    const cut = await serverThat((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"task":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    expect((await failure(cut)).code).toBe('server_unreachable');
    // an error status whose body is JSON but not an object
    const nullBody = await serverThat((res) => res.writeHead(500, { 'content-type': 'application/json' }).end('null'));
    expect((await failure(nullBody)).code).toBe('internal_error');
  });

  it('reads a gateway error without our JSON (a proxy in front, a restart) as the server being away, and waits through it', async () => {
    const html = await serverThat((res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>502 Bad Gateway</html>'));
    expect(await failure(html)).toMatchObject({ code: 'server_unreachable', status: 503 });
    const other = await serverThat((res) =>
      res
        .writeHead(503, { 'retry-after': '2', 'content-type': 'application/json' })
        .end('{"error":"Service Unavailable","statusCode":503}'),
    );
    expect(await failure(other)).toMatchObject({ code: 'server_unreachable', retryAfterS: 2 });
    const task = { id: '01ZZZZZZZZZZZZZZZZZZZZZZZZ', lambda: 'l', state: 'SUCCESS' };
    let calls = 0;
    const restarting = await serverThat((res) => {
      if (++calls === 1) return void res.writeHead(504, { 'content-type': 'text/plain' }).end('Gateway Timeout');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ task }));
    });
    const done = await new ConveyorClient({ server: restarting, timeoutMs: 500 }).waitFor(task.id, { timeoutMs: 5000, pollMs: 10 });
    expect(done.state).toBe('SUCCESS');
    // Any other status without our JSON stays what it was: an error we cannot read.
    const teapot = await serverThat((res) => res.writeHead(500, { 'content-type': 'text/html' }).end('<html>oops</html>'));
    expect((await failure(teapot)).code).toBe('internal_error');
  });

  it('reads Retry-After given as seconds or as an HTTP date', async () => {
    const body = JSON.stringify({ error: { code: 'queue_full', message: 'full' } });
    const secs = await serverThat((res) => res.writeHead(429, { 'retry-after': '3' }).end(body));
    expect(await failure(secs)).toMatchObject({ code: 'queue_full', retryAfterS: 3 });
    const date = await serverThat((res) => res.writeHead(429, { 'retry-after': new Date(Date.now() + 10_000).toUTCString() }).end(body));
    const e = await failure(date);
    expect(e.code).toBe('queue_full');
    expect(e.retryAfterS).toBeGreaterThanOrEqual(8);
    expect(e.retryAfterS).toBeLessThanOrEqual(11);
  });

  it('waits through a server that restarts or loses its store, and gives up with the last such answer when the time is up', async () => {
    const task = { id: '01ZZZZZZZZZZZZZZZZZZZZZZZZ', lambda: 'l', state: 'PROCESSING' };
    let calls = 0;
    // The connection cut (a restart), then 503 store_unavailable, then running, then done.
    const flaky = await serverThat((res) => {
      calls++;
      if (calls === 1) return void res.socket?.destroy();
      if (calls === 2)
        return void res
          .writeHead(503, { 'retry-after': '0', 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { code: 'store_unavailable', message: 'away' } }));
      const state = calls === 3 ? 'PROCESSING' : 'SUCCESS';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ task: { ...task, state } }));
    });
    const done = await new ConveyorClient({ server: flaky, timeoutMs: 500 }).waitFor(task.id, { timeoutMs: 5000, pollMs: 10 });
    expect(done.state).toBe('SUCCESS');
    expect(calls).toBe(4);
    // Away for longer than the wait: the answer that kept it from finishing, not a hang.
    const away = await serverThat((res) =>
      res
        .writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'store_unavailable', message: 'away' } })),
    );
    const t0 = Date.now();
    const err = await new ConveyorClient({ server: away, timeoutMs: 500 }).waitFor(task.id, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'store_unavailable' });
    expect(Date.now() - t0).toBeLessThan(1500);
    // A wrong id is not passed over.
    const missing = await serverThat((res) =>
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'task_not_found', message: 'no' } })),
    );
    await expect(new ConveyorClient({ server: missing }).waitFor(task.id, { timeoutMs: 5000 })).rejects.toMatchObject({
      code: 'task_not_found',
    });
  });

  it('gives up a wait when its time is up, even in the middle of a read that stalls', async () => {
    const stalls = await serverThat(() => {}); // takes the request, never answers
    const started = Date.now();
    const err = await new ConveyorClient({ server: stalls, timeoutMs: 30_000 })
      .waitFor('01ZZZZZZZZZZZZZZZZZZZZZZZZ', { timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'server_unreachable' });
    expect(Date.now() - started).toBeLessThan(3000); // not the client's 30 s
  });
});
