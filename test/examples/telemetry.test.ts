import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { TaskContext } from '../../src/index.js';
import { loadLambdaModules } from '../../src/worker/lambda-loader.js';
import { onCleanup, startConveyor, tempDir, until } from '../helpers.js';

const MODULE = fileURLToPath(new URL('../../examples/telemetry-to-s3/lambdas.mjs', import.meta.url));
const ENV = ['BUCKET_DIR', 'S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'TELEMETRY_PREFIX'];
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));

afterEach(() => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

function ctxOf(id: string, attempt = 1): TaskContext {
  const log = { info() {}, warn() {}, error() {} };
  return {
    task: { id, lambda: 'telemetry', collection: null, attempt, tries: attempt, maxAttempts: 8, key: null, priority: 0 },
    signal: new AbortController().signal,
    heartbeat: async () => {},
    log,
  };
}

describe('examples/telemetry-to-s3', () => {
  it('stores each ingested payload as one object named by its task id (filesystem bucket)', async () => {
    const bucket = tempDir('telemetry-bucket-');
    process.env.BUCKET_DIR = bucket;
    const lambdas = await loadLambdaModules([MODULE]);
    expect(lambdas.map((l) => l.name)).toEqual(['telemetry']);
    const c = await startConveyor({ lambdas });
    const url = await c.listen({ port: 0 });
    const data = Array.from({ length: 30 }, (_, i) => ({ device: `d${i % 3}`, seq: i, temp: 20 + i / 10 }));
    const res = await fetch(`${url}/v1/ingest/telemetry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'device-token', version: '1.0', data }),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 30 });

    const { tasks } = await (await fetch(`${url}/v1/tasks?lambda=telemetry&limit=100`)).json();
    expect(tasks).toHaveLength(30);
    const done = await Promise.all(tasks.map((t: { id: string }) => c.waitFor(t.id)));
    expect(done.every((t) => t.state === 'SUCCESS')).toBe(true);

    const dir = join(bucket, 'telemetry');
    const files = readdirSync(dir).sort();
    expect(files).toEqual(tasks.map((t: { id: string }) => `${t.id}.json`).sort());
    for (const t of done) {
      expect(JSON.parse(readFileSync(join(dir, `${t.id}.json`), 'utf8'))).toEqual(t.payload);
      expect(t.result).toEqual({ stored: join(dir, `${t.id}.json`), bytes: JSON.stringify(t.payload).length });
    }
    expect(new Set(done.map((t) => (t.payload as { seq: number }).seq))).toEqual(new Set(data.map((d) => d.seq)));
  });

  it('overwrites the object when a task runs again, instead of adding one', async () => {
    const bucket = tempDir('telemetry-bucket-');
    process.env.BUCKET_DIR = bucket;
    process.env.TELEMETRY_PREFIX = 'retry/';
    const [telemetry] = await loadLambdaModules([MODULE]);
    await telemetry.handler({ v: 1 }, ctxOf('01TESTTASK0000000000000000', 1));
    await telemetry.handler({ v: 1 }, ctxOf('01TESTTASK0000000000000000', 2));
    expect(readdirSync(join(bucket, 'retry'))).toEqual(['01TESTTASK0000000000000000.json']);
  });

  it('uploads with PutObject when S3_ENDPOINT is set', async () => {
    const puts: Array<{ method: string; url: string; type: string | undefined; auth: string | undefined; body: string }> = [];
    const s3 = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        puts.push({
          method: req.method ?? '',
          url: req.url ?? '',
          type: req.headers['content-type'],
          auth: req.headers.authorization,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.writeHead(200, { etag: '"0"' }).end();
      });
    });
    await new Promise<void>((r) => s3.listen(0, '127.0.0.1', r));
    onCleanup(() => new Promise<void>((r) => s3.close(() => r())));
    process.env.S3_ENDPOINT = `http://127.0.0.1:${(s3.address() as AddressInfo).port}`;
    process.env.S3_BUCKET = 'metrics';
    process.env.S3_ACCESS_KEY_ID = 'test-key';
    process.env.S3_SECRET_ACCESS_KEY = 'test-secret';
    const [telemetry] = await loadLambdaModules([MODULE]);
    const out = await telemetry.handler({ device: 'd1', temp: 21.5 }, ctxOf('01TESTTASK0000000000000001'));
    expect(out).toEqual({
      stored: 's3://metrics/telemetry/01TESTTASK0000000000000001.json',
      bytes: JSON.stringify({ device: 'd1', temp: 21.5 }).length,
    });
    await until(() => puts.length === 1, 5000, 'the PUT');
    expect(puts[0]).toMatchObject({
      method: 'PUT',
      url: expect.stringMatching(/^\/metrics\/telemetry\/01TESTTASK0000000000000001\.json/),
      type: 'application/json',
      auth: expect.stringMatching(/^AWS4-HMAC-SHA256 Credential=test-key\//),
    });
    expect(JSON.parse(puts[0].body)).toEqual({ device: 'd1', temp: 21.5 });
  });
});
