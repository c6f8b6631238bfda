import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { LINGER_BYTES } from '../../src/http/linger.js';
import { startConveyor } from '../helpers.js';

const MB = 1024 * 1024;

async function server(): Promise<number> {
  const c = await startConveyor({ worker: false });
  return Number(new URL(await c.listen({ port: 0, bodyLimit: MB })).port);
}

/** A raw connection that keeps everything the server sends, and how it ended. */
function open(port: number): { socket: Socket; text: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  return { socket, text: () => text, closed: new Promise((r) => socket.on('close', () => r())) };
}

const write = (s: Socket, data: string | Buffer) =>
  new Promise<void>((resolve, reject) => s.write(data, (err) => (err ? reject(err) : resolve())));

// Refusals answered before the body has all arrived: too large for the body limit (Fastify
// stops reading), and an unknown lambda of the ingest route (answered before the body is read).
describe.each([
  ['POST /v1/tasks', 413, 'body_too_large'],
  ['POST /v1/ingest/no-such-lambda', 404, 'unknown_lambda'],
])('%s with a body still arriving', (request, status, code) => {
  it(`answers ${status} without a reset: the client reads it after its upload, and its connection carries the next request`, async () => {
    const port = await server();
    const { socket, text } = open(port);
    const size = 16 * MB;
    await write(socket, `${request} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
    // The whole body, in pieces: a server that closed after its answer fails these writes (EPIPE, ECONNRESET).
    for (let sent = 0; sent < size; sent += MB) await write(socket, Buffer.alloc(MB, 0x20));
    await write(socket, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect.poll(() => text().match(/HTTP\/1\.1 \d+/g), { timeout: 5000 }).toEqual([`HTTP/1.1 ${status}`, 'HTTP/1.1 200']);
    expect(text()).toContain(`"code":"${code}"`);
    socket.destroy();
  });

  it(`cuts a client that goes on sending past the bound, after it has had the ${status} in front of it`, async () => {
    const port = await server();
    const { socket, text, closed } = open(port);
    let sent = 0;
    let ended = false;
    socket.once('error', () => (ended = true));
    void closed.then(() => (ended = true));
    await write(socket, `${request} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const chunk = Buffer.concat([Buffer.from(`${MB.toString(16)}\r\n`), Buffer.alloc(MB, 0x5b), Buffer.from('\r\n')]);
    while (!ended && sent < 4 * LINGER_BYTES) {
      await write(socket, chunk).catch(() => {});
      sent += MB;
    }
    await closed;
    expect(text()).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(text()).toContain(`"code":"${code}"`);
    // read and thrown away up to the bound, then cut (long before four times it)
    expect(sent).toBeGreaterThan(LINGER_BYTES);
    expect(sent).toBeLessThan(4 * LINGER_BYTES);
  });
});

describe('a refusal before the body has arrived, while the server stops', () => {
  it('keeps the Connection: close of a stop: the client is not told to reuse a connection about to be cut', async () => {
    const c = await startConveyor({ worker: false, lambdas: [{ name: 'echo', handler: async (p) => p }] });
    const url = await c.listen({ port: 0, bodyLimit: MB });
    const port = Number(new URL(url).port);
    // Two kept-alive connections, opened before the stop.
    const held = [open(port), open(port)];
    for (const { socket, text } of held) {
      await write(socket, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await expect.poll(() => text()).toMatch(/"ok":true/);
    }

    // A submit being written holds the stop in its drain.
    const engine = c.engine;
    const insert = engine.insertPrepared.bind(engine);
    let writing = false;
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    engine.insertPrepared = async (tasks) => {
      writing = true;
      await released;
      return insert(tasks);
    };
    const submitted = fetch(`${url}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ lambda: 'echo', payload: 1 }),
    }).then((r) => r.status);
    await expect.poll(() => writing).toBe(true);
    const closed = c.close();
    await new Promise((r) => setTimeout(r, 50));

    // Refused before their bodies are sent: in the ingest route's onRequest hook, and by the body limit.
    const requests = [
      ['POST /v1/ingest/no-such-lambda', 10, 404],
      ['POST /v1/tasks', 2 * MB, 413],
    ] as const;
    const heads = await Promise.all(
      requests.map(async ([request, length, status], i) => {
        const { socket, text } = held[i];
        const before = text().length;
        await write(socket, `${request} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
        await expect.poll(() => text().slice(before)).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [^]*\r\n\r\n\\{`));
        return text().slice(before).split('\r\n\r\n')[0];
      }),
    ).finally(release);
    for (const head of heads) expect(head).toMatch(/\r\nconnection: close/i);
    expect(await submitted).toBe(201);
    await closed;
    for (const { socket } of held) socket.destroy();
  });
});
