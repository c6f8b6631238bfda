import pino from 'pino';
import { expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { Scheduler } from '../../src/server/scheduler.js';
import { until } from '../helpers.js';

// The scheduler's own timing, around stand-ins for the store and the group commit: the sweep
// here is a promise the test holds open, which no real store can be made to do on cue.
it('sweeps again at once when a wake fires while a sweep is running', async () => {
  let sweeps = 0;
  let release!: () => void;
  let held = new Promise<void>((r) => (release = r));
  const ops = {
    sweep: async () => {
      sweeps++;
      await held;
      return { enqueued: new Map(), rescued: 0, deleted: 0, dropped: 0, seen: 0 };
    },
  };
  const s = new Scheduler(
    { read: async (fn: (o: unknown) => unknown) => fn({ q: { taskNextCheck: async () => null } }) } as never,
    { run: async (op: (o: unknown) => unknown) => op(ops) } as never,
    { lookup: () => 'open' } as never,
    { held: async () => true, renewAt: () => Number.POSITIVE_INFINITY } as never,
    systemClock,
    pino({ level: 'silent' }),
    { sweepIntervalMs: 60_000, sweepBatch: 100, rescueFrom: 0, leaseMs: 1000 },
  );
  s.start();
  await until(() => sweeps === 1);
  // Something comes due while the first sweep runs (it may have read the next check already).
  s.wakeAt(systemClock.now());
  await new Promise((r) => setTimeout(r, 20)); // the wake's timer fires during the sweep
  held = Promise.resolve();
  release();
  await until(() => sweeps >= 2, 2000).catch(() => undefined); // not at the next poll, a minute away
  expect(sweeps).toBe(2);
  await s.stop();
});
