import { connect, type Socket } from 'node:net';
import { expect, it } from 'vitest';
import { startConveyor, until } from '../helpers.js';

/** A connection with one GET /healthz written; resolves with what the server answered before it closed the socket (or the test ends it). */
function ask(port: number): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  return { socket, answer: new Promise((r) => socket.on('close', () => r(text))) };
}

it('takes at most maxConnections connections at once; a new one past it is closed unanswered', async () => {
  const c = await startConveyor({ worker: false, maxConnections: 2 });
  const url = await c.listen({ port: 0 });
  const port = Number(new URL(url).port);
  const held = [ask(port), ask(port)]; // kept alive after their answer
  // Both answered: the server holds the two connections.
  await until(() => held.every((h) => h.socket.bytesRead > 0), 5000, 'two answers');
  const third = ask(port);
  expect(await third.answer).toBe('');
  // One of the two goes away: a new connection is served again.
  held[0].socket.destroy();
  await until(
    async () => {
      const next = ask(port);
      setTimeout(() => next.socket.end(), 200);
      return (await next.answer).startsWith('HTTP/1.1 200');
    },
    5000,
    'a connection served after one closed',
  );
  held[1].socket.destroy();
});
