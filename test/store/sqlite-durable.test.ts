import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteDriver } from '../../src/store/sqlite/sqlite-driver.js';
import { onCleanup, tempDir } from '../helpers.js';

// The WAL's fdatasync, observed and held back: the real call runs when a test releases it, and
// a test can make it report a write-back error, which no real disk here can be made to do.
const fsync = vi.hoisted(() => ({
  calls: 0,
  running: 0,
  most: 0,
  hold: false,
  fail: null as Error | null,
  held: [] as Array<() => void>,
}));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    fsync.calls++;
    fsync.running++;
    fsync.most = Math.max(fsync.most, fsync.running);
    const run = () =>
      fs.fdatasync(fd, (err) => {
        fsync.running--;
        cb(fsync.fail ?? err);
      });
    if (fsync.hold) fsync.held.push(run);
    else run();
  };
  return { ...fs, default: { ...fs, fdatasync }, fdatasync };
});

async function openDriver(path: string): Promise<SqliteDriver> {
  const d = new SqliteDriver({ path });
  onCleanup(() => d.close());
  await d.migrate();
  return d;
}

/** A commit that is not durable yet (synchronous=NORMAL), as a worker report is. */
const commit = (d: SqliteDriver) => d.transaction(async () => undefined, { sync: false });

const settled = (p: Promise<unknown>) => {
  const s = { done: false };
  p.then(
    () => (s.done = true),
    () => (s.done = true),
  );
  return s;
};
const tick = () => new Promise((r) => setTimeout(r, 20));

afterEach(() => {
  for (const run of fsync.held.splice(0)) run();
  Object.assign(fsync, { calls: 0, running: 0, most: 0, hold: false, fail: null });
});

describe('the SQLite WAL fsync (durable())', () => {
  it('runs one fdatasync at a time; commits made during it wait for one more, which covers them all', async () => {
    const d = await openDriver(join(tempDir(), 'a.db'));
    Object.assign(fsync, { calls: 0, most: 0, hold: true });
    await commit(d);
    const first = d.durable();
    await commit(d);
    const second = d.durable();
    await commit(d);
    const third = d.durable();
    expect(third).toBe(second); // one queued fsync covers every commit made before it starts
    const s2 = settled(second);
    await tick();
    expect(fsync.calls).toBe(1);

    fsync.held.shift()?.();
    await first;
    await tick();
    expect(s2.done).toBe(false); // its commit came after the first fsync started
    expect(fsync.calls).toBe(2);
    fsync.held.shift()?.();
    await second;
    expect(fsync.most).toBe(1);
    expect(await d.durable()).toBeUndefined(); // nothing new: no third fsync
    expect(fsync.calls).toBe(2);
  });

  it('treats a failed fdatasync as final: nothing is acknowledged after it until a restart', async () => {
    const path = join(tempDir(), 'b.db');
    const d = await openDriver(path);
    fsync.fail = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    await commit(d);
    await expect(d.durable()).rejects.toThrow();
    fsync.fail = null;
    await commit(d);
    await expect(d.durable()).rejects.toThrow(); // a later fsync would not bring the lost frames back
    await d.close();
    const again = await openDriver(path);
    await commit(again);
    await expect(again.durable()).resolves.toBeUndefined();
  });

  it('acknowledges no synchronous commit after a failed fdatasync either', async () => {
    const d = await openDriver(join(tempDir(), 'd.db'));
    fsync.fail = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    await commit(d);
    await expect(d.durable()).rejects.toThrow();
    fsync.fail = null;
    // SQLite's own fsync in this COMMIT may succeed, but the WAL is read up to the lost frames.
    await expect(d.transaction(async (q) => q.leaseTry('l', 'me', 1, 2))).rejects.toThrow();
  });

  it('acknowledges no synchronous commit whose transaction was open when an fdatasync failed', async () => {
    const d = await openDriver(join(tempDir(), 'e.db'));
    fsync.fail = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    await commit(d);
    const tx = d.transaction(async (q) => {
      await q.leaseTry('l', 'me', 1, 2);
      await d.durable().catch(() => undefined);
      fsync.fail = null;
    });
    await expect(tx).rejects.toThrow();
  });

  it('closes the WAL only after the fsync running on it has ended', async () => {
    const d = await openDriver(join(tempDir(), 'c.db'));
    fsync.hold = true;
    await commit(d);
    const synced = d.durable();
    const closed = settled(d.close());
    await tick();
    expect(closed.done).toBe(false);
    fsync.held.shift()?.();
    await expect(synced).resolves.toBeUndefined(); // a closed fd would have failed it with EBADF
    await tick();
    expect(closed.done).toBe(true);
  });
});
