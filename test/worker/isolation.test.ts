import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { TaskContext } from '../../src/core/lambda.js';
import { silentLogger } from '../../src/log.js';
import type { TaskFrame } from '../../src/protocol/frames.js';
import { IsolatedResult, IsolateHost } from '../../src/worker/isolation/host.js';
import { loadLambdaModules } from '../../src/worker/lambda-loader.js';
import { onCleanup, startConveyor } from '../helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/isolated.mjs', import.meta.url));
const SLOW_LOAD = fileURLToPath(new URL('./fixtures/slow-load.mjs', import.meta.url));

for (const kind of ['process', 'thread'] as const) {
  describe(`isolation: '${kind}'`, () => {
    async function setup() {
      const isolated = (await loadLambdaModules([FIXTURE])).map((l) => ({ ...l, isolation: kind }));
      let inlineRuns = 0;
      const c = await startConveyor({
        concurrency: 8,
        lambdas: [...isolated, { name: 'inline', handler: async () => ++inlineRuns }],
      });
      return { c, inlineRuns: () => inlineRuns };
    }

    it('runs a handler in its own pid (process) or thread, with heartbeat and result', async () => {
      const { c } = await setup();
      const t = await c.waitFor((await c.submit('fine', { a: 1 })).id);
      expect(t.state).toBe('SUCCESS');
      expect(t.result).toMatchObject({ echo: { a: 1 } });
      const pid = (t.result as { pid: number }).pid;
      if (kind === 'process') expect(pid).not.toBe(process.pid);
      else expect(pid).toBe(process.pid);
      const f = await c.waitFor((await c.submit('fails-isolated')).id);
      expect(f.state).toBe('FATAL_FAILURE');
      expect(f.error?.message).toBe('bad input');
    });

    it('turns process.exit, an uncaught async throw and running out of memory into failed attempts, and the worker goes on', async () => {
      const { c, inlineRuns } = await setup();
      const bad = await Promise.all([c.submit('exits'), c.submit('throws-later'), c.submit('eats-memory')]);
      const good = await Promise.all(Array.from({ length: 20 }, () => c.submit('inline')));
      for (const t of bad) {
        const done = await c.waitFor(t.id, { timeoutMs: 60_000 });
        expect(done.state).toBe('FATAL_FAILURE');
        expect(done.attempts?.every((a) => a.outcome === 'error')).toBe(true);
        expect(done.error?.message).toMatch(/isolated .* died|exited|memory|thrown from a timer/i);
      }
      expect(bad.length).toBe(3);
      for (const t of good) expect((await c.waitFor(t.id)).state).toBe('SUCCESS');
      expect(inlineRuns()).toBe(20);
      // the isolates restart: the lambda still works after its crashes
      expect((await c.waitFor((await c.submit('fine', 2)).id)).state).toBe('SUCCESS');
    }, 90_000);

    it('restarts an isolate that keeps crashing only after a doubling backoff', async () => {
      const { c } = await setup();
      // One crash a task, one task after another: after the k-th crash the restart waits 100 * 2^(k-1) ms.
      const ends: number[] = [];
      for (let k = 0; k < 5; k++) {
        const t = await c.waitFor((await c.submit('exits', null, { maxAttempts: 1 })).id, { timeoutMs: 20_000 });
        expect(t.state).toBe('FATAL_FAILURE');
        ends.push(Date.parse(t.finishedAt as string));
      }
      const gaps = ends.slice(1).map((e, i) => e - ends[i]);
      // Lower bounds only: a slow machine may take longer, never shorter.
      for (const [i, gap] of gaps.entries()) expect(gap).toBeGreaterThanOrEqual(100 * 2 ** i - 5);
    }, 40_000);

    it('never starts an attempt that was aborted while its isolate was coming up', async () => {
      const host = new IsolateHost({ module: SLOW_LOAD, lambda: 'slow-load' }, { kind, log: silentLogger });
      onCleanup(() => host.close());
      const ctx = (signal: AbortSignal) => ({ signal }) as unknown as TaskContext;
      const frame = { id: 't', attempt: 1, lambda: 'slow-load', payload: 'null' } as unknown as TaskFrame;
      const ac = new AbortController();
      const t0 = Date.now();
      const run = host.run(frame, ctx(ac.signal));
      setTimeout(() => ac.abort(new Error('timed out while the isolate loaded')), 100);
      await expect(run).rejects.toThrow('timed out while the isolate loaded');
      expect(Date.now() - t0).toBeLessThan(700); // answered at the abort, not once the module (800 ms) loaded
      // The isolate comes up all the same and runs the next attempt.
      const next = await host.run({ ...frame, attempt: 2 }, ctx(new AbortController().signal));
      expect(next).toBeInstanceOf(IsolatedResult);
      expect(JSON.parse((next as IsolatedResult).json)).toEqual({ ran: true });
    }, 20_000);

    it('starts no isolate after close(), even one whose restart backoff was running', async () => {
      const host = new IsolateHost({ module: FIXTURE, lambda: 'hangs' }, { kind, log: silentLogger, killGraceMs: 20 });
      onCleanup(() => host.close());
      let running!: () => void;
      const ran = new Promise<void>((r) => (running = r));
      const ctx = (signal: AbortSignal) => ({ signal, heartbeat: async () => running() }) as unknown as TaskContext;
      const frame = { id: 't', attempt: 1, lambda: 'hangs', payload: null } as unknown as TaskFrame;
      // An attempt that ignores its abort gets its isolate killed: a crash, so the next start waits 100 ms.
      const ac = new AbortController();
      const first = host.run(frame, ctx(ac.signal));
      await ran;
      ac.abort(new Error('timed out'));
      await expect(first).rejects.toThrow(/died/);
      const second = host.run({ ...frame, attempt: 2 }, ctx(new AbortController().signal));
      await host.close(); // during the backoff
      // Not a fresh thread or process that runs the attempt (forever, keeping the worker's process alive).
      await expect(second).rejects.toThrow(/closed/);
    }, 10_000);

    it('kills an isolate whose handler ignores the abort at its timeout', async () => {
      const { c } = await setup();
      const t = await c.waitFor((await c.submit('ignores-abort')).id, { timeoutMs: 20_000 });
      expect(t.state).toBe('FATAL_FAILURE');
      expect(t.attempts?.[0].outcome).toBe('timeout');
      expect((await c.waitFor((await c.submit('fine', 3)).id)).state).toBe('SUCCESS');
    }, 30_000);
  });
}

describe("isolation: 'process' that cannot be spawned", () => {
  it('fails the attempt at once, and starts the process once it can', async () => {
    const host = new IsolateHost({ module: FIXTURE, lambda: 'fine' }, { kind: 'process', log: silentLogger });
    onCleanup(() => host.close());
    const ctx = { signal: new AbortController().signal, heartbeat: async () => {} } as unknown as TaskContext;
    const frame = { id: 't', attempt: 1, lambda: 'fine', payload: 1 } as unknown as TaskFrame;
    const node = process.execPath;
    process.execPath = '/nonexistent/node'; // fork() then fails with ENOENT, and no 'exit' follows
    try {
      await expect(host.run(frame, ctx)).rejects.toThrow(/could not be started: .*ENOENT/);
    } finally {
      process.execPath = node;
    }
    // After the restart backoff, a process comes up and runs the next attempt.
    expect(await host.run({ ...frame, attempt: 2 }, ctx)).toBeInstanceOf(IsolatedResult);
  }, 10_000);
});

describe('isolation settings', () => {
  it('refuses an isolated lambda that does not come from a module file', async () => {
    await expect(startConveyor({ lambdas: [{ name: 'x', isolation: 'process', handler: () => 1 }] })).rejects.toThrow(
      /must come from a module file/,
    );
  });
});
