import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConveyorError } from '../errors.js';
import { resource } from '../http/route.js';
import type { Engine } from '../server/engine.js';
import { type LiveClient, LiveFeed, type LiveFeedOptions } from './live-feed.js';
import { DASHBOARD_HEADERS, DASHBOARD_PREFIX, loadAssets } from './static.js';

/**
 * The dashboard: its static files at `/` and under `/dashboard/` (public: they hold no data,
 * and a browser cannot add a header to a page load), and the live feed at `GET /v1/live`
 * (token like every /v1 route; the page reads it with fetch, which can send the header,
 * rather than EventSource, which cannot).
 */
export function dashboardRoutes(app: FastifyInstance, engine: Engine, opts: LiveFeedOptions = {}): LiveFeed {
  const assets = loadAssets();
  const serve = async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0];
    const asset = assets.get(path);
    if (!asset) throw new ConveyorError('not_found', `no dashboard file ${path}`);
    reply.headers(DASHBOARD_HEADERS).header('etag', asset.etag);
    if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.type(asset.type).send(asset.body);
  };
  const hidden = { hide: true } as never;
  resource(app, '/', { GET: { schema: hidden, handler: serve } });
  resource(app, `${DASHBOARD_PREFIX}*`, { GET: { schema: hidden, handler: serve } });

  const feed = new LiveFeed(engine, opts);
  feed.start();
  // Before the server closes: end the streams so close does not wait for them.
  app.addHook('preClose', async () => feed.stop());
  resource(app, '/v1/live', {
    GET: {
      schema: {
        summary: 'Live feed for the dashboard: a JSON snapshot every second as text/event-stream (read it with fetch)',
        tags: ['ops'],
      },
      handler: (req, reply) => {
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
          'x-content-type-options': 'nosniff',
        });
        // A HEAD (Fastify answers it with the GET handler) has no body to stream: subscribed, it
        // would hold its connection open, and a keep-alive client's next request behind it.
        if (req.method === 'HEAD') return void res.end();
        res.flushHeaders();
        let blocked = false;
        const client: LiveClient = {
          send(text) {
            // A slow reader misses ticks instead of growing our buffer: skip until it drains.
            if (blocked || res.writableEnded) return;
            if (!res.write(text)) {
              blocked = true;
              res.once('drain', () => {
                blocked = false;
              });
            }
          },
          end() {
            if (!res.writableEnded) res.end();
          },
        };
        const unsubscribe = feed.subscribe(client);
        res.on('close', unsubscribe);
        req.raw.on('error', unsubscribe);
      },
    },
  });
  return feed;
}
