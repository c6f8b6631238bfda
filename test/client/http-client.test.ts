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
});
