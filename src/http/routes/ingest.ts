import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engine } from '../../server/engine.js';
import { sendError } from '../errors.js';
import { resource } from '../route.js';

const params = { type: 'object', required: ['lambda'], properties: { lambda: { type: 'string', maxLength: 128 } } };

/**
 * POST /v1/ingest/:lambda (docs/api.md, "Ingestion"): `{"token"?, "version"?, "data": [payload, ...]}`
 * -> 202 `{"accepted": n}` once the n tasks are committed; 429 queue_full with Retry-After when
 * the intake queue has no room for them; 400, 404, 405, 413 as everywhere else.
 */
export function ingestRoutes(app: FastifyInstance, engine: Engine): void {
  resource(app, '/v1/ingest/:lambda', {
    POST: {
      schema: {
        summary: 'Turn each payload of data into a task of the lambda (202 once committed, 429 when the intake queue is full)',
        description:
          'Body {"token"?: string, "version"?: string | number, "data": [payload, ...]}; each payload (any JSON) becomes one task, ' +
          'all or none. 202 {"accepted": n} once they are committed; 429 queue_full with Retry-After when the intake queue ' +
          '(maxQueue) has no room for them; 400 for bad JSON or shape, or more payloads than batchMax; 404 unknown_lambda.',
        tags: ['ingest'],
        params,
      } as never,
      // Before the body is read: an unknown lambda or a full queue costs no parse.
      onRequest: async (req: FastifyRequest, reply: FastifyReply) => {
        const { lambda } = req.params as { lambda: string };
        // A lambda another server registered may not have reached this one yet (as submits do).
        await engine.registry.refreshIfUnknown([lambda]);
        const refusal = engine.ingest.refusal(lambda);
        if (refusal) return sendError(reply, refusal);
      },
      handler: async (req, reply) => {
        const accepted = await engine.ingest.accept((req.params as { lambda: string }).lambda, req.body);
        return reply.code(202).type('application/json').send(`{"accepted":${accepted}}`);
      },
    },
  });
}
