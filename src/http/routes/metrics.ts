import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../server/engine.js';
import { ConveyorMetrics } from '../metrics.js';
import { resource } from '../route.js';

/**
 * `GET /metrics` in the Prometheus text format, behind the token like the /v1 routes. Answers
 * the metrics object so other parts (ingest, sharding, events) can attach theirs.
 */
export function metricsRoutes(app: FastifyInstance, engine: Engine): ConveyorMetrics {
  const metrics = new ConveyorMetrics(engine);
  metrics.attachIngest(engine.ingest);
  app.addHook('onClose', async () => metrics.close());
  resource(app, '/metrics', {
    GET: {
      schema: { summary: 'Prometheus metrics (text format 0.0.4)', tags: ['ops'] },
      handler: async (_req, reply) => {
        const text = await metrics.render();
        return reply.type(metrics.contentType).header('cache-control', 'no-store').send(text);
      },
    },
  });
  return metrics;
}
