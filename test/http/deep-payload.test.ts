import { describe, expect, it } from 'vitest';
import { PAYLOAD_DEPTH_MAX } from '../../src/core/submit.js';
import { startConveyor } from '../helpers.js';

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('deeply nested payloads', () => {
  it('reads back every task it accepts: a payload too deep to answer with is refused at submit', async () => {
    const c = await startConveyor({ worker: false });
    await c.engine.registerLambdas([
      {
        name: 'deep',
        timeoutMs: 1000,
        maxAttempts: 1,
        backoff: { baseMs: 1000, maxMs: 1000, factor: 2 },
        concurrency: null,
        priority: 0,
        cron: null,
        isolation: 'none',
        memoryMb: null,
      } as never,
    ]);
    const url = await c.listen({ port: 0 });
    const submit = async (depth: number, path = '/v1/tasks', body = `{"lambda":"deep","payload":${nested(depth)}}`) => {
      const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return { status: r.status, json: await r.json() };
    };
    // The deepest payload a submit takes, whatever bounds it.
    let lo = 1;
    let hi = 100_000;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      const r = await submit(mid);
      if (r.status === 201) lo = mid;
      else {
        expect(r.json.error).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(/^payload is nested/) });
        hi = mid;
      }
    }
    const accepted = await submit(lo);
    expect(accepted.status).toBe(201);
    // ... can be read back, alone and in a list (a 500 here used to break every page holding it).
    const got = await fetch(`${url}/v1/tasks/${accepted.json.task.id}`);
    expect(got.status).toBe(200);
    expect((await fetch(`${url}/v1/tasks?lambda=deep&limit=1000`)).status).toBe(200);
    expect(lo).toBe(PAYLOAD_DEPTH_MAX);
    // Brackets inside strings are text, not nesting.
    const text = JSON.stringify({ s: `\\"${'['.repeat(3000)}`, t: ['{'.repeat(3000)] });
    expect((await submit(0, '/v1/tasks', `{"lambda":"deep","payload":${text}}`)).status).toBe(201);
    // Ingest refuses alike, naming the payload.
    const ingested = await submit(lo + 1, '/v1/ingest/deep', `{"data":[1,${nested(lo + 1)}]}`);
    expect(ingested.status).toBe(400);
    expect(ingested.json.error.message).toMatch(/^data\[1\]: payload is nested/);
  });

  it('ends a task whose handler returns a value too deep to answer with, and still reads it back', async () => {
    const c = await startConveyor({
      lambdas: [
        {
          name: 'deep-result',
          maxAttempts: 3,
          handler: async () => {
            let v: unknown[] = [];
            for (let i = 0; i < 2000; i++) v = [v];
            return v;
          },
        },
      ],
    });
    const url = await c.listen({ port: 0 });
    const task = await c.submit('deep-result', {});
    const done = await c.waitFor(task.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({
      state: 'FATAL_FAILURE',
      attempt: 1,
      error: { message: `the handler returned a value nested more than ${PAYLOAD_DEPTH_MAX} levels deep` },
    });
    expect((await fetch(`${url}/v1/tasks/${task.id}`)).status).toBe(200);
  });
});
