import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConveyorError } from '../../errors.js';
import type { Engine } from '../../server/engine.js';
import { sendError } from '../errors.js';
import { resource } from '../route.js';

const params = { type: 'object', required: ['lambda'], properties: { lambda: { type: 'string', maxLength: 128 } } };

/**
 * POST /v1/ingest/:lambda (DESIGN section 7): `{"token"?, "version"?, "data": [payload, ...]}`
 * -> 202 `{"accepted": n}` once the n tasks are committed; 429 queue_full with Retry-After when
 * the intake queue has no room for them; 400, 404, 405, 413 as everywhere else.
 */
export async function ingestRoutes(app: FastifyInstance, engine: Engine): Promise<void> {
  await app.register(async (scope) => {
    strictJsonParser(scope);
    resource(scope, '/v1/ingest/:lambda', {
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
          const refusal = engine.ingest.refusal((req.params as { lambda: string }).lambda);
          if (refusal) return sendError(reply, refusal);
        },
        handler: async (req, reply) => {
          const accepted = await engine.ingest.accept((req.params as { lambda: string }).lambda, req.body);
          return reply.code(202).type('application/json').send(`{"accepted":${accepted}}`);
        },
      },
    });
  });
}

/**
 * Fastify's JSON parser (secure-json-parse: __proto__ and constructor.prototype refused) behind
 * a UTF-8 check. Fastify decodes bodies with replacement characters, so invalid bytes would
 * otherwise reach the store silently changed; payloads are kept as sent, or refused.
 * JSON.parse itself is iterative (a 100,000-deep array parses); depth is limited later, where
 * a payload is written as JSON text (see payloadError).
 */
function strictJsonParser(scope: FastifyInstance): void {
  const parse = scope.getDefaultJsonParser('error', 'error');
  scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const buf = body as Buffer;
    if (!isUtf8(buf)) {
      done(new ConveyorError('invalid_json', 'the body is not valid UTF-8'), undefined);
      return;
    }
    const text = buf.toString('utf8');
    parse(req, text, (err, value) => (err ? done(whyRefused(text), undefined) : done(null, value)));
  });
}

/** Fastify's parser answers "not valid JSON" for everything; say which of its two refusals it was. */
function whyRefused(text: string): ConveyorError {
  if (text.length === 0) return new ConveyorError('invalid_json', 'the body is empty; send a JSON object');
  try {
    JSON.parse(text);
  } catch (err) {
    return new ConveyorError('invalid_json', `the body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  return new ConveyorError('invalid_json', 'the body holds a __proto__ or constructor.prototype key, which is refused');
}
