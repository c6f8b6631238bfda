import type { FastifyInstance } from 'fastify';
import { ConveyorError } from '../../errors.js';
import type { Engine } from '../../server/engine.js';
import { resource } from '../route.js';

export function healthRoutes(app: FastifyInstance, engine: Engine): void {
  resource(app, '/healthz', {
    GET: {
      schema: { summary: 'Liveness: 200 when the store answers and can write', tags: ['ops'] },
      handler: async () => {
        try {
          await engine.health();
        } catch (err) {
          engine.log.warn({ err }, 'health check failed');
          // The cause stays in the log: this route is open without a token.
          throw new ConveyorError('store_unavailable', 'the store does not answer, or its disk failed a write (see the server log)', {
            retryAfterS: 1,
            cause: err,
          });
        }
        return { ok: true };
      },
    },
  });
}
