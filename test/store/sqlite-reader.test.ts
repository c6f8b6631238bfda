import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteDriver } from '../../src/store/sqlite/sqlite-driver.js';
import { StoreError } from '../../src/store/store-error.js';
import { onCleanup, tempDir } from '../helpers.js';

async function openDriver(path: string): Promise<SqliteDriver> {
  const d = new SqliteDriver({ path });
  onCleanup(() => d.close());
  await d.migrate();
  return d;
}

/** How `p` settled within `ms`: its value, its error, or 'pending'. */
function within(p: Promise<unknown>, ms: number): Promise<{ ok: unknown } | { err: unknown } | 'pending'> {
  return Promise.race([
    p.then(
      (ok) => ({ ok }),
      (err: unknown) => ({ err }),
    ),
    new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms)),
  ]);
}

describe('the SQLite reader thread (scans)', () => {
  it('refuses calls after close as unavailable, instead of reopening what close let go', async () => {
    const d = await openDriver(join(tempDir(), 'closed.db'));
    await d.transaction(async (q) => q.gateList(), { sync: false });
    await d.close();
    const calls = {
      scan: () => d.scan('taskCounts'),
      read: () => d.read((q) => q.gateList()),
      transaction: () => d.transaction((q) => q.gateList()),
    };
    for (const [name, call] of Object.entries(calls)) {
      const err = await call().catch((e: unknown) => e);
      expect({ name, err }).toEqual({ name, err: new StoreError('unavailable', 'the store is closed') });
      expect((err as StoreError).code).toBe('unavailable');
    }
    await d.durable(); // everything committed before close is durable: nothing to do
  });

  it('settles a scan still in flight when the driver closes', async () => {
    const d = await openDriver(join(tempDir(), 'a.db'));
    const scan = d.scan('taskCounts');
    await d.close();
    expect(await within(scan, 3000)).not.toBe('pending');
  });

  it('answers every scan after the thread failed, as unavailable, instead of leaving them waiting', async () => {
    const path = join(tempDir(), 'b.db');
    const d = await openDriver(path);
    rmSync(path); // the thread cannot open the database (as with EMFILE): it ends with an error
    for (let i = 0; i < 2; i++) {
      const r = await within(d.scan('taskCounts'), 3000);
      expect(r).not.toBe('pending');
      const err = (r as { err?: unknown }).err;
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).code).toBe('unavailable');
    }
  });
});
