import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { expect, it } from 'vitest';
import { ConveyorClient } from '../../src/client/http-client.js';
import { onCleanup, sleep, tempDir, until } from '../helpers.js';
import { describeIf, freshSchema, PG_URL, pgUnreachable } from '../pg/pg-env.js';
import { conveyor, freePort, overlaps, type Proc, readIntervals } from './processes.js';

const RECORDER = fileURLToPath(new URL('./fixtures/recorder.mjs', import.meta.url));
const FAST = { CONVEYOR_HEARTBEAT_MS: '100', CONVEYOR_LEASE_MS: '500', CONVEYOR_SWEEP_INTERVAL_MS: '50' };
const TASKS = 400;

describeIf(await pgUnreachable(), 'crash: many servers on one PostgreSQL schema', () => {
  it('two servers and four workers; the sweep holder is SIGKILLed and restarted mid-run: every task succeeds, none overlaps', async () => {
    const { url: store, schema } = freshSchema();
    const dir = tempDir();
    const record = join(dir, 'record.log');
    const env = { ...FAST, RECORD_FILE: record };
    const ports = [await freePort(), await freePort()];
    const serverArgs = (i: number) => ['server', '--store', store, '--port', String(ports[i])];
    const servers: Proc[] = [conveyor(serverArgs(0), env), conveyor(serverArgs(1), env)];
    const all: Proc[] = [...servers];
    onCleanup(async () => {
      for (const p of all) p.child.kill('SIGKILL');
      await Promise.all(all.map((p) => p.exited));
    });
    const urls = await Promise.all(servers.map((s) => s.ready));
    // Workers split across the servers: two on each.
    const workers = [0, 1, 0, 1].map((i) => conveyor(['worker', '--server', urls[i], '--lambdas', RECORDER, '--concurrency', '4'], env));
    all.push(...workers);
    await Promise.all(workers.map((w) => w.ready));
    const clients = urls.map((server) => new ConveyorClient({ server, timeoutMs: 5000 }));

    // Submits through both servers in turn; a batch refused by a dead server goes to the other
    // one with the same idempotency keys.
    const accepted = new Set<string>();
    let submitted = 0;
    let turn = 0;
    const submitter = (async () => {
      while (submitted < TASKS) {
        const batch = Array.from({ length: 10 }, (_, k) => {
          const n = submitted + k;
          return { lambda: 'record', payload: { n, ms: 30 + (n % 4) * 20 }, idempotencyKey: `t${n}` };
        });
        try {
          for (const t of await clients[turn++ % 2].submitMany(batch)) accepted.add(t.id);
          submitted += batch.length;
          await sleep(80); // about 100 tasks a second: the run spans the kill and the restart
        } catch {
          await sleep(50);
        }
      }
    })();

    const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
    onCleanup(() => sql.end({ timeout: 1 }));
    const sweepHolder = async () =>
      ((await sql.unsafe(`SELECT holder FROM "${schema}".leases WHERE name = 'scheduler' AND expires_at > $1`, [Date.now()]))[0]?.holder as
        | string
        | undefined) ?? null;
    const pidOf = (holder: string) => Number(holder.split(':').at(-2));

    await sleep(1200);
    const holder = await until(sweepHolder, 5000, 'a sweep holder');
    const victim = servers.findIndex((s) => s.child.pid === pidOf(holder));
    expect(victim).toBeGreaterThanOrEqual(0);
    servers[victim].child.kill('SIGKILL');
    await servers[victim].exited;
    const submittedAtKill = submitted;
    // The other server takes the sweep once the dead one's lease runs out (5 s at most).
    const next = await until(
      async () => {
        const h = await sweepHolder();
        return h !== null && h !== holder ? h : null;
      },
      15_000,
      'another server to take the sweep',
    );
    expect(pidOf(next)).toBe(servers[1 - victim].child.pid);
    servers[victim] = conveyor(serverArgs(victim), env);
    all.push(servers[victim]);
    await servers[victim].ready;

    await submitter;
    expect(submittedAtKill).toBeLessThan(TASKS / 2); // the kill came mid-run
    const pending = new Set(accepted);
    const deadline = Date.now() + 60_000;
    while (pending.size && Date.now() < deadline) {
      for (const id of [...pending]) if ((await clients[0].get(id)).state === 'SUCCESS') pending.delete(id);
      if (pending.size) await sleep(200);
    }
    expect([...pending]).toEqual([]);
    expect(accepted.size).toBe(TASKS);
    for (const p of [...workers, ...servers]) p.child.kill('SIGTERM');
    await Promise.all([...workers, ...servers].map((p) => p.exited));

    const states = await sql.unsafe(`SELECT state, count(*)::int AS n FROM "${schema}".tasks GROUP BY state`);
    expect(states.map((r) => ({ ...r }))).toEqual([{ state: 'SUCCESS', n: TASKS }]);
    const intervals = readIntervals(record);
    expect(new Set(intervals.map((i) => i.id)).size).toBe(TASKS);
    expect(overlaps(intervals, new Map())).toEqual([]);
    // Every worker ran tasks: both servers handed work out.
    const byPid = new Set(intervals.map((i) => i.pid));
    expect(byPid.size).toBe(4);
  }, 180_000);
});
