import type { FastifyReply } from 'fastify';

/** How long a client refused before its body has all arrived may go on sending before its connection is cut. */
const LINGER_MS = 5000;
/** How many more bytes it may send in that time. */
export const LINGER_BYTES = 64 * 1024 * 1024;

/**
 * Some refusals come before the body has all arrived: a body too large (413), an unknown
 * lambda or a full intake queue (404, 429, answered before the body is read). Closing the
 * connection with the rest of the body unread makes the kernel answer the client with a reset,
 * and a client still sending then meets EPIPE or ECONNRESET and may never read the answer (its
 * kernel drops it); reading on to the end, as Node does for an answered request, has no bound
 * but the request timeout. So the rest of the body is read and thrown away, as nginx's lingering
 * close does: a client that finishes its upload reads the answer and keeps its connection, and
 * one that goes on past LINGER_MS or LINGER_BYTES has had the answer in front of it all that
 * time, and is cut.
 */
export function lingerAfterRefusal(reply: FastifyReply): void {
  const req = reply.request.raw;
  if (req.complete || req.destroyed) return;
  // Fastify's body parser asks (on the reply) to close a connection whose body it could not take;
  // the rest is read here instead. A stop asks too, on the raw response of every request once
  // app.close() began: that one is kept, as the connection is about to be cut.
  if (reply.hasHeader('connection') && !reply.raw.hasHeader('connection')) reply.removeHeader('connection');
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
