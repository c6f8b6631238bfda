import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { expect, it } from 'vitest';
import { ConveyorClient } from '../../src/client/http-client.js';
import type { PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import { conveyor, freePort, overlaps, readIntervals } from '../crash/processes.js';
import { onCleanup, sleep, startConveyor, tempDir, until } from '../helpers.js';
import { describeIf } from './pg-env.js';
import { privateClusterUnavailable, startPrivateCluster } from './private-cluster.js';

const RECORDER = fileURLToPath(new URL('../crash/fixtures/recorder.mjs', import.meta.url));
const FAST = { CONVEYOR_HEARTBEAT_MS: '100', CONVEYOR_LEASE_MS: '500', CONVEYOR_SWEEP_INTERVAL_MS: '50' };
const TASKS = 600;
/**
 * How long the database stays down. 5 s keeps the suite quick; the code holds for longer
 * outages the same way (nothing in it counts outage time): CONVEYOR_TEST_OUTAGE_S=30 runs it
 * with a 30 s one.
 */
const OUTAGE_MS = Number(process.env.CONVEYOR_TEST_OUTAGE_S ?? 5) * 1000;

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await fn();
  return { value, ms: Date.now() - t0 };
}

describeIf(privateClusterUnavailable(), 'PostgreSQL restarted, then down, mid-run (private cluster)', () => {
  it('answers 503 with Retry-After while it is away, recovers on its own, and finishes every accepted task', async () => {
    const cluster = await startPrivateCluster();
    onCleanup(() => cluster.destroy());
    const dir = tempDir();
    const record = join(dir, 'record.log');
    const env = { ...FAST, RECORD_FILE: record };
    const server = conveyor(['server', '--store', cluster.url, '--port', String(await freePort())], env);
    onCleanup(async () => {
      server.child.kill('SIGKILL');
      await server.exited;
    });
    const url = await server.ready;
    // The server must live through it all (a crash would show here with its last words).
    const alive = () => expect(server.child.exitCode, server.stderr().slice(-3000)).toBeNull();
    const workers = [0, 1].map(() => conveyor(['worker', '--server', url, '--lambdas', RECORDER, '--concurrency', '4'], env));
    onCleanup(async () => {
      for (const w of workers) w.child.kill('SIGKILL');
      await Promise.all(workers.map((w) => w.exited));
    });
    await Promise.all(workers.map((w) => w.ready));
    const client = new ConveyorClient({ server: url, timeoutMs: 10_000 });

    // Submits steadily through everything; a refused batch goes again with the same keys.
    const accepted = new Set<string>();
    const refusals = new Map<string, number>();
    let submitted = 0;
    const submitter = (async () => {
      while (submitted < TASKS) {
        const batch = Array.from({ length: 10 }, (_, k) => {
          const n = submitted + k;
          return { lambda: 'record', payload: { n, ms: 10 + (n % 4) * 10 }, idempotencyKey: `t${n}` };
        });
        try {
          for (const t of await client.submitMany(batch)) accepted.add(t.id);
          submitted += batch.length;
          await sleep(15);
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'unknown';
          refusals.set(code, (refusals.get(code) ?? 0) + 1);
          await sleep(100);
        }
      }
    })();

    await sleep(1000);
    // A crash and restart: open transactions roll back, the last asynchronous commits (worker
    // reports) may be lost, every connection is cut, the LISTEN one too.
    await cluster.restart('immediate');
    await sleep(1500);

    await cluster.stop('fast');
    const down = Date.now();
    alive();
    const health = await timed(() => fetch(`${url}/healthz`));
    expect(health.value.status).toBe(503);
    expect(health.value.headers.get('retry-after')).toBe('1');
    expect(health.ms).toBeLessThan(5000); // the ping gives up at 2 s; a hang would be 30 s and more
    const submit = await timed(() =>
      fetch(`${url}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ lambda: 'record', payload: { n: -1 } }),
      }),
    );
    expect(submit.value.status).toBe(503);
    expect(submit.value.headers.get('retry-after')).toBe('1');
    expect((await submit.value.json()).error.code).toBe('store_unavailable');
    expect(submit.ms).toBeLessThan(5000);
    await sleep(Math.max(0, down + OUTAGE_MS - Date.now()));
    await cluster.start();

    await submitter;
    alive();
    expect(refusals.get('store_unavailable')).toBeGreaterThan(0);
    expect([...refusals.keys()].filter((c) => c !== 'store_unavailable')).toEqual([]);
    const pending = new Set(accepted);
    const deadline = Date.now() + 60_000;
    while (pending.size && Date.now() < deadline) {
      try {
        for (const id of [...pending]) if ((await client.get(id)).state === 'SUCCESS') pending.delete(id);
      } catch (err) {
        // The server answers 503 until its next probe (every second) finds the database back.
        if ((err as { code?: string }).code !== 'store_unavailable') throw err;
      }
      if (pending.size) await sleep(200);
    }
    expect([...pending]).toEqual([]);
    expect(accepted.size).toBe(TASKS);

    const sql = postgres(cluster.url, { max: 1, onnotice: () => {} });
    onCleanup(() => sql.end({ timeout: 1 }));
    const states = await sql`SELECT state, count(*)::int AS n FROM tasks GROUP BY state`;
    expect(states.map((r) => ({ ...r }))).toEqual([{ state: 'SUCCESS', n: TASKS }]);
    const intervals = readIntervals(record);
    expect(new Set(intervals.map((i) => i.id)).size).toBe(TASKS);
    expect(overlaps(intervals, new Map())).toEqual([]);
    // No request may have been answered 500; on failure, the offending log lines show.
    expect(
      server
        .stderr()
        .split('\n')
        .filter((line) => /internal_error|unexpected error/.test(line)),
    ).toEqual([]);
  }, 180_000);

  it('answers 503 within seconds when PostgreSQL stops answering without closing its connections, and recovers', async () => {
    const cluster = await startPrivateCluster();
    onCleanup(() => cluster.destroy());
    const c = await startConveyor({ store: cluster.url, lambdas: [{ name: 'echo', handler: (p: unknown) => p }] });
    const url = await c.listen({ port: 0 });
    expect((await c.waitFor((await c.submit('echo', 1)).id)).state).toBe('SUCCESS');

    await cluster.freeze();
    const health = await timed(() => fetch(`${url}/healthz`));
    expect(health.value.status).toBe(503);
    expect(health.ms).toBeLessThan(5000); // the ping gives up at 2 s; a hang would be 30 s and more
    const submit = await timed(() =>
      fetch(`${url}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ lambda: 'echo', payload: 2 }),
      }),
    );
    expect(submit.value.status).toBe(503);
    expect(submit.value.headers.get('retry-after')).toBe('1');
    // A probe after 2 s finds it gone (2 s more), instead of TCP's 15 minutes; calls fail at once then.
    expect(submit.ms).toBeLessThan(8000);
    const again = await timed(() => fetch(`${url}/v1/tasks/${'0'.repeat(26)}`));
    expect(again.value.status).toBe(503);
    expect(again.ms).toBeLessThan(1500);
    // The scrape still answers: process and worker metrics, and the store reported down.
    const scrape = await timed(() => fetch(`${url}/metrics`).then(async (r) => ({ status: r.status, text: await r.text() })));
    expect(scrape.value.status).toBe(200);
    expect(scrape.value.text).toMatch(/^conveyor_store_up 0$/m);
    expect(scrape.value.text).toMatch(/^conveyor_workers_connected 1$/m);
    expect(scrape.ms).toBeLessThan(5000);
    await cluster.thaw();

    // The hung connections were given up; the next probe (every second) finds it back.
    expect((c.engine.store.driver as PostgresDriver).counters.poolReplaced).toBeGreaterThanOrEqual(1);
    const back = Date.now();
    const task = await until(() => c.submit('echo', 3).catch(() => null), 8000, 'a submit to succeed again');
    expect(Date.now() - back).toBeLessThan(5000);
    expect((await c.waitFor(task.id, { timeoutMs: 10_000 })).state).toBe('SUCCESS');
  }, 60_000);
});
