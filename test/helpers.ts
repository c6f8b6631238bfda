import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { Conveyor, type ConveyorOptions } from '../src/conveyor.js';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A temp folder removed after the test. */
export function tempDir(prefix = 'conveyor-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * An embedded Conveyor on a temp SQLite file with fast timings, closed after the test. The
 * lease (4 heartbeats, 1 s) stays well above the event-loop stalls a loaded 2-core CI machine
 * shows, so no test sees a lease expire unless it asks for it.
 */
export async function startConveyor(opts: ConveyorOptions = {}): Promise<Conveyor> {
  const c = new Conveyor({
    store: join(tempDir(), 'test.db'),
    heartbeatMs: 250,
    sweepIntervalMs: 50,
    shutdownGraceMs: 500,
    ...opts,
  });
  await c.start();
  cleanups.push(() => c.close());
  return c;
}

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `fn` returns a truthy value (a fallback where no signal exists). */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A handler-side recorder of attempt intervals, to check that no two runs of a task overlap. */
export class Recorder {
  readonly starts: Array<{ id: string; at: number }> = [];
  readonly intervals = new Map<string, Array<[number, number]>>();
  start(id: string): number {
    const at = Date.now();
    this.starts.push({ id, at });
    return at;
  }
  end(id: string, startedAt: number): void {
    const list = this.intervals.get(id) ?? [];
    list.push([startedAt, Date.now()]);
    this.intervals.set(id, list);
  }
}
