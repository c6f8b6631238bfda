import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { compileServerOptions } from '../../src/config/options.js';
import { lambdaConfigOf } from '../../src/core/lambda.js';
import { silentLogger } from '../../src/log.js';
import { CronRole, occurrences } from '../../src/server/cron.js';
import { Engine } from '../../src/server/engine.js';
import { onCleanup, sleep, tempDir } from '../helpers.js';

describe('cron', () => {
  it('creates each occurrence once, however many servers run cron', async () => {
    const store = join(tempDir(), 'cron.db');
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 0, 0, 30));
    const engines: Engine[] = [];
    for (let i = 0; i < 2; i++) {
      const e = await Engine.open(compileServerOptions({ store, clock, leaseMs: 1000, heartbeatMs: 100 }), silentLogger);
      onCleanup(() => e.close());
      await e.registerLambdas([lambdaConfigOf({ name: 'tick', cron: '* * * * *' })]);
      engines.push(e);
    }
    // Ten minutes, a tick every 20 s on both servers; the cron duty moves between them as leases expire.
    for (let step = 0; step < 30; step++) {
      for (const e of engines) await e.cron.tick();
      clock.advance(20_000);
    }
    const { tasks } = await engines[0].list({ lambda: 'tick', limit: 1000 });
    const runAts = tasks.map((t) => t.runAt).sort();
    expect(new Set(runAts).size).toBe(runAts.length);
    // every minute from 00:01 to 00:11 (the lookahead creates the next one ahead of time)
    expect(runAts[0]).toBe(Date.UTC(2026, 0, 1, 0, 1));
    for (let i = 1; i < runAts.length; i++) expect(runAts[i] - runAts[i - 1]).toBe(60_000);
    expect(runAts.length).toBeGreaterThanOrEqual(10);
  });

  it('runs only the latest missed occurrence after downtime', () => {
    const spec = { pattern: '*/5 * * * *', timezone: 'UTC' };
    const last = Date.UTC(2026, 0, 1, 0, 0);
    const now = Date.UTC(2026, 0, 1, 3, 2);
    expect(occurrences(spec, last, now, 60_000)).toEqual([Date.UTC(2026, 0, 1, 3, 0)]);
    expect(occurrences(spec, null, now, 3 * 60_000)).toEqual([Date.UTC(2026, 0, 1, 3, 5)]);
  });

  it('runs the latest missed occurrence of a schedule sparser than a day', () => {
    // Weekly, Mondays 00:00: down from Sunday 11 to Wednesday 14 January, so Monday 12 was missed.
    const weekly = { pattern: '0 0 * * 1', timezone: 'UTC' };
    const last = Date.UTC(2026, 0, 5);
    const now = Date.UTC(2026, 0, 14, 12);
    expect(occurrences(weekly, last, now, 60_000)).toEqual([Date.UTC(2026, 0, 12)]);
    // Monthly, missed by more than a day, and the next one within the lookahead as well.
    const monthly = { pattern: '0 9 1 * *', timezone: 'Europe/Paris' };
    const next = Date.UTC(2026, 2, 1, 8);
    expect(occurrences(monthly, Date.UTC(2026, 0, 1, 8), next - 60_000, 120_000)).toEqual([Date.UTC(2026, 1, 1, 8), next]);
  });

  it("creates the other lambdas' occurrences when one lambda's is refused", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 0, 0, 30));
    const e = await Engine.open(compileServerOptions({ store: join(tempDir(), 'c.db'), clock, maxPayloadBytes: 1024 }), silentLogger);
    onCleanup(() => e.close());
    // Sorted by name, the refused one comes first.
    await e.registerLambdas([
      lambdaConfigOf({ name: 'a-big', cron: { pattern: '* * * * *', payload: { pad: 'x'.repeat(2000) } } }),
      lambdaConfigOf({ name: 'b-tick', cron: '* * * * *' }),
    ]);
    expect(await e.cron.tick()).toBe(1);
    expect((await e.list({ lambda: 'b-tick' })).tasks.map((t) => t.runAt)).toEqual([Date.UTC(2026, 0, 1, 0, 1)]);
    expect((await e.list({ lambda: 'a-big' })).tasks).toEqual([]);
  });

  it('creates nothing for a paused lambda, and runs only the latest missed occurrence at the resume', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 0, 0, 30));
    const e = await Engine.open(compileServerOptions({ store: join(tempDir(), 'c.db'), clock }), silentLogger);
    onCleanup(() => e.close());
    await e.registerLambdas([lambdaConfigOf({ name: 'tick', cron: '* * * * *' })]);
    expect(await e.cron.tick()).toBe(1); // 00:01, ahead of time
    await e.setGate('tick', { mode: 'pause' });
    // An hour paused, a tick every 20 s: no occurrence piles up under the gate.
    for (let step = 0; step < 180; step++) {
      clock.advance(20_000);
      expect(await e.cron.tick()).toBe(0);
    }
    await e.setGate('tick', { mode: 'open' });
    expect(await e.cron.tick()).toBe(2);
    const runAts = (await e.list({ lambda: 'tick', limit: 100 })).tasks.map((t) => t.runAt).sort();
    // 00:01 (held by the pause, then released), the latest missed (01:00) and the next (01:01).
    expect(runAts).toEqual([Date.UTC(2026, 0, 1, 0, 1), Date.UTC(2026, 0, 1, 1, 0), Date.UTC(2026, 0, 1, 1, 1)]);
  });

  it('starts no tick while one runs, and none after stop', async () => {
    let reads = 0;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const store = {
      read: async () => {
        reads++;
        await held; // a store answering late
        return null;
      },
      transaction: async () => undefined,
    };
    const role = new CronRole(
      store as never,
      { held: async () => true } as never,
      new ManualClock(Date.UTC(2026, 0, 1)),
      silentLogger,
      () => [lambdaConfigOf({ name: 'tick', cron: '* * * * *' })],
      () => false,
      async () => undefined,
      { intervalMs: 10, lookaheadMs: 60_000 },
    );
    role.start();
    await sleep(100); // ten intervals
    expect(reads).toBe(1);
    const stopped = role.stop();
    release();
    await stopped;
    await sleep(50);
    expect(reads).toBe(1);
  });

  it('refuses an invalid pattern when the lambda registers', async () => {
    const e = await Engine.open(compileServerOptions({ store: join(tempDir(), 'c.db') }), silentLogger);
    onCleanup(() => e.close());
    await expect(e.registerLambdas([lambdaConfigOf({ name: 'bad', cron: 'every minute' })])).rejects.toThrow(/invalid cron/);
  });
});
