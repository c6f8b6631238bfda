import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConveyorClient } from '../../src/client/http-client.js';
import { sleep, tempDir, until } from '../helpers.js';
import { conveyor, freePort, overlaps, type Proc, readIntervals } from './processes.js';

const RECORDER = fileURLToPath(new URL('./fixtures/recorder.mjs', import.meta.url));
const FAST = { CONVEYOR_HEARTBEAT_MS: '100', CONVEYOR_LEASE_MS: '500', CONVEYOR_SWEEP_INTERVAL_MS: '50' };

async function waitAllSuccess(client: ConveyorClient, ids: Iterable<string>, timeoutMs = 60_000): Promise<string[]> {
  const pending = new Set(ids);
  const deadline = Date.now() + timeoutMs;
  while (pending.size && Date.now() < deadline) {
    for (const id of [...pending]) if ((await client.get(id)).state === 'SUCCESS') pending.delete(id);
    if (pending.size) await sleep(200);
  }
  return [...pending];
}

describe('crash: remote workers', () => {
  it('three workers SIGKILLed and restarted mid-run: every task succeeds, no overlapping executions', async () => {
    const dir = tempDir();
    const record = join(dir, 'record.log');
    const port = await freePort();
    const env = { ...FAST, RECORD_FILE: record };
    const server = conveyor(['server', '--store', join(dir, 's.db'), '--port', String(port)], env);
    const url = await server.ready;
    const workerArgs = ['worker', '--server', url, '--lambdas', RECORDER, '--concurrency', '4'];
    const workers: Proc[] = [0, 1, 2].map(() => conveyor(workerArgs, env));
    await Promise.all(workers.map((w) => w.ready));
    const client = new ConveyorClient({ server: url });
    const tasks = await client.submitMany(
      Array.from({ length: 300 }, (_, n) => ({ lambda: 'record', payload: { n, ms: 20 + (n % 4) * 10 } })),
    );

    const deaths = new Map<number, number>();
    for (let k = 0; k < 6; k++) {
      await sleep(250 + Math.floor(Math.random() * 300));
      const i = k % workers.length;
      const pid = workers[i].child.pid as number;
      workers[i].child.kill('SIGKILL');
      deaths.set(pid, Date.now());
      await workers[i].exited;
      workers[i] = conveyor(workerArgs, env);
      await workers[i].ready;
    }

    expect(
      await waitAllSuccess(
        client,
        tasks.map((t) => t.id),
      ),
    ).toEqual([]);
    for (const w of workers) w.child.kill('SIGTERM');
    server.child.kill('SIGTERM');
    await Promise.all([...workers.map((w) => w.exited), server.exited]);

    const intervals = readIntervals(record);
    expect(new Set(intervals.map((i) => i.id)).size).toBe(300);
    expect(overlaps(intervals, deaths)).toEqual([]);
    expect(intervals.some((i) => i.end === null)).toBe(true); // the kills hit running handlers
  }, 120_000);

  it('refuses the late completion of a worker frozen (SIGSTOP) past its lease; another worker finishes the task', async () => {
    const dir = tempDir();
    const record = join(dir, 'record.log');
    const port = await freePort();
    const env = { ...FAST, RECORD_FILE: record };
    const server = conveyor(['server', '--store', join(dir, 's.db'), '--port', String(port)], env);
    const url = await server.ready;
    const client = new ConveyorClient({ server: url });
    const frozen = conveyor(['worker', '--server', url, '--lambdas', RECORDER, '--concurrency', '1', '--prefetch', '0'], env);
    await frozen.ready;
    // A handler that holds the event loop: frozen in the middle of it, the worker resumes inside
    // the handler, whose completion is then reported before the worker's own watchdog (three
    // missed heartbeats) can stop it. So the server's fencing is what must refuse it.
    const [task] = await client.submitMany([{ lambda: 'record', payload: { n: 0, ms: 1000, busy: true } }]);
    const tasks = [task];
    // The handler holds the worker's event loop, so its start shows in the record, not in the store.
    for (let i = 0; i < 500 && !existsSync(record); i++) await sleep(5);
    frozen.child.kill('SIGSTOP');
    const healthy = conveyor(['worker', '--server', url, '--lambdas', RECORDER, '--concurrency', '2'], env);
    await healthy.ready;
    // The frozen worker's leases expire (500 ms), the tasks are rescued and run on the healthy worker.
    for (const t of tasks) for (let i = 0; i < 200 && (await client.get(t.id)).attempt < 2; i++) await sleep(25);
    // Frozen past the server's patience for a silent worker (two leases and a second): the
    // connection is gone when it wakes, so its outcome goes out again after a reconnect.
    await sleep(2500);
    frozen.child.kill('SIGCONT');
    expect(
      await waitAllSuccess(
        client,
        tasks.map((t) => t.id),
      ),
    ).toEqual([]);
    // The thawed worker reports (again, on its new connection) and is refused.
    await until(() => /refused reports on \d+ attempts/.test(frozen.stderr()), 15_000, 'the stale report refused');

    for (const t of tasks) {
      const done = await client.get(t.id);
      expect(done.attempt).toBeGreaterThanOrEqual(2);
      expect(done.attempts?.[0].outcome).toBe('lost');
      expect(done.workerId).not.toContain(`:${frozen.child.pid}:`);
    }
    for (const p of [frozen, healthy, server]) p.child.kill('SIGTERM');
    await Promise.all([frozen.exited, healthy.exited, server.exited]);
  }, 60_000);
});
