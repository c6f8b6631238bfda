import type { FastifyInstance } from 'fastify';
import { ConveyorError } from '../../errors.js';
import type { Engine } from '../../server/engine.js';
import { resource } from '../route.js';

export function healthRoutes(app: FastifyInstance, engine: Engine): void {
  resource(app, '/healthz', {
    GET: {
      schema: { summary: 'Liveness: 200 when the store answers', tags: ['ops'] },
      handler: async () => {
        try {
          await engine.health();
        } catch (err) {
          throw new ConveyorError('store_unavailable', 'the store does not answer', { retryAfterS: 1, cause: err });
        }
        return { ok: true };
      },
    },
  });
}
