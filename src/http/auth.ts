import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConveyorError } from '../errors.js';
import { sendError } from './errors.js';

/**
 * Bearer-token check for /v1 routes, the dashboard and the worker protocol. Both sides are
 * hashed first, so the comparison takes the same time whatever the token's length or content.
 */
export function tokenMatches(expected: string, header: string | undefined): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = createHash('sha256').update(m[1].trim()).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Routes that stay open without a token: liveness for load balancers, and the dashboard's
 * static shell (`/` and `/dashboard/*`: code and styles, no data; a browser cannot add a header
 * to a page load, so the page asks for the token and sends it with every /v1 call it makes).
 */
const OPEN = new Set(['/healthz', '/']);
const OPEN_PREFIX = '/dashboard/';

export function authHook(token: string | undefined) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (!token) return;
    const path = req.url.split('?')[0];
    if (OPEN.has(path) || path.startsWith(OPEN_PREFIX)) return;
    if (tokenMatches(token, req.headers.authorization)) return;
    reply.header('www-authenticate', 'Bearer realm="conveyor"');
    return sendError(reply, new ConveyorError('unauthorized'));
  };
}
