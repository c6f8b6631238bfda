import postgres from 'postgres';
import { expect, it } from 'vitest';
import type { Conveyor } from '../../src/conveyor.js';
import type { LambdaDefinition } from '../../src/core/lambda.js';
import { PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import { onCleanup, sleep, startConveyor, until } from '../helpers.js';
import { describeIf, freshSchema, PG_URL, pgUnreachable } from './pg-env.js';

// Servers of one PostgreSQL store wake each other with LISTEN/NOTIFY. Every server here polls
// only once a minute (sweepIntervalMs), so whatever happens within a second came by signal.
const SLOW_POLL = { sweepIntervalMs: 60_000, heartbeatMs: 100, shutdownGraceMs: 500 };

const echo: LambdaDefinition = { name: 'echo', handler: (p: unknown) => p };

function client(url: string): postgres.Sql {
  const sql = postgres(url.replace(/\?.*$/, ''), { max: 1, onnotice: () => {} });
  onCleanup(() => sql.end({ timeout: 1 }));
  return sql;
}

/** Two servers on one schema: `a` runs the workers and holds the sweep, `b` only answers the API. */
async function pair(): Promise<{ a: Conveyor; b: Conveyor; schema: string; sql: postgres.Sql }> {
  const { url, schema } = freshSchema();
  const sql = client(PG_URL);
  const a = await startConveyor({ ...SLOW_POLL, store: url, lambdas: [echo] });
  await until(
    async () => (await sql.unsafe(`SELECT holder FROM "${schema}".leases WHERE name = 'scheduler'`))[0]?.holder === a.engine.serverId,
    5000,
    'a to hold the sweep',
  );
  const b = await startConveyor({ ...SLOW_POLL, store: url, worker: false });
  return { a, b, schema, sql };
}

describeIf(await pgUnreachable(), 'signals between servers (PostgreSQL LISTEN/NOTIFY)', () => {
  it('delivers a notification when its transaction commits, never when it rolls back, and only within one schema', async () => {
    const one = freshSchema();
    const other = freshSchema();
    const drivers = [one, other].map((s) => new PostgresDriver({ url: s.url, maxConnections: 2 }));
    onCleanup(() => Promise.all(drivers.map((d) => d.close())).then(() => undefined));
    for (const d of drivers) await d.migrate();
    const heard: string[][] = [[], []];
    await drivers[0].listen('conveyor', (p) => heard[0].push(p));
    await drivers[1].listen('conveyor', (p) => heard[1].push(p));
    await drivers[0].transaction((q) => q.notify('conveyor', 'committed'));
    await drivers[0]
      .transaction(async (q) => {
        await q.notify('conveyor', 'rolled back');
        throw new Error('roll back');
      })
      .catch(() => undefined);
    await drivers[0].transaction((q) => q.notify('conveyor', 'last'));
    await until(() => heard[0].includes('last'), 5000, 'the notifications');
    expect(heard[0]).toEqual(['committed', 'last']);
    expect(heard[1]).toEqual([]);
  });

  it('wakes another server whose workers can take tasks submitted elsewhere', async () => {
    const { a, b } = await pair();
    const t0 = Date.now();
    const task = await b.submit('echo', { n: 1 });
    expect((await a.waitFor(task.id, { timeoutMs: 10_000 })).state).toBe('SUCCESS');
    // the servers poll once a minute: anything well under that was the signal
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(b.engine.signals.counters.sent).toBeGreaterThan(0);
  });

  it("resolves the library's waitFor on a server that did not write the end (a task run through another server)", async () => {
    const { b } = await pair();
    const task = await b.submit('echo', { n: 4 });
    const t0 = Date.now();
    expect((await b.waitFor(task.id, { timeoutMs: 10_000 })).state).toBe('SUCCESS');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('wakes the sweep holder for a task due soon that another server accepted', async () => {
    const { a, b } = await pair();
    // a's scheduler wakes once more when its start-up rescue pause ends (leaseMs, 400 ms here);
    // after that only a signal can wake it within the minute.
    await sleep(600);
    const t0 = Date.now();
    const task = await b.submit('echo', { n: 2 }, { delayMs: 300 });
    const done = await a.waitFor(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe('SUCCESS');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('reloads gates on every server when one pauses or resumes a lambda', async () => {
    const { a, b } = await pair();
    await b.pause('echo');
    await until(() => a.engine.gates.lambdaMode('echo') === 'pause', 10_000, 'a to see the pause');
    const held = await b.submit('echo', { n: 3 });
    await b.resume('echo');
    await until(() => a.engine.gates.lambdaMode('echo') === 'open', 10_000, 'a to see the resume');
    expect((await a.waitFor(held.id, { timeoutMs: 5000 })).state).toBe('SUCCESS');
  });

  it('makes a lambda registered on one server known to the others', async () => {
    const { url } = freshSchema();
    const b = await startConveyor({ ...SLOW_POLL, store: url, worker: false });
    expect(b.engine.registry.get('late')).toBeUndefined();
    const c = await startConveyor({ ...SLOW_POLL, store: url, lambdas: [{ name: 'late', handler: () => 'ok' }] });
    await until(() => b.engine.registry.get('late'), 10_000, 'b to learn of the lambda');
    const task = await b.submit('late', {});
    expect((await c.waitFor(task.id, { timeoutMs: 5000 })).state).toBe('SUCCESS');
  });

  it('finds a lambda whose registration signal it missed when a pause, a submit or an ingest names it', async () => {
    const { url, schema } = freshSchema();
    const sql = client(PG_URL);
    const c = await startConveyor({ ...SLOW_POLL, store: url, lambdas: [{ name: 'late', handler: () => 'ok' }] });
    const b = await startConveyor({ ...SLOW_POLL, store: url, worker: false });
    const base = await b.listen({ port: 0 });
    // Registered by a server whose NOTIFY never reached b: the row alone, written behind b's back.
    const register = (name: string) =>
      sql.unsafe(
        `INSERT INTO "${schema}".lambdas (name, config, updated_at)
         SELECT $1, replace(config, '"name":"late"', '"name":"' || $1 || '"'), updated_at FROM "${schema}".lambdas WHERE name = 'late'`,
        [name],
      );
    const ingest = (name: string) =>
      fetch(`${base}/v1/ingest/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":[{"n":1}]}' });
    // Unknown a second ago as well: the re-read is limited to one a second, not skipped.
    expect((await ingest('ghost')).status).toBe(404);
    await register('ghost');
    await sleep(1100);
    expect(b.engine.registry.get('ghost')).toBeUndefined();
    expect((await ingest('ghost')).status).toBe(202);
    await register('quiet');
    await sleep(1100);
    expect((await b.pause('quiet')).name).toBe('quiet');
    await register('silent');
    await sleep(1100);
    expect((await b.submit('silent', {})).lambda).toBe('silent');
    await c.close();
  });

  it('listens again after its connection is cut (backend terminated), and re-reads what it may have missed', async () => {
    const { a, b, schema, sql } = await pair();
    const killed = await sql.unsafe(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE query ILIKE 'listen%' AND query LIKE '%${schema}%'`,
    );
    expect(killed.length).toBe(2); // a's and b's
    await until(() => a.engine.signals.counters.relistens >= 1 && b.engine.signals.counters.relistens >= 1, 5000, 're-listen');
    const task = await b.submit('echo', { n: 4 });
    expect((await a.waitFor(task.id, { timeoutMs: 10_000 })).state).toBe('SUCCESS');
  });

  it('gives the singleton duties up on a clean close', async () => {
    const { a, schema, sql } = await pair();
    const holders = async () => (await sql.unsafe(`SELECT holder FROM "${schema}".leases`)).map((r) => r.holder as string);
    const id = a.engine.serverId;
    expect(await holders()).toContain(id);
    await a.close();
    // Free now (or already taken by b, whose first tick may race the close), not in 5 s.
    expect(await holders()).not.toContain(id);
  });
});
