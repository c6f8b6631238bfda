import type { FastifyReply } from 'fastify';

/** How long a client refused for its body's size may go on sending before its connection is cut. */
const LINGER_MS = 5000;
/** How many more bytes it may send in that time. */
export const LINGER_BYTES = 64 * 1024 * 1024;

/**
 * A body too large is refused (413) before the rest of it has arrived. Closing the connection
 * with that rest unread makes the kernel answer the client with a reset, and a client still
 * sending then meets EPIPE or ECONNRESET and may never read the 413 (its kernel drops it). So
 * the connection stays open while the rest of the body is read and thrown away, as nginx's
 * lingering close does; a client that finishes its upload reads the 413 and keeps its
 * connection. One that goes on past LINGER_MS or LINGER_BYTES has had the 413 in front of it
 * all that time, and is cut.
 */
export function lingerAfterRefusal(reply: FastifyReply): void {
  // Fastify asks to close a connection whose body it could not take; the rest is read here instead.
  reply.removeHeader('connection');
  const req = reply.request.raw;
  if (req.complete || req.destroyed) return;
  let bytes = 0;
  const cut = () => req.socket.destroy();
  const timer = setTimeout(cut, LINGER_MS).unref();
  const discard = (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > LINGER_BYTES) cut();
  };
  const done = () => {
    clearTimeout(timer);
    req.off('data', discard);
  };
  req.on('data', discard);
  req.once('end', done);
  req.once('close', done);
}
