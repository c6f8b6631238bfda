import type { FastifyInstance } from 'fastify';
import { gateSchema } from '../../core/submit.js';
import type { Engine } from '../../server/engine.js';
import { resource } from '../route.js';

const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 128 } } };

export function lambdaRoutes(app: FastifyInstance, engine: Engine): void {
  resource(app, '/v1/lambdas', {
    GET: {
      schema: { summary: 'Lambdas with their settings, gates, task counts by state and connected workers', tags: ['lambdas'] },
      handler: async () => ({ lambdas: await engine.lambdas() }),
    },
  });

  resource(app, '/v1/lambdas/:name/pause', {
    POST: {
      schema: {
        summary: 'Pause a lambda or one collection (mode drop cancels due tasks instead)',
        tags: ['lambdas'],
        params: nameParams,
        body: gateSchema(['pause', 'drop']),
      },
      handler: async (req) => {
        const body = (req.body ?? {}) as { collection?: string; mode?: 'pause' | 'drop' };
        return {
          lambda: await engine.setGate((req.params as { name: string }).name, { collection: body.collection, mode: body.mode ?? 'pause' }),
        };
      },
    },
  });

  resource(app, '/v1/lambdas/:name/resume', {
    POST: {
      schema: { summary: 'Resume a lambda or one collection', tags: ['lambdas'], params: nameParams, body: gateSchema([]) },
      handler: async (req) => {
        const body = (req.body ?? {}) as { collection?: string };
        return { lambda: await engine.setGate((req.params as { name: string }).name, { collection: body.collection, mode: 'open' }) };
      },
    },
  });
}
