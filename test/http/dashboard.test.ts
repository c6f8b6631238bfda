import { connect } from 'node:net';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { LatencyWindow } from '../../src/dashboard/latency-window.js';
import type { LiveSnapshot } from '../../src/dashboard/live-feed.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
import type { LambdaDefinition } from '../../src/index.js';
import { onCleanup, startConveyor, until } from '../helpers.js';

const lambdas: LambdaDefinition[] = [{ name: 'echo', handler: async (p) => p }];

/** Reads `data:` frames of a text/event-stream response as they come. */
function frames(res: Response) {
  const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  return {
    async next(): Promise<LiveSnapshot | null> {
      for (;;) {
        const cut = buf.indexOf('\n\n');
        if (cut >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          expect(frame.startsWith('data: ')).toBe(true);
          return JSON.parse(frame.slice(6));
        }
        const { value, done } = await reader.read();
        if (done) return null;
        buf += value;
      }
    },
    cancel: () => reader.cancel().catch(() => undefined),
  };
}

describe('dashboard files', () => {
  it('serves the shell and assets with their types and a strict CSP, without the token', async () => {
    const c = await startConveyor({ lambdas });
    const url = await c.listen({ port: 0, token: 's3cret' });
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy') ?? '';
    for (const d of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "object-src 'none'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ]) {
      expect(csp).toContain(d);
    }
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline scripts
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/); // no inline styles or handlers

    const types: Record<string, string> = {
      '/dashboard/app.js': 'text/javascript; charset=utf-8',
      '/dashboard/pages/overview.js': 'text/javascript; charset=utf-8',
      '/dashboard/style.css': 'text/css; charset=utf-8',
      '/dashboard/favicon.svg': 'image/svg+xml',
      '/dashboard/vendor/uPlot.iife.min.js': 'text/javascript; charset=utf-8',
      '/dashboard/vendor/uPlot.min.css': 'text/css; charset=utf-8',
    };
    for (const [path, type] of Object.entries(types)) {
      const res = await fetch(url + path);
      expect([path, res.status, res.headers.get('content-type')]).toEqual([path, 200, type]);
      const again = await fetch(url + path, { headers: { 'if-none-match': res.headers.get('etag') as string } });
      expect(again.status).toBe(304);
    }
    const missing = await fetch(`${url}/dashboard/nope.js`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('not_found');
    expect((await fetch(`${url}/dashboard/app.js`, { method: 'POST' })).status).toBe(405);
  });

  it('keeps data behind the token: /v1/live refuses without it; unknown /v1 routes still answer 404', async () => {
    const c = await startConveyor({ lambdas });
    const url = await c.listen({ port: 0, token: 's3cret' });
    expect((await fetch(`${url}/v1/live`)).status).toBe(401);
    const unknown = await fetch(`${url}/v1/nothing-here`, { headers: { authorization: 'Bearer s3cret' } });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.code).toBe('not_found');
    expect((await fetch(`${url}/v1/nothing-here`)).status).toBe(401);
  });
});

describe('GET /v1/live', () => {
  it('streams a snapshot with history first, then one per tick with counts and latencies', async () => {
    const c = await startConveyor({ lambdas });
    const app = Fastify({ forceCloseConnections: true });
    const feed = dashboardRoutes(app, c.engine, { tickMs: 50 });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    onCleanup(() => app.close());
    const res = await fetch(`${url}/v1/live`);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const stream = frames(res);
    const first = await stream.next();
    expect(Array.isArray(first?.history)).toBe(true);
    expect(first?.lambdas.map((l) => l.name)).toEqual(['echo']);
    expect(first?.workers).toHaveLength(1);

    const tasks = await Promise.all([1, 2, 3].map((n) => c.submit('echo', n)));
    for (const t of tasks) await c.waitFor(t.id);
    let succeeded = 0;
    let last: LiveSnapshot | null = null;
    const deadline = Date.now() + 10_000;
    while (succeeded < 3 && Date.now() < deadline) {
      last = await stream.next();
      expect(last?.history).toBeUndefined();
      // a tick closed while the previous snapshot was reading counts comes as `missed`
      for (const p of [...(last?.missed ?? []), last?.point]) succeeded += p?.totals.succeeded ?? 0;
    }
    expect(succeeded).toBe(3);
    expect(last?.point.runMs?.count).toBeGreaterThanOrEqual(1);
    expect(last?.point.lambdas.echo).toBeDefined();
    // Counts by state come from the engine's cache (up to 2 s old).
    while (last?.lambdas[0].counts.SUCCESS !== 3 && Date.now() < deadline + 5000) last = await stream.next();
    expect(last?.lambdas[0].counts.SUCCESS).toBe(3);

    expect(feed.clientCount).toBe(1);
    await stream.cancel();
    await until(() => feed.clientCount === 0, 5000, 'the stream to be dropped');
  });

  it('sends a tick that closed while the previous snapshot was still reading counts with the next one', async () => {
    const c = await startConveyor({ lambdas });
    const app = Fastify({ forceCloseConnections: true });
    const feed = dashboardRoutes(app, c.engine, { tickMs: 3_600_000 }); // ticks by hand
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    onCleanup(() => app.close());
    const stream = frames(await fetch(`${url}/v1/live`));
    expect((await stream.next())?.history).toBeDefined();

    // The count read of the next snapshot hangs until released (a slow store).
    const read = c.engine.lambdas.bind(c.engine);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    c.engine.lambdas = () => held.then(read);
    onCleanup(() => {
      c.engine.lambdas = read;
      release();
    });
    feed.tick(); // its snapshot waits for the read
    const tasks = await Promise.all([1, 2, 3].map((n) => c.submit('echo', n)));
    for (const t of tasks) await c.waitFor(t.id);
    const skipped = feed.tick(); // closes the successes while the first snapshot still reads
    expect(skipped.totals.succeeded).toBe(3);
    release();
    const first = await stream.next();
    expect(first?.point.totals.succeeded).toBe(0);
    expect(first?.missed).toBeUndefined();
    feed.tick();
    const next = await stream.next();
    expect(next?.missed?.map((p) => [p.at, p.totals.succeeded])).toEqual([[skipped.at, 3]]);
    expect(next?.point.totals.succeeded).toBe(0);
    await stream.cancel();
  });

  it('sends the newest history that fits in historyBytes, so a first snapshot stays readable however many lambdas are busy', async () => {
    const c = await startConveyor({ lambdas });
    const app = Fastify({ forceCloseConnections: true });
    const feed = dashboardRoutes(app, c.engine, { tickMs: 3_600_000, historyBytes: 2000 }); // ticks by hand
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    onCleanup(() => app.close());
    const ticks = Array.from({ length: 20 }, () => feed.tick());
    const stream = frames(await fetch(`${url}/v1/live`));
    const first = await stream.next();
    const history = first?.history ?? [];
    expect(history.length).toBeGreaterThan(0);
    expect(history.length).toBeLessThan(ticks.length);
    expect(JSON.stringify(history).length).toBeLessThanOrEqual(2000);
    expect(history.map((p) => p.at)).toEqual(ticks.slice(-history.length).map((p) => p.at));
    await stream.cancel();
  });

  it('answers a HEAD with the headers alone, and subscribes nothing', async () => {
    const c = await startConveyor({ lambdas });
    const app = Fastify({ forceCloseConnections: true });
    const feed = dashboardRoutes(app, c.engine, { tickMs: 50 });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    onCleanup(() => app.close());
    // On one keep-alive connection, a HEAD of the feed and then a page: the page is answered
    // only once the HEAD's response has ended.
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    onCleanup(() => void socket.destroy());
    let got = '';
    socket.on('data', (d) => (got += d));
    socket.write('HEAD /v1/live HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => (got.match(/HTTP\/1\.1 200/g) ?? []).length === 2, 2000, 'both answers');
    expect(got).toContain('text/event-stream');
    expect(got).toContain('text/html');
    expect(feed.clientCount).toBe(0);
  });

  it('ends open streams when the server closes', async () => {
    const c = await startConveyor({ lambdas });
    const url = await c.listen({ port: 0 });
    const res = await fetch(`${url}/v1/live`);
    const stream = frames(res);
    expect(await stream.next()).not.toBeNull();
    const closing = c.close();
    let end: LiveSnapshot | null | undefined;
    do end = await stream.next().catch(() => null);
    while (end !== null);
    await closing;
  });
});

describe('LatencyWindow', () => {
  it('answers percentiles within 10% and forgets slots that rotate out', () => {
    const w = new LatencyWindow(3);
    expect(w.percentiles()).toBeNull();
    for (let ms = 1; ms <= 1000; ms++) w.add(ms);
    const p = w.percentiles();
    expect(p?.count).toBe(1000);
    expect(Math.abs((p?.p50 ?? 0) - 500) / 500).toBeLessThan(0.1);
    expect(Math.abs((p?.p95 ?? 0) - 950) / 950).toBeLessThan(0.1);
    expect(Math.abs((p?.p99 ?? 0) - 990) / 990).toBeLessThan(0.1);
    w.rotate();
    w.add(5);
    expect(w.percentiles()?.count).toBe(1001);
    w.rotate();
    w.rotate();
    expect(w.percentiles()?.count).toBe(1);
    w.rotate();
    expect(w.percentiles()).toBeNull();
  });
});
