import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { LambdaDefinition } from '../../src/index.js';
import { startConveyor } from '../helpers.js';

const lambdas: LambdaDefinition[] = [
  { name: 'echo', handler: async (p) => ({ echo: p }) },
  { name: 'hold', handler: (_p, ctx) => new Promise((r) => ctx.signal.addEventListener('abort', r)) },
];

async function serve(opts: { token?: string; bodyLimit?: number } = {}) {
  const c = await startConveyor({ lambdas, batchMax: 50 });
  const url = await c.listen({ port: 0, ...opts });
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' || body instanceof Uint8Array ? (body as BodyInit) : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : null };
  };
  return { c, url, call };
}

/** Sends `text` as it is on a new connection; the status and JSON body of the answer. */
function raw(url: string, text: string): Promise<{ status: number; json: { error?: { code: string; message: string } } }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(text));
    let got = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      got += d;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, body] = [got.slice(0, got.indexOf('\r\n\r\n')), got.slice(got.indexOf('\r\n\r\n') + 4)];
      resolve({ status: Number(head.split(' ')[1]), json: JSON.parse(body) });
    });
  });
}

describe('HTTP API through a real socket', () => {
  it('submits, reads, lists and runs tasks', async () => {
    const { c, call } = await serve();
    const created = await call('POST', '/v1/tasks', { lambda: 'echo', payload: { a: 1 }, priority: 3 });
    expect(created.status).toBe(201);
    const task = created.json.task;
    expect(task).toMatchObject({ lambda: 'echo', payload: { a: 1 }, priority: 3 });
    // Answered as written: ready, or already handed to the idle worker by the insert.
    expect([
      { state: 'ENQUEUED', attempt: 0 },
      { state: 'CLAIMED', attempt: 1 },
    ]).toContainEqual({ state: task.state, attempt: task.attempt });
    expect(typeof task.createdAt).toBe('string');
    await c.waitFor(task.id);
    const got = await call('GET', `/v1/tasks/${task.id}`);
    expect(got.status).toBe(200);
    expect(got.json.task).toMatchObject({ state: 'SUCCESS', result: { echo: { a: 1 } } });
    expect(got.json.task.attempts).toHaveLength(1);

    const again = await call('POST', '/v1/tasks', { lambda: 'echo', payload: 1, idempotencyKey: 'k' });
    const dup = await call('POST', '/v1/tasks', { lambda: 'echo', payload: 2, idempotencyKey: 'k' });
    expect([again.status, dup.status]).toEqual([201, 200]);
    expect(dup.json.task.id).toBe(again.json.task.id);

    const batch = await call('POST', '/v1/tasks/batch', { tasks: [1, 2, 3].map((n) => ({ lambda: 'echo', payload: n, key: 'b' })) });
    expect(batch.status).toBe(201);
    expect(batch.json.tasks).toHaveLength(3);

    const page1 = await call('GET', '/v1/tasks?key=b&limit=2');
    expect(page1.json.tasks.map((t: { payload: number }) => t.payload)).toEqual([3, 2]);
    const page2 = await call('GET', `/v1/tasks?key=b&limit=2&cursor=${page1.json.nextCursor}`);
    expect(page2.json.tasks.map((t: { payload: number }) => t.payload)).toEqual([1]);
    expect(page2.json.nextCursor).toBeNull();
  });

  it('cancels, re-drives, pauses and resumes', async () => {
    const { c, call } = await serve();
    const later = (await call('POST', '/v1/tasks', { lambda: 'echo', delayMs: 60_000 })).json.task;
    const cancelled = await call('POST', `/v1/tasks/${later.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.json.task.state).toBe('CANCELLED');
    expect((await call('POST', `/v1/tasks/${later.id}/cancel`)).json.error.code).toBe('invalid_state');
    const listed = await call('GET', '/v1/tasks?state=CANCELLED');
    expect(listed.status).toBe(200);
    expect(listed.json.tasks.map((t: { id: string }) => t.id)).toEqual([later.id]);
    const redriven = await call('POST', `/v1/tasks/${later.id}/retry`);
    expect(redriven.status).toBe(200);
    await c.waitFor(later.id);
    const done = await call('POST', `/v1/tasks/${later.id}/retry`);
    expect(done.status).toBe(409);

    const running = (await call('POST', '/v1/tasks', { lambda: 'hold' })).json.task;
    for (let i = 0; i < 100 && (await c.get(running.id)).state !== 'PROCESSING'; i++) await new Promise((r) => setTimeout(r, 10));
    const refuse = await call('POST', `/v1/tasks/${running.id}/cancel`);
    expect(refuse.status).toBe(409);
    expect(refuse.json.error).toMatchObject({ code: 'invalid_state' });

    const paused = await call('POST', '/v1/lambdas/echo/pause', {});
    expect(paused.status).toBe(200);
    expect(paused.json.lambda).toMatchObject({ name: 'echo', paused: true });
    const coll = await call('POST', '/v1/lambdas/echo/pause', { collection: 'c1', mode: 'drop' });
    expect(coll.json.lambda.gates).toContainEqual({ collection: 'c1', mode: 'drop' });
    const resumed = await call('POST', '/v1/lambdas/echo/resume');
    expect(resumed.json.lambda.paused).toBe(false);
    const list = await call('GET', '/v1/lambdas');
    expect(list.json.lambdas.map((l: { name: string }) => l.name)).toEqual(['echo', 'hold']);
    expect(list.json.lambdas[0].workers).toBe(1);
    expect((await call('GET', '/healthz')).json).toEqual({ ok: true });
    const spec = await call('GET', '/v1/openapi.json');
    expect(spec.json.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.json.paths)).toContain('/v1/tasks/{id}/cancel');
  });

  it('answers bad input with a precise 4xx and a JSON error body', async () => {
    const { call } = await serve({ bodyLimit: 4096 });
    const cases: Array<[string, string, unknown, number, string, RegExp?, Record<string, string>?]> = [
      ['POST', '/v1/tasks', '{"lambda": "echo",', 400, 'invalid_json'],
      ['POST', '/v1/tasks', '', 400, 'invalid_json'],
      ['POST', '/v1/tasks', { lambda: 'nope' }, 404, 'unknown_lambda', /nope/],
      ['POST', '/v1/tasks', { lambda: 42 }, 400, 'validation_failed', /lambda must be string/],
      ['POST', '/v1/tasks', { lambda: 'echo', priority: 'high' }, 400, 'validation_failed', /priority must be integer/],
      ['POST', '/v1/tasks', { lambda: 'echo', maxAttempts: 0 }, 400, 'validation_failed', /maxAttempts must be >= 1/],
      ['POST', '/v1/tasks', { lambda: 'echo', runAt: 'soon' }, 400, 'validation_failed', /runAt/],
      [
        'POST',
        '/v1/tasks',
        { lambda: 'echo', runAt: -1 },
        400,
        'validation_failed',
        /runAt must be an ISO 8601 time or epoch milliseconds/,
      ],
      ['POST', '/v1/tasks', { lambda: 'echo', delay: 5 }, 400, 'validation_failed', /unknown field "delay"/],
      ['POST', '/v1/tasks', { payload: 1 }, 400, 'validation_failed', /lambda/],
      ['POST', '/v1/tasks', [1, 2], 400, 'validation_failed'],
      ['POST', '/v1/tasks', '{"lambda":"echo","payload":{"__proto__":{"x":1}}}', 400, 'invalid_json'],
      ['POST', '/v1/tasks', { lambda: 'echo', payload: 'x'.repeat(5000) }, 413, 'body_too_large'],
      // beyond what a Date can hold: refused, never stored (it could not be shown as a time)
      ['POST', '/v1/tasks', { lambda: 'echo', delayMs: 8.64e15 }, 400, 'validation_failed', /delayMs: the start time/],
      ['POST', '/v1/tasks', { lambda: 'echo', runAt: '+275760-09-14T00:00:00Z' }, 400, 'validation_failed', /runAt/],
      // days the calendar does not have: refused, not rolled over into the next month
      ['POST', '/v1/tasks', { lambda: 'echo', runAt: '2026-02-30T12:00:00Z' }, 400, 'validation_failed', /runAt must be an ISO 8601/],
      ['POST', '/v1/tasks', { lambda: 'echo', runAt: '2027-04-31' }, 400, 'validation_failed', /runAt/],
      ['POST', '/v1/tasks', { lambda: 'echo', runAt: '2027-02-29' }, 400, 'validation_failed', /runAt/],
      // half a surrogate pair is no character: a store would keep U+FFFD instead of what was sent
      ['POST', '/v1/tasks', { lambda: 'echo', key: 'k\ud800' }, 400, 'validation_failed', /key must not contain .*unpaired surrogates/],
      ['POST', '/v1/tasks', { lambda: 'echo', collection: 'c\udc00' }, 400, 'validation_failed', /collection .*unpaired surrogates/],
      ['POST', '/v1/tasks', { lambda: 'echo', idempotencyKey: '\udfff' }, 400, 'validation_failed', /idempotencyKey/],
      // NUL cannot be stored by PostgreSQL: refused on every store alike
      ['POST', '/v1/tasks', { lambda: 'echo', key: 'a\u0000b' }, 400, 'validation_failed', /key must not contain NUL/],
      ['POST', '/v1/tasks', { lambda: 'echo', dependsOn: ['a\u0000'] }, 400, 'validation_failed', /dependsOn\.0 must not contain NUL/],
      ['GET', '/v1/tasks?key=a%00b', undefined, 400, 'validation_failed', /NUL/],
      ['POST', '/v1/tasks/a%00b/cancel', undefined, 400, 'validation_failed', /NUL/],
      ['POST', '/v1/tasks', { lambda: 'echo', collection: '*' }, 400, 'validation_failed', /collection must not be "\*"/],
      ['POST', '/v1/lambdas/echo/pause', { collection: '*' }, 400, 'validation_failed', /collection/],
      ['POST', '/v1/tasks', '{"lambda":"echo"}', 415, 'unsupported_media_type', undefined, { 'content-type': 'text/plain' }],
      // JSON is UTF-8 (RFC 8259): another charset is refused, not read as UTF-8
      [
        'POST',
        '/v1/tasks',
        '{"lambda":"echo"}',
        415,
        'unsupported_media_type',
        /charset=latin1/,
        { 'content-type': 'application/json; charset=latin1' },
      ],
      [
        'POST',
        '/v1/tasks',
        '{"lambda":"echo"}',
        415,
        'unsupported_media_type',
        /utf-16/,
        { 'content-type': 'application/json;charset="UTF-16"' },
      ],
      ['POST', '/v1/tasks', Buffer.from('{"lambda":"echo","payload":"\xff\xfe"}', 'latin1'), 400, 'invalid_json', /UTF-8/],
      [
        'POST',
        '/v1/tasks',
        'lambda=echo',
        415,
        'unsupported_media_type',
        undefined,
        { 'content-type': 'application/x-www-form-urlencoded' },
      ],
      [
        'POST',
        '/v1/tasks/batch',
        { tasks: [{ lambda: 'echo' }, { lambda: 'echo', priority: 'x' }] },
        400,
        'validation_failed',
        /tasks\.1\.priority/,
      ],
      ['POST', '/v1/tasks/batch', { tasks: Array.from({ length: 51 }, () => ({ lambda: 'echo' })) }, 400, 'batch_too_large'],
      // refused for its size before each of its tasks is checked against the schema
      ['POST', '/v1/tasks/batch', { tasks: Array.from({ length: 51 }, () => ({ payload: 1 })) }, 400, 'batch_too_large'],
      ['POST', '/v1/tasks/batch', { tasks: [] }, 400, 'validation_failed'],
      // ids come from the server, so a batch's tasks cannot name each other: no hint that they could
      [
        'POST',
        '/v1/tasks/batch',
        { tasks: [{ lambda: 'echo', dependsOn: ['01ZZZZZZZZZZZZZZZZZZZZZZZZ'] }] },
        400,
        'unknown_dependency',
        /^dependsOn: no task 01Z{24} \(a parent must be a task that exists already\)$/,
      ],
      ['GET', '/v1/tasks/01ZZZZZZZZZZZZZZZZZZZZZZZZ', undefined, 404, 'task_not_found'],
      // a lambda name of up to 128 characters fits a path segment; past the router's limit, 414
      ['POST', `/v1/lambdas/${'l'.repeat(128)}/pause`, {}, 404, 'unknown_lambda'],
      ['GET', `/v1/tasks/${'t'.repeat(1025)}`, undefined, 414, 'uri_too_long'],
      ['GET', '/v1/tasks?limit=0', undefined, 400, 'validation_failed', /limit/],
      ['GET', '/v1/tasks?limit=0x10', undefined, 400, 'validation_failed', /query: limit must be integer/],
      ['GET', '/v1/tasks?limit=%20', undefined, 400, 'validation_failed', /query: limit must be integer/],
      ['GET', '/v1/tasks?limit=1e2', undefined, 400, 'validation_failed', /query: limit must be integer/],
      ['GET', '/v1/tasks?lambda=', undefined, 400, 'validation_failed', /query: lambda must NOT have fewer than 1 characters/],
      ['GET', '/v1/tasks?state=DONE', undefined, 400, 'validation_failed', /state/],
      ['GET', '/v1/tasks?cursor=zzz', undefined, 400, 'invalid_cursor'],
      ['DELETE', '/v1/tasks', undefined, 405, 'method_not_allowed'],
      ['GET', '/v1/nothing', undefined, 404, 'not_found'],
      ['GET', '/v1/workers/connect', undefined, 426, 'upgrade_required', /WebSocket upgrade/],
      ['POST', '/v1/workers/connect', undefined, 405, 'method_not_allowed'],
      ['POST', '/v1/openapi.json', undefined, 405, 'method_not_allowed'],
      ['POST', '/v1/lambdas/nope/pause', {}, 404, 'unknown_lambda'],
      ['POST', '/v1/lambdas/echo/pause', { mode: 'stop' }, 400, 'validation_failed', /mode/],
    ];
    for (const [method, path, body, status, code, message, headers] of cases) {
      const r = await call(method, path, body, headers);
      expect({ path, status: r.status, code: r.json?.error?.code }).toEqual({ path, status, code });
      expect(typeof r.json.error.message).toBe('string');
      if (message) expect(r.json.error.message).toMatch(message);
    }
    const r = await call('PUT', '/v1/tasks');
    expect(r.headers.get('allow')).toBe('POST, GET');
    const options = await call('OPTIONS', '/v1/tasks/01ZZZZZZZZZZZZZZZZZZZZZZZZ');
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, OPTIONS');
    // nothing from the refused batch was created
    const list = await call('GET', '/v1/tasks?lambda=echo');
    expect(list.json.tasks).toEqual([]);
    // the real thing next to what was refused: a leap day, a whole surrogate pair, kept as sent
    const ok = await call('POST', '/v1/tasks', { lambda: 'echo', runAt: '2028-02-29T00:00:00Z', key: 'k\u{1F600}' });
    expect(ok.status).toBe(201);
    const stored = await call('GET', `/v1/tasks/${ok.json.task.id}`);
    expect(stored.json.task).toMatchObject({ runAt: '2028-02-29T00:00:00.000Z', key: 'k\u{1F600}' });
  });

  it('takes a JSON body declared UTF-8 in any spelling of the charset', async () => {
    const { call } = await serve();
    const types = [
      'application/json; charset=utf-8',
      'application/json;charset="UTF-8"',
      'application/json; charset=utf8',
      // a charset inside another parameter's quoted value is no charset
      'application/json; profile="x;charset=latin1"',
    ];
    for (const type of types) {
      const r = await call('POST', '/v1/tasks', '{"lambda":"echo","payload":"é"}', { 'content-type': type });
      expect({ type, status: r.status, payload: r.json.task?.payload }).toEqual({ type, status: 201, payload: 'é' });
    }
  });

  it('takes a JSON body declared US-ASCII, which reads the same as UTF-8 (.NET StringContent with Encoding.ASCII sends it)', async () => {
    const { call } = await serve();
    for (const type of ['application/json; charset=us-ascii', 'application/json; charset="US-ASCII"']) {
      const r = await call('POST', '/v1/tasks', '{"lambda":"echo","payload":"\\u00e9"}', { 'content-type': type });
      expect({ type, status: r.status, payload: r.json.task?.payload }).toEqual({ type, status: 201, payload: 'é' });
    }
  });

  it('answers requests refused before routing in the same error shape', async () => {
    const { url } = await serve();
    const cases: Array<[string, number, string]> = [
      ['GET /v1/tasks/%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'validation_failed'],
      ['POST /v1/lambdas/%E2%80/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'validation_failed'],
      ['GET /v1/tasks HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n', 400, 'bad_request'],
      ['POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}', 400, 'bad_request'],
      [`GET /v1/tasks?key=${'k'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'headers_too_large'],
    ];
    for (const [request, status, code] of cases) {
      const r = await raw(url, request);
      expect({ request: request.slice(0, 40), status: r.status, code: r.json.error?.code }).toEqual({
        request: request.slice(0, 40),
        status,
        code,
      });
      expect(typeof r.json.error?.message).toBe('string');
    }
  });

  it('requires the bearer token when one is set, except on /healthz', async () => {
    const { call } = await serve({ token: 's3cret' });
    const denied = await call('GET', '/v1/lambdas');
    expect(denied.status).toBe(401);
    expect(denied.json.error.code).toBe('unauthorized');
    expect((await call('GET', '/v1/lambdas', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await call('GET', '/v1/lambdas', undefined, { authorization: 'Bearer s3cret' })).status).toBe(200);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('refuses to listen on a non-loopback address without a token', async () => {
    const c = await startConveyor({ lambdas });
    await expect(c.listen({ host: '0.0.0.0', port: 0 })).rejects.toThrow(/without a token/);
  });
});
