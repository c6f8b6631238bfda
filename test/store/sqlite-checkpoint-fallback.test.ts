import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Harness } from '../../src/store/contract/harness.js';
import { SqliteDriver } from '../../src/store/sqlite/sqlite-driver.js';
import { StoreError, storeErrorOf } from '../../src/store/store-error.js';
import { onCleanup, tempDir } from '../helpers.js';

// A checkpoint thread that cannot run (as when no thread or descriptor can be had): every
// statement is refused and the thread counts as ended, or (`startable` false) the thread
// cannot even be made, as `new Worker` throws ERR_WORKER_INIT_FAILED when the system has no
// thread to give. Or (`ioError`) a thread that runs, but whose checkpoint fails its fsync of
// the WAL, which no disk here can be made to do. Started threads are counted.
const threads = vi.hoisted(() => ({ started: 0, startable: true, ioError: false }));
vi.mock('../../src/store/sqlite/sqlite-thread.js', () => ({
  SqliteThread: class {
    readonly ended = !threads.ioError;
    constructor() {
      threads.started++;
      if (!threads.startable) throw Object.assign(new Error('EAGAIN'), { code: 'ERR_WORKER_INIT_FAILED' });
    }
    all(): Promise<unknown[]> {
      if (threads.ioError) return Promise.reject(storeErrorOf(Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_FSYNC' })));
      return Promise.reject(new StoreError('unavailable', 'sqlite: the SQLite thread ended'));
    }
    close(): Promise<number> {
      return Promise.resolve(0);
    }
  },
}));

/** Writes about 15,000 WAL frames over a second or more; the WAL's longest length seen. */
async function longestWal(): Promise<number> {
  const path = join(tempDir(), 'fallback.db');
  const d = new SqliteDriver({ path });
  await d.migrate();
  const h = new Harness(d);
  const shmFd = openSync(`${path}-shm`, 'r'); // closed after the store (see sqlite-checkpoint.test.ts)
  onCleanup(async () => {
    await d.close();
    closeSync(shmFd);
  });
  const head = Buffer.alloc(20);
  const lastFrame = () => {
    readSync(shmFd, head, 0, 20, 0);
    return endianness() === 'LE' ? head.readUInt32LE(16) : head.readUInt32BE(16);
  };
  const payload = JSON.stringify({ pad: 'p'.repeat(1000) });
  const frames: number[] = [];
  const until = Date.now() + 1000;
  for (let b = 0; b < 300 || Date.now() < until; b++) {
    if (b < 300) await h.insert(...Array.from({ length: 80 }, () => h.task({ payload })));
    frames.push(lastFrame());
    await new Promise((r) => setTimeout(r, b < 300 ? 0 : 20));
  }
  return Math.max(...frames);
}

describe('SQLite checkpoints when the thread fails', () => {
  it('fall back to checkpoints on the writer’s connection, instead of starting a thread every 50 ms', async () => {
    threads.started = 0;
    threads.startable = true;
    expect(await longestWal()).toBeLessThan(6000); // checkpointed every 4,000 frames, between transactions
    expect(threads.started).toBe(1);
  });

  it('fall back the same when no thread can be started at all (and the timer does not throw)', async () => {
    threads.started = 0;
    threads.startable = false;
    expect(await longestWal()).toBeLessThan(6000);
    expect(threads.started).toBe(1);
  });

  it('stop acknowledging when a checkpoint fails its fsync of the WAL, as a failed fdatasync does', async () => {
    Object.assign(threads, { started: 0, startable: true, ioError: true });
    const d = new SqliteDriver({ path: join(tempDir(), 'ioerr.db') });
    onCleanup(() => d.close());
    await d.migrate();
    const h = new Harness(d);
    const payload = JSON.stringify({ pad: 'p'.repeat(1000) });
    // About 1,500 WAL frames, enough for a checkpoint on the thread.
    for (let b = 0; b < 30; b++) await h.insert(...Array.from({ length: 80 }, () => h.task({ payload })));
    for (let waited = 0; threads.started === 0 && waited < 5000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 20)); // the refusal reaches the driver
    expect(threads.started).toBe(1);
    const err = await h.insert(h.task()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(String(err)).toContain('SQLITE_IOERR_FSYNC');
    expect((err as StoreError).code).toBe('unavailable');
  });
});
