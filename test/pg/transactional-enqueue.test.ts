import postgres from 'postgres';
import { expect, it } from 'vitest';
import type { Conveyor } from '../../src/conveyor.js';
import { isId } from '../../src/core/ids.js';
import { ConveyorError, enqueueInTransaction } from '../../src/index.js';
import { onCleanup, startConveyor } from '../helpers.js';
import { describeIf, freshSchema, PG_URL, pgUnreachable } from './pg-env.js';

// An application writes its business row and creates the task in one transaction of its own
// PostgreSQL client. The server polls once a minute, so a task that runs within a second was
// woken by the NOTIFY of conveyor_enqueue.
const runs: unknown[] = [];

async function setup(): Promise<{ c: Conveyor; app: postgres.Sql; other: postgres.Sql; schema: string }> {
  const { url, schema } = freshSchema();
  const c = await startConveyor({
    store: url,
    sweepIntervalMs: 60_000,
    // Leases of 8 s: the scheduler's one extra wake at the end of its start-up rescue pause
    // (one lease) comes after these tests' tasks are due.
    heartbeatMs: 2000,
    lambdas: [
      {
        name: 'receipt',
        priority: 7,
        maxAttempts: 3,
        timeoutMs: 12_345,
        handler: (p: unknown) => {
          runs.push(p);
          return { sent: true };
        },
      },
    ],
  });
  // The application's own client: Conveyor's schema on its search_path...
  const app = postgres(PG_URL, { max: 2, onnotice: () => {}, connection: { search_path: schema } });
  // ...and one without, that names the schema instead.
  const other = postgres(PG_URL, { max: 1, onnotice: () => {} });
  onCleanup(() => Promise.all([app.end({ timeout: 1 }), other.end({ timeout: 1 })]).then(() => undefined));
  await app`CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL)`;
  return { c, app, other, schema };
}

const taskCount = async (app: postgres.Sql) => (await app`SELECT count(*)::int AS n FROM tasks`)[0].n as number;

describeIf(await pgUnreachable(), 'transactional enqueue (conveyor_enqueue, enqueueInTransaction)', () => {
  it('creates the task with the commit of the business write; it runs at once with the lambda defaults', async () => {
    const { c, app } = await setup();
    const t0 = Date.now();
    const id = await app.begin(async (tx) => {
      await tx`INSERT INTO orders (id, total) VALUES (1, 99.5)`;
      return enqueueInTransaction(tx, { lambda: 'receipt', payload: { order: 1 } });
    });
    expect(isId(id)).toBe(true);
    const done = await c.waitFor(id, { timeoutMs: 5000 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(done).toMatchObject({
      state: 'SUCCESS',
      lambda: 'receipt',
      payload: { order: 1 },
      priority: 7,
      maxAttempts: 3,
      result: { sent: true },
    });
    expect(Math.abs(Date.parse(done.createdAt) - t0)).toBeLessThan(5000);
    const [row] = await app`SELECT timeout_ms FROM tasks WHERE id = ${id}`;
    expect(Number(row.timeout_ms)).toBe(12_345);
    expect(runs).toContainEqual({ order: 1 });
  });

  it('creates nothing when the transaction rolls back', async () => {
    const { app } = await setup();
    let id = '';
    await expect(
      app.begin(async (tx) => {
        await tx`INSERT INTO orders (id, total) VALUES (2, 10)`;
        id = await enqueueInTransaction(tx, { lambda: 'receipt', payload: { order: 2 } });
        throw new Error('payment declined');
      }),
    ).rejects.toThrow('payment declined');
    expect(isId(id)).toBe(true);
    expect(await app`SELECT 1 FROM orders WHERE id = 2`).toHaveLength(0);
    expect(await app`SELECT 1 FROM tasks WHERE id = ${id}`).toHaveLength(0);
  });

  it('answers the first task for a repeated idempotency key, within a transaction and across them', async () => {
    const { c, app } = await setup();
    const first = await app.begin(async (tx) => {
      const a = await enqueueInTransaction(tx, { lambda: 'receipt', payload: { order: 3 }, idempotencyKey: 'order-3' });
      const b = await enqueueInTransaction(tx, { lambda: 'receipt', payload: { order: 3 }, idempotencyKey: 'order-3' });
      expect(b).toBe(a);
      return a;
    });
    const again = await app.begin((tx) =>
      enqueueInTransaction(tx, { lambda: 'receipt', payload: { other: true }, idempotencyKey: 'order-3' }),
    );
    expect(again).toBe(first);
    expect(await taskCount(app)).toBe(1);
    // The key is shared with the API: a submit with it answers the same task.
    expect((await c.submit('receipt', {}, { idempotencyKey: 'order-3' })).id).toBe(first);
  });

  it('refuses an unknown lambda with a clear error, and the business write goes with it', async () => {
    const { app } = await setup();
    const err = await app
      .begin(async (tx) => {
        await tx`INSERT INTO orders (id, total) VALUES (4, 1)`;
        await enqueueInTransaction(tx, { lambda: 'recipt', payload: {} });
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConveyorError);
    expect(err).toMatchObject({ code: 'unknown_lambda', message: expect.stringContaining('no lambda named "recipt"') });
    expect(await app`SELECT 1 FROM orders WHERE id = 4`).toHaveLength(0);
    await expect(enqueueInTransaction(app as never, { lambda: 'receipt', ordered: true, key: 'k' } as never)).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });

  it('refuses what the API refuses, with the same message: a start time past the year 275760, a payload JSON cannot hold', async () => {
    const { c, app } = await setup();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const cases: Array<[unknown, { delayMs?: number }]> = [
      [{ order: 7 }, { delayMs: 8.64e15 }],
      [{ order: 7n }, {}],
      [cyclic, {}],
    ];
    for (const [payload, opts] of cases) {
      const viaApi = await c.submit('receipt', payload, opts).catch((e: unknown) => e);
      expect(viaApi).toMatchObject({ code: 'validation_failed' });
      const viaHelper = await app.begin((tx) => enqueueInTransaction(tx, { lambda: 'receipt', payload, ...opts })).catch((e: unknown) => e);
      expect(viaHelper).toBeInstanceOf(ConveyorError);
      expect(viaHelper).toMatchObject({ code: 'validation_failed', message: (viaApi as Error).message });
    }
    // Nothing went in (a task due past any Date had made GET and the task list answer 500).
    expect(await taskCount(app)).toBe(0);
  });

  it('refuses a payload holding U+0000 by name (jsonb cannot store it; the API can), and the business write goes with it', async () => {
    const { app } = await setup();
    const err = await app
      .begin((tx) => enqueueInTransaction(tx, { lambda: 'receipt', payload: { note: 'a\u0000b' } }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConveyorError);
    expect(err).toMatchObject({ code: 'validation_failed', message: expect.stringContaining('\\u0000') });
    expect(await taskCount(app)).toBe(0);
    // A backslash and "u0000" are text, which jsonb stores.
    await app.begin((tx) => enqueueInTransaction(tx, { lambda: 'receipt', payload: { note: '\\u0000' } }));
    expect(await taskCount(app)).toBe(1);
  });

  it('is a plain SQL function for any client: named arguments, a schema-qualified name, a later run_at', async () => {
    const { c, other, schema } = await setup();
    const t0 = Date.now();
    // What node-postgres, an ORM's raw query or psql would send, from a connection whose
    // search_path does not hold Conveyor's schema.
    const id = await other.begin(async (tx) => {
      const [row] = await tx.unsafe(
        `SELECT "${schema}".conveyor_enqueue('receipt', $1::jsonb, run_at => clock_timestamp() + interval '1 second', priority => 1) AS id`,
        [JSON.stringify({ order: 5 })],
      );
      return row.id as string;
    });
    expect((await c.get(id)).state).toBe('NEW');
    const done = await c.waitFor(id, { timeoutMs: 5000 });
    expect(done).toMatchObject({ state: 'SUCCESS', priority: 1 });
    expect(Date.parse(done.attempts?.[0]?.startedAt as string) - t0).toBeGreaterThanOrEqual(1000);
    expect(Date.now() - t0).toBeLessThan(6000);
    // The SDK helper names the schema the same way.
    const viaHelper = await other.begin((tx) =>
      enqueueInTransaction(tx, { lambda: 'receipt', payload: { order: 6 }, delayMs: 0 }, { schema }),
    );
    expect((await c.waitFor(viaHelper, { timeoutMs: 5000 })).state).toBe('SUCCESS');
  });
});
