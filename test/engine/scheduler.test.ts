import { join } from 'node:path';
import pino from 'pino';
import { expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../src/clock.js';
import { compileServerOptions } from '../../src/config/options.js';
import { lambdaConfigOf } from '../../src/core/lambda.js';
import { silentLogger } from '../../src/log.js';
import { Engine } from '../../src/server/engine.js';
import { Scheduler } from '../../src/server/scheduler.js';
import type { SingletonDuty } from '../../src/server/singleton.js';
import { onCleanup, sleep, tempDir, until } from '../helpers.js';

// The scheduler's own timing, around stand-ins for the store and the group commit: the sweep
// here is a promise the test holds open, which no real store can be made to do on cue.
function heldSweeps() {
  const count = { sweeps: 0 };
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const ops = {
    sweep: async () => {
      count.sweeps++;
      await held;
      return { enqueued: new Map(), rescued: 0, deleted: 0, dropped: 0, seen: 0 };
    },
  };
  const scheduler = new Scheduler(
    { read: async (fn: (o: unknown) => unknown) => fn({ q: { taskNextCheck: async () => null } }) } as never,
    { run: async (op: (o: unknown) => unknown) => op(ops) } as never,
    { lookup: () => 'open' } as never,
    { held: async () => true, renewAt: () => Number.POSITIVE_INFINITY } as never,
    systemClock,
    pino({ level: 'silent' }),
    { sweepIntervalMs: 60_000, sweepBatch: 100, rescueFrom: 0, leaseMs: 1000 },
  );
  return { scheduler, count, release };
}

it('sweeps again at once when a wake fires while a sweep is running', async () => {
  const { scheduler: s, count, release } = heldSweeps();
  s.start();
  await until(() => count.sweeps === 1);
  // Something comes due while the first sweep runs (it may have read the next check already).
  s.wakeAt(systemClock.now());
  await new Promise((r) => setTimeout(r, 20)); // the wake's timer fires during the sweep
  release();
  await until(() => count.sweeps >= 2, 2000).catch(() => undefined); // not at the next poll, a minute away
  expect(count.sweeps).toBe(2);
  await s.stop();
});

it('sets no timer past what Node can hold for a wake weeks away (no overflow warning, no sweep at once)', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => void warnings.push(w.name);
  process.on('warning', onWarning);
  onCleanup(() => void process.off('warning', onWarning));
  const { scheduler: s, count, release } = heldSweeps();
  s.start();
  await until(() => count.sweeps === 1);
  // A task due in 30 days is submitted while the sweep runs (no timer is set then).
  s.wakeAt(systemClock.now() + 30 * 24 * 3600 * 1000);
  release();
  await sleep(100);
  expect(warnings).not.toContain('TimeoutOverflowWarning');
  expect(count.sweeps).toBe(1);
  await s.stop();
});

it('passes a gate change again on the server that takes the sweep over a long lease later', async () => {
  const store = join(tempDir(), 'takeover.db');
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  // Heartbeats every 30 s: leases of two minutes, and the sweep duty's lease as long.
  const options = { store, clock, heartbeatMs: 30_000, sweepIntervalMs: 20 };
  const a = await Engine.open(compileServerOptions(options), silentLogger);
  onCleanup(() => a.close());
  const b = await Engine.open(compileServerOptions(options), silentLogger);
  onCleanup(() => b.close());
  await a.registerLambdas([lambdaConfigOf({ name: 'mail' })]);
  await b.registry.refresh();
  // Server a holds the sweep; it pauses and resumes the lambda, and a placement decided from a
  // cache that still had the pause parks a task after the resume's own pass. Then a dies
  // before its second pass over the change.
  expect(await (a as unknown as { duties: SingletonDuty[] }).duties[0].held()).toBe(true);
  await a.setGate('mail', { mode: 'pause' });
  await a.setGate('mail', { mode: 'open' });
  const [t] = a.prepareTasks('mail', [{}]);
  await a.store.transaction((ops) => ops.insert([t], () => 'pause'));
  expect((await b.get(t.id)).task.hold).toBe('gate');
  // Server b takes the sweep once a's lease ran out; the change is still to be passed again.
  b.start();
  clock.advance(120_001);
  await until(async () => (await b.get(t.id)).task.state === 'ENQUEUED', 3000).catch(() => undefined);
  expect((await b.get(t.id)).task.state).toBe('ENQUEUED');
});

it('asks the store again about a duty when its clock was set back, instead of holding it for as long as the clock moved', async () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const e = await Engine.open(compileServerOptions({ store: join(tempDir(), 'step.db'), clock, heartbeatMs: 1000 }), silentLogger);
  onCleanup(() => e.close());
  const duty = (e as unknown as { duties: SingletonDuty[] }).duties[0];
  expect(await duty.held()).toBe(true);
  clock.set(clock.now() - 3_600_000); // an NTP step back by an hour
  expect(duty.holding()).toBe(false);
  expect(await duty.held()).toBe(true); // renewed from the store, on the clock as it reads now
  expect(duty.renewAt()).toBeLessThanOrEqual(clock.now() + 4000);
});

it('stops sweeping a backlog between batches once the duty has passed to another server', async () => {
  let sweeps = 0;
  let checks = 0;
  // Ten full batches of due tasks; the lease is lost (another server took it) at the third
  // check: the tick's own, then one after each batch.
  const ops = {
    sweep: async () => ({ enqueued: new Map(), rescued: 0, deleted: 0, dropped: 0, seen: ++sweeps <= 10 ? 100 : 0 }),
  };
  const scheduler = new Scheduler(
    { read: async (fn: (o: unknown) => unknown) => fn({ q: { taskNextCheck: async () => null } }) } as never,
    { run: async (op: (o: unknown) => unknown) => op(ops) } as never,
    { lookup: () => 'open' } as never,
    { held: async () => ++checks < 3, renewAt: () => Number.POSITIVE_INFINITY } as never,
    systemClock,
    pino({ level: 'silent' }),
    { sweepIntervalMs: 60_000, sweepBatch: 100, rescueFrom: 0, leaseMs: 1000 },
  );
  scheduler.start();
  await until(() => checks >= 3 || sweeps >= 10);
  await scheduler.stop();
  expect({ sweeps, checks }).toEqual({ sweeps: 2, checks: 3 });
});
