import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { ConveyorError } from '../../errors.js';
import { tasksFrameJson } from '../../protocol/codec.js';
import { parseWorkerFrame } from '../../protocol/validate.js';
import type { WorkerLink } from '../../server/dispatcher.js';
import type { Engine } from '../../server/engine.js';
import { sendError } from '../errors.js';
import { resource } from '../route.js';

/** Largest frame a worker may send: a report of a full buffer of big results stays under it. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * The worker protocol endpoint (docs/protocol.md): one WebSocket per worker, JSON frames.
 * The bearer token is checked on the upgrade request like any /v1 route. A connection that
 * sends nothing for two lease periods is closed (its leases have expired by then).
 */
export async function workerRoutes(app: FastifyInstance, engine: Engine): Promise<void> {
  resource(app, '/v1/workers/connect', {
    GET: {
      schema: { summary: 'Worker protocol (WebSocket)', tags: ['workers'], hide: true } as never,
      // A plain GET (no upgrade) gets an answer in the error shape, not an empty 404.
      handler: async (_req, reply) =>
        sendError(reply, new ConveyorError('upgrade_required', 'GET /v1/workers/connect takes a WebSocket upgrade (docs/protocol.md)')),
      wsHandler: (socket: WebSocket) => {
        const link: WorkerLink = {
          sendTasks: (rows) => socket.send(tasksFrameJson(rows)),
          send: (frame) => socket.send(JSON.stringify(frame)),
          close: (code, reason) => socket.close(code, reason),
        };
        const side = engine.connectWorker(link);
        const clock = engine.config.clock;
        let lastFrameAt = clock.now();
        // Longer than a lease: a worker that stalled past its lease (GC, a frozen VM) still gets its
        // late reports to the server, which refuses them by name instead of losing them in a reset.
        const idleMs = Math.max(engine.config.heartbeatMs * 3, engine.config.leaseMs * 2) + 1000;
        const watchdog = setInterval(() => {
          if (clock.now() - lastFrameAt > idleMs) socket.terminate();
        }, engine.config.heartbeatMs);
        watchdog.unref();
        socket.on('message', (data, isBinary) => {
          lastFrameAt = clock.now();
          try {
            if (isBinary) throw new ConveyorError('validation_failed', 'frames are JSON text, not binary');
            side.onFrame(parseWorkerFrame(data.toString()));
          } catch (err) {
            const e = err instanceof ConveyorError ? err : new ConveyorError('internal_error');
            if (!(err instanceof ConveyorError)) engine.log.error({ err }, 'worker frame failed');
            socket.send(JSON.stringify({ type: 'error', error: { code: e.code, message: e.message } }));
          }
        });
        socket.on('close', () => {
          clearInterval(watchdog);
          side.onClose();
        });
        socket.on('error', (err) => engine.log.warn({ err }, 'worker socket error'));
      },
    },
  });
}
