import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConveyorClient } from '../../src/client/http-client.js';
import { sleep, tempDir } from '../helpers.js';
import { conveyor, freePort, overlaps, type Proc, readIntervals } from './processes.js';

const RECORDER = fileURLToPath(new URL('./fixtures/recorder.mjs', import.meta.url));
const TASKS = 400;
const KILLS = 6;

describe('crash: conveyor dev SIGKILLed mid-run', () => {
  it('finishes every accepted task, with no two executions of a task overlapping', async () => {
    const dir = tempDir();
    const record = join(dir, 'record.log');
    const port = await freePort();
    const env = { RECORD_FILE: record, CONVEYOR_HEARTBEAT_MS: '100', CONVEYOR_LEASE_MS: '500', CONVEYOR_SWEEP_INTERVAL_MS: '50' };
    const args = ['dev', '--db', join(dir, 'c.db'), '--port', String(port), '--lambdas', RECORDER, '--concurrency', '8'];
    const deaths = new Map<number, number>();
    let proc: Proc = conveyor(args, env);
    const url = await proc.ready;
    const client = new ConveyorClient({ server: url, timeoutMs: 2000 });

    const accepted = new Set<string>();
    let submitted = 0;
    const submitter = (async () => {
      while (submitted < TASKS) {
        const batch = Array.from({ length: 20 }, (_, k) => {
          const n = submitted + k;
          return { lambda: 'record', payload: { n, ms: 10 + (n % 5) * 10 }, idempotencyKey: `t${n}` };
        });
        try {
          for (const t of await client.submitMany(batch)) accepted.add(t.id);
          submitted += batch.length;
        } catch {
          await sleep(50); // the server is down: the same idempotency keys go again after the restart
        }
      }
    })();

    for (let k = 0; k < KILLS; k++) {
      await sleep(300 + Math.floor(Math.random() * 400));
      const pid = proc.child.pid as number;
      proc.child.kill('SIGKILL');
      deaths.set(pid, Date.now());
      await proc.exited;
      proc = conveyor(args, env);
      await proc.ready;
    }
    await submitter;

    const deadline = Date.now() + 60_000;
    const pending = new Set(accepted);
    while (pending.size && Date.now() < deadline) {
      for (const id of [...pending]) {
        const t = await client.get(id);
        expect(['NEW', 'ENQUEUED', 'CLAIMED', 'PROCESSING', 'RETRIABLE_FAILURE', 'SUCCESS']).toContain(t.state);
        if (t.state === 'SUCCESS') pending.delete(id);
      }
      if (pending.size) await sleep(200);
    }
    proc.child.kill('SIGTERM');
    await proc.exited;

    expect(accepted.size).toBe(TASKS);
    expect([...pending]).toEqual([]);
    const intervals = readIntervals(record);
    expect(new Set(intervals.map((i) => i.id)).size).toBe(TASKS);
    expect(overlaps(intervals, deaths)).toEqual([]);
    // the kills really hit running handlers
    expect(intervals.some((i) => i.end === null)).toBe(true);
  }, 120_000);
});
