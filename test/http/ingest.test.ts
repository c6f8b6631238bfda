import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { serverOptionsFromEnv } from '../../src/config/env.js';
import { compileServerOptions } from '../../src/config/options.js';
import type { Conveyor, ConveyorOptions, LambdaDefinition } from '../../src/index.js';
import { startConveyor, until } from '../helpers.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
}

/** POST through node:http, so a body can be raw bytes or a stream; a reset after the answer still counts the answer. */
function post(url: string, path: string, body: string | Buffer | Readable, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered: Reply | null = null;
    const req = httpRequest(
      new URL(path, url),
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', () => (answered ? resolve(answered) : undefined));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          answered = { status: res.statusCode ?? 0, headers: res.headers, json: text ? JSON.parse(text) : null };
          resolve(answered);
        });
      },
    );
    req.on('error', (err) => (answered ? resolve(answered) : reject(err)));
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
}

const json = (v: unknown) => JSON.stringify(v);

/** A lambda that counts each payload it runs, by the payload's `n`. */
function counter(name = 'sink') {
  const runs = new Map<number, number>();
  const lambda: LambdaDefinition = {
    name,
    handler: async (p: { n: number }) => {
      runs.set(p.n, (runs.get(p.n) ?? 0) + 1);
      return null;
    },
  };
  return { lambda, runs };
}

async function serve(opts: ConveyorOptions & { bodyLimit?: number } = {}) {
  const { bodyLimit, ...rest } = opts;
  const sink = counter();
  const c = await startConveyor({ lambdas: [sink.lambda], concurrency: 50, ...rest });
  const url = await c.listen({ port: 0, bodyLimit });
  return { c, url, runs: sink.runs };
}

const taskCount = (c: Conveyor) => c.engine.store.read((o) => o.q.taskOpenCount());

describe('POST /v1/ingest/:lambda through a real socket', () => {
  it('answers 202 {accepted} once every payload is a committed task, and runs each payload once', async () => {
    const { c, url, runs } = await serve();
    const data = Array.from({ length: 25 }, (_, n) => ({ n, pad: 'x'.repeat(50) }));
    const r = await post(url, '/v1/ingest/sink', json({ token: 't', version: 2, data }));
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ accepted: 25 });
    // durable before acknowledged: the rows exist when the 202 arrives
    const listed = await fetch(`${url}/v1/tasks?lambda=sink&limit=100`).then((x) => x.json());
    expect(listed.tasks).toHaveLength(25);
    expect(listed.tasks.map((t: { payload: { n: number } }) => t.payload.n).sort((a: number, b: number) => a - b)).toEqual(
      data.map((d) => d.n),
    );
    await until(() => runs.size === 25, 10_000, 'all payloads to run');
    await until(async () => (await taskCount(c)) === 0, 10_000, 'all tasks to end');
    expect([...runs.values()].every((k) => k === 1)).toBe(true);
    expect(c.engine.ingest.stats()).toMatchObject({ depth: 0, acceptedOffers: 1, acceptedItems: 25, writtenItems: 25, shedOffers: 0 });
    // version as a string, no token: also fine; payloads are kept as sent (any JSON value)
    const r2 = await post(url, '/v1/ingest/sink', json({ version: 'v1', data: [{ n: 100 }, { n: 101, deep: [[[{ a: null }]]] }] }));
    expect(r2.status).toBe(202);
    await until(() => runs.size === 27, 10_000, 'the second request to run');
  });

  it('answers bad input with a precise 4xx and a JSON error body', async () => {
    const { c, url } = await serve({ bodyLimit: 4096, batchMax: 50, maxPayloadBytes: 1000 });
    const cases: Array<[string, string | Buffer, number, string, RegExp?, Record<string, string>?]> = [
      ['/v1/ingest/sink', '{"data": [1,', 400, 'invalid_json'],
      ['/v1/ingest/sink', '', 400, 'invalid_json'],
      ['/v1/ingest/sink', '[1, 2]', 400, 'validation_failed', /body must be an object/],
      ['/v1/ingest/sink', '"text"', 400, 'validation_failed', /body must be an object/],
      ['/v1/ingest/sink', json({ token: 't' }), 400, 'validation_failed', /"data"/],
      ['/v1/ingest/sink', json({ data: { n: 1 } }), 400, 'validation_failed', /data must be an array/],
      ['/v1/ingest/sink', json({ data: [] }), 400, 'validation_failed', /at least one/],
      ['/v1/ingest/sink', json({ data: Array.from({ length: 51 }, (_, n) => n) }), 400, 'batch_too_large', /51 payloads.*50/],
      ['/v1/ingest/sink', json({ token: 5, data: [1] }), 400, 'validation_failed', /token must be a string/],
      ['/v1/ingest/sink', json({ version: { v: 1 }, data: [1] }), 400, 'validation_failed', /version must be/],
      ['/v1/ingest/sink', json({ version: true, data: [1] }), 400, 'validation_failed', /version must be/],
      ['/v1/ingest/sink', json({ dat: [1] }), 400, 'validation_failed', /unknown field "dat" \(did you mean "data"\?\)/],
      ['/v1/ingest/sink', json({ data: [1, { big: 'x'.repeat(1200) }] }), 400, 'validation_failed', /data\[1\]: payload is \d+ bytes/],
      // 410 characters, 1,210 bytes of UTF-8: the limit counts bytes
      ['/v1/ingest/sink', json({ data: [{ cjk: '漢'.repeat(400) }] }), 400, 'validation_failed', /data\[0\]: payload is 1210 bytes/],
      ['/v1/ingest/nope', json({ data: [1] }), 404, 'unknown_lambda', /nope/],
      ['/v1/ingest/sink', json({ data: ['x'.repeat(5000)] }), 413, 'body_too_large'],
      ['/v1/ingest/sink', 'data=1', 415, 'unsupported_media_type', undefined, { 'content-type': 'application/x-www-form-urlencoded' }],
    ];
    for (const [path, body, status, code, message, headers] of cases) {
      const r = await post(url, path, body, headers);
      expect({ body: String(body).slice(0, 60), status: r.status, code: r.json?.error?.code }).toEqual({
        body: String(body).slice(0, 60),
        status,
        code,
      });
      expect(typeof r.json.error.message).toBe('string');
      if (message) expect(r.json.error.message).toMatch(message);
    }
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const r = await fetch(`${url}/v1/ingest/sink`, { method });
      expect(r.status).toBe(405);
      expect(r.headers.get('allow')).toBe('POST');
      expect((await r.json()).error.code).toBe('method_not_allowed');
    }
    // nothing from a refused request was created (all or nothing)
    expect(await taskCount(c)).toBe(0);
    expect(c.engine.ingest.stats().acceptedItems).toBe(0);
  });

  it('sheds load with 429 queue_full and Retry-After at once when the queue is full, and runs every accepted payload', async () => {
    const { c, url, runs } = await serve({ maxQueue: 20, ingestWriters: 1 });
    // A slow store: the writers' inserts wait for a gate, so accepted payloads stay in the queue.
    const engine = c.engine;
    const insert = engine.insertPrepared.bind(engine);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    engine.insertPrepared = async (tasks) => {
      await gate;
      return insert(tasks);
    };
    const body = (k: number) => json({ data: Array.from({ length: 5 }, (_, j) => ({ n: k * 5 + j })) });
    const pending = Array.from({ length: 10 }, (_, k) => post(url, '/v1/ingest/sink', body(k)));
    try {
      // 4 requests of 5 fill the 20 places; the other 6 are refused without waiting for the store
      const refused = await until(() => (engine.ingest.stats().shedOffers === 6 ? engine.ingest.stats() : null), 10_000, 'six refusals');
      expect(refused).toMatchObject({ depth: 20, acceptedOffers: 4, acceptedItems: 20 });
      // a request arriving now is refused before its body is read
      const early = await post(url, '/v1/ingest/sink', body(99));
      expect(early.status).toBe(429);
      expect(early.headers['retry-after']).toBe('1');
      expect(early.json.error.code).toBe('queue_full');
      // what metrics read
      expect([engine.ingest.queueDepth(), engine.ingest.shedTotal()]).toEqual([20, 7]);
    } finally {
      open();
    }
    const replies = await Promise.all(pending);
    const byStatus = replies.map((r) => r.status).sort();
    expect(byStatus).toEqual([202, 202, 202, 202, 429, 429, 429, 429, 429, 429]);
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(r.headers['retry-after']).toBe('1');
      expect(r.json.error).toMatchObject({ code: 'queue_full', message: expect.stringMatching(/maxQueue/) });
    }
    const accepted = replies.filter((r) => r.status === 202).reduce((s, r) => s + r.json.accepted, 0);
    expect(accepted).toBe(20);
    await until(() => runs.size === 20, 10_000, 'accepted payloads to run');
    await until(async () => (await taskCount(c)) === 0, 10_000, 'all tasks to end');
    expect([...runs.values()].every((k) => k === 1)).toBe(true);
    // the queue has room again
    expect((await post(url, '/v1/ingest/sink', body(50))).status).toBe(202);
  });

  it('survives hostile bodies with a 4xx, never a 5xx, and stays healthy', async () => {
    const { c, url, runs } = await serve({ bodyLimit: 1024 * 1024 });
    const deep = 100_000;
    const hostile: Array<[string, string | Buffer | Readable, number, string?]> = [
      ['deep array payload', `{"data":[${'['.repeat(deep)}${']'.repeat(deep)}]}`, 400, 'validation_failed'],
      ['deep object payload', `{"data":[${'{"a":'.repeat(deep)}1${'}'.repeat(deep)}]}`, 400, 'validation_failed'],
      ['deep token', `{"token":${'['.repeat(deep)}${']'.repeat(deep)},"data":[1]}`, 400, 'validation_failed'],
      ['deep unknown field', `{"x":${'['.repeat(deep)}${']'.repeat(deep)},"data":[1]}`, 400, 'validation_failed'],
      ['__proto__ in a payload', '{"data":[{"__proto__":{"polluted":1}}]}', 400, 'invalid_json'],
      ['escaped __proto__', '{"data":[{"\\u005f_proto__":{"polluted":1}}]}', 400, 'invalid_json'],
      ['__proto__ at the top', '{"__proto__":{"data":[1]},"data":[1]}', 400, 'invalid_json'],
      ['constructor.prototype', '{"data":[{"constructor":{"prototype":{"polluted":1}}}]}', 400, 'invalid_json'],
      [
        'invalid UTF-8',
        Buffer.concat([Buffer.from('{"data":[{"s":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')]),
        400,
        'invalid_json',
      ],
      [
        'UTF-16 surrogate bytes',
        Buffer.concat([Buffer.from('{"data":["'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"]}')]),
        400,
        'invalid_json',
      ],
      ['NUL bytes', Buffer.from('{"data":[\u0000]}'), 400, 'invalid_json'],
    ];
    for (const [what, body, status, code] of hostile) {
      const r = await post(url, '/v1/ingest/sink', body);
      expect({ what, status: r.status, code: r.json?.error?.code }).toEqual({ what, status, code });
    }
    // The server answers 413 as soon as it knows the body is too large, and reads the rest
    // of it without keeping it (src/http/linger.ts): the client's upload never meets a reset.
    const oversize: Array<[string, Buffer | Readable]> = [
      ['50 MB with a Content-Length', Buffer.alloc(50 * 1024 * 1024, 0x20)],
      ['50 MB chunked', Readable.from(chunks(50, Buffer.alloc(1024 * 1024, 0x5b)))],
    ];
    for (const [what, body] of oversize) {
      const r = await post(url, '/v1/ingest/sink', body);
      expect({ what, status: r.status, code: r.json?.error?.code }).toEqual({ what, status: 413, code: 'body_too_large' });
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // lone surrogates written as JSON escapes are valid JSON text: kept as sent
    const esc = await post(url, '/v1/ingest/sink', '{"data":[{"n":7,"s":"\\ud800"}]}');
    expect(esc.status).toBe(202);
    await until(() => runs.has(7), 10_000, 'the escaped payload to run');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(c.engine.ingest.stats().depth).toBe(0);
  });

  it('takes ~2000 concurrent requests: only 202 or 429, every accepted payload runs once', async () => {
    const { c, url, runs } = await serve({ maxQueue: 500 });
    const N = 2000;
    const replies = await Promise.all(
      Array.from({ length: N }, (_, k) =>
        fetch(`${url}/v1/ingest/sink`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: json({ token: 't', data: [{ n: k }] }),
        }).then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() })),
      ),
    );
    const statuses = new Set(replies.map((r) => r.status));
    expect([...statuses].every((s) => s === 202 || s === 429)).toBe(true);
    for (const r of replies) if (r.status === 429) expect(r.retryAfter).toBe('1');
    const accepted = replies.filter((r) => r.status === 202).length;
    expect(accepted).toBeGreaterThan(0);
    expect(c.engine.ingest.stats()).toMatchObject({ acceptedItems: accepted, shedOffers: N - accepted, depth: 0 });
    await until(() => runs.size === accepted, 20_000, 'accepted payloads to run');
    await until(async () => (await taskCount(c)) === 0, 20_000, 'all tasks to end');
    expect([...runs.values()].every((k) => k === 1)).toBe(true);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('commits every accepted payload before the queue closes, and refuses new ones', async () => {
    const { c, url } = await serve({ worker: false });
    const engine = c.engine;
    const insert = engine.insertPrepared.bind(engine);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    engine.insertPrepared = async (tasks) => {
      await gate;
      return insert(tasks);
    };
    const pending = Promise.all(
      Array.from({ length: 20 }, (_, k) => post(url, '/v1/ingest/sink', json({ data: [{ n: k }, { n: k + 100 }] }))),
    );
    let closing: Promise<unknown> = Promise.resolve();
    try {
      await until(() => engine.ingest.stats().acceptedOffers === 20, 5000, 'all requests queued');
      let closed = false;
      closing = engine.ingest.close().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 50));
      expect(closed).toBe(false);
      expect((await post(url, '/v1/ingest/sink', json({ data: [1] }))).status).toBe(503);
    } finally {
      open();
    }
    await closing;
    expect(engine.ingest.stats()).toMatchObject({ depth: 0, acceptedItems: 40, writtenItems: 40 });
    expect((await pending).map((r) => r.status)).toEqual(new Array(20).fill(202));
    expect(await taskCount(c)).toBe(40);
  });
});

describe('ingest route with a token', () => {
  it('requires the bearer token and lists the route in the OpenAPI document', async () => {
    const c = await startConveyor({ lambdas: [counter().lambda] });
    const url = await c.listen({ port: 0, token: 's3cret' });
    const body = json({ data: [{ n: 1 }] });
    const denied = await post(url, '/v1/ingest/sink', body);
    expect(denied.status).toBe(401);
    expect(denied.json.error.code).toBe('unauthorized');
    expect((await post(url, '/v1/ingest/sink', body, { authorization: 'Bearer s3cret' })).status).toBe(202);
    const spec = await (await fetch(`${url}/v1/openapi.json`, { headers: { authorization: 'Bearer s3cret' } })).json();
    expect(spec.paths['/v1/ingest/{lambda}'].post.tags).toEqual(['ingest']);
  });
});

describe('ingest settings', () => {
  it('come from CONVEYOR_MAX_QUEUE and CONVEYOR_INGEST_WRITERS, with bounds', () => {
    const env = serverOptionsFromEnv({ CONVEYOR_MAX_QUEUE: '5000', CONVEYOR_INGEST_WRITERS: '3' });
    expect(env).toEqual({ maxQueue: 5000, ingestWriters: 3 });
    expect(compileServerOptions(env)).toMatchObject({ maxQueue: 5000, ingestWriters: 3 });
    expect(compileServerOptions({})).toMatchObject({ maxQueue: 10_000, ingestWriters: 2 });
    expect(() => compileServerOptions({ maxQueue: 0 })).toThrow(/maxQueue must be an integer from 1/);
    expect(() => compileServerOptions({ ingestWriters: 65 })).toThrow(/ingestWriters must be an integer from 1 to 64/);
    expect(() => serverOptionsFromEnv({ CONVEYOR_MAX_QUEUE: 'lots' })).toThrow(/CONVEYOR_MAX_QUEUE must be a number/);
  });
});

function* chunks(n: number, chunk: Buffer): Generator<Buffer> {
  for (let i = 0; i < n; i++) yield chunk;
}
