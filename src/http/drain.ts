import type { FastifyInstance } from 'fastify';
import { ConveyorError } from '../errors.js';
import { sendError } from './errors.js';

/** Longest a stop waits for the requests already in a handler before it cuts their connections. */
const DRAIN_MS = 10_000;

/**
 * Lets a stop (app.close) answer the requests already in a handler before Fastify cuts every
 * connection: a submit or ingest being written is committed by the engine's close either way,
 * and a cut connection told its client it had failed (a retry then created it twice). Requests
 * that reach a handler once the stop began are answered shutting_down (Fastify's own 503 for
 * them is not the catalogue's shape and has no Retry-After). Worker connections are left to the
 * WebSocket plugin, which closes them itself.
 *
 * `track` goes before the routes, `drain` after every other preClose hook (the dashboard's live
 * feed ends its streams in one).
 */
export function drainOnClose(app: FastifyInstance): { track(): void; drain(): void } {
  let inHandlers = 0;
  let stopping = false;
  let drained: (() => void) | null = null;
  return {
    track() {
      app.addHook('preHandler', async (req, reply) => {
        if (req.ws) return;
        if (stopping) return sendError(reply, new ConveyorError('shutting_down', 'the server is shutting down', { retryAfterS: 1 }));
        inHandlers++;
        reply.raw.once('close', () => {
          if (--inHandlers === 0) drained?.();
        });
      });
    },
    drain() {
      app.addHook('preClose', async () => {
        stopping = true;
        if (inHandlers === 0) return;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          drained = resolve;
          timer = setTimeout(resolve, DRAIN_MS);
        });
        clearTimeout(timer);
      });
    },
  };
}
