import type { FastifyInstance, RouteOptions } from 'fastify';
import { ConveyorError } from '../errors.js';
import { sendError } from './errors.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const METHODS: Method[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * Registers the methods a path serves and answers every other method with 405 and an Allow
 * header (Fastify alone would answer 404, which tells a client the path does not exist), and
 * OPTIONS with 204 and the same header.
 */
export function resource(app: FastifyInstance, url: string, handlers: Partial<Record<Method, Omit<RouteOptions, 'method' | 'url'>>>): void {
  const allowed = Object.keys(handlers) as Method[];
  for (const m of allowed) app.route({ ...(handlers[m] as RouteOptions), method: m, url });
  app.route({
    method: 'OPTIONS',
    url,
    schema: { hide: true } as never,
    handler: async (_req, reply) =>
      reply
        .code(204)
        .header('allow', [...allowed, 'OPTIONS'].join(', '))
        .send(),
  });
  const others = METHODS.filter((m) => !allowed.includes(m));
  if (others.length === 0) return;
  app.route({
    method: others,
    url,
    schema: { hide: true } as never,
    handler: async (req, reply) => {
      reply.header('allow', allowed.join(', '));
      return sendError(
        reply,
        new ConveyorError('method_not_allowed', `${req.method} is not allowed on ${url}; use ${allowed.join(' or ')}`),
      );
    },
  });
}
