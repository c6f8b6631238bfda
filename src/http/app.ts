import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { dashboardRoutes } from '../dashboard/routes.js';
import { ConveyorError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Engine } from '../server/engine.js';
import { authHook } from './auth.js';
import { drainOnClose } from './drain.js';
import { clientError, errorHandler, frameworkError, sendError } from './errors.js';
import { strictJsonBodies } from './json-body.js';
import { resource } from './route.js';
import { healthRoutes } from './routes/health.js';
import { ingestRoutes } from './routes/ingest.js';
import { lambdaRoutes } from './routes/lambdas.js';
import { metricsRoutes } from './routes/metrics.js';
import { taskRoutes } from './routes/tasks.js';
import { MAX_FRAME_BYTES, workerRoutes } from './routes/workers.js';
import { validatorCompiler } from './validation.js';

export interface HttpOptions {
  /** Bearer token every /v1 route requires (none: open). */
  token?: string;
  /** Largest request body. @default 1048576 */
  bodyLimit?: number;
  logger: Logger;
}

/** The HTTP API of docs/api.md (Fastify), errors as {"error":{"code","message"}}. */
export async function buildApp(engine: Engine, opts: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger.child({ role: 'http' }) as FastifyBaseLogger,
    // One line per request would drown the log at thousands of requests a second; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Requests during a stop are answered by drainOnClose, in the catalogue's shape.
    return503OnClosing: false,
    forceCloseConnections: true,
    // Bounded everything: slow or stalled clients cannot hold sockets forever.
    connectionTimeout: 60_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 65_000,
    // Path segments hold ids (26), lambda names (128) and collections: Fastify's 100 was too short
    // for a long lambda name; a longer segment is refused with 414 (frameworkError).
    routerOptions: { maxParamLength: 1024 },
    frameworkErrors: frameworkError(opts.logger),
    clientErrorHandler: clientError,
  });
  // Bounded everything: past it Node closes a new connection at once.
  app.server.maxConnections = engine.config.maxConnections;
  app.setValidatorCompiler(validatorCompiler);
  strictJsonBodies(app);
  app.setErrorHandler(errorHandler(opts.logger));
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new ConveyorError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)),
  );
  // Before any route (its README): registered later, a refused upgrade request (401) left
  // app.close() waiting for ever.
  await app.register(websocket, { options: { maxPayload: MAX_FRAME_BYTES } });
  app.addHook('onRequest', authHook(opts.token));
  const drain = drainOnClose(app);
  drain.track();
  // Ids, names and keys in a path or query never hold NUL (submits refuse it: PostgreSQL's text
  // cannot store it), so a NUL there can only be a mistake; refused before any store sees it.
  app.addHook('onRequest', async (req, reply) => {
    if (req.url.includes('%00')) return sendError(reply, new ConveyorError('validation_failed', 'the URL holds a NUL character (%00)'));
  });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Conveyor',
        version: '1',
        description: 'Tasks, events, sharding and ingestion. Errors are {"error":{"code","message"}}.',
      },
      components: opts.token ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {},
      ...(opts.token ? { security: [{ bearer: [] }] } : {}),
    },
  });
  healthRoutes(app, engine);
  taskRoutes(app, engine);
  lambdaRoutes(app, engine);
  await workerRoutes(app, engine);
  ingestRoutes(app, engine);
  metricsRoutes(app, engine);
  dashboardRoutes(app, engine);
  resource(app, '/v1/openapi.json', { GET: { schema: { hide: true } as never, handler: async () => app.swagger() } });
  drain.drain();
  return app;
}
