import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Harness } from '../../src/store/contract/harness.js';
import { SqliteDriver } from '../../src/store/sqlite/sqlite-driver.js';
import { onCleanup, tempDir } from '../helpers.js';

/** The WAL's last frame, from the wal-index header (https://www.sqlite.org/walformat.html). */
function walLastFrame(shmFd: number): number {
  const head = Buffer.alloc(20);
  readSync(shmFd, head, 0, 20, 0);
  return endianness() === 'LE' ? head.readUInt32LE(16) : head.readUInt32BE(16);
}

const PAYLOAD = JSON.stringify({ pad: 'p'.repeat(1000) });

describe('SQLite checkpoints', () => {
  it('copy the WAL into the database file while the writer goes on, and keep the WAL short', async () => {
    const path = join(tempDir(), 'checkpoint.db');
    const d = new SqliteDriver({ path });
    await d.migrate();
    const h = new Harness(d);
    // Closed only after the store: closing a descriptor of the -shm file drops every POSIX lock
    // this process holds on it, SQLite's included.
    const shmFd = openSync(`${path}-shm`, 'r');
    onCleanup(async () => {
      await d.close();
      closeSync(shmFd);
    });
    const write = async () => {
      await h.insert(...Array.from({ length: 80 }, () => h.task({ payload: PAYLOAD })));
      await new Promise((r) => setImmediate(r)); // the event loop turns between commits, as in a server
    };
    // 1,500 WAL frames; then the database file grows while the writer keeps the store open.
    for (let b = 0; b < 30; b++) await write();
    const copied = async () => {
      for (let waited = 0; waited < 10_000; waited += 50) {
        if (statSync(path).size > 2_000_000) return true; // 2.4 MB of payloads
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    };
    expect(await copied()).toBe(true);
    // About 25 MB more in 280 commits: 14,500 frames in all, yet the WAL stays shorter (SQLite's
    // own checkpoint inside COMMIT is off).
    const frames: number[] = [];
    for (let b = 30; b < 310; b++) {
      await write();
      frames.push(walLastFrame(shmFd));
    }
    expect(Math.max(...frames)).toBeLessThan(12_000);
    const restarts = frames.filter((f, i) => i > 0 && f < (frames[i - 1] as number)).length;
    expect(restarts).toBeGreaterThan(0); // the WAL started again from its beginning
    const counts = await d.scan('taskCounts');
    expect(counts.reduce((n, r) => n + Number(r.count), 0)).toBe(310 * 80);
  });

  it('keep the locks of another driver on the same file when one closes (closing any -shm descriptor drops them all)', async () => {
    const path = join(tempDir(), 'two.db');
    const a = new SqliteDriver({ path });
    await a.migrate();
    const b = new SqliteDriver({ path });
    onCleanup(() => b.close());
    await a.transaction(async (q) => q.gateList(), { sync: false });
    await new Promise((r) => setTimeout(r, 150)); // a's checkpoint timer has read the -shm
    // Another process asks for the write lock without waiting.
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const writeLock = () =>
      execFileSync(
        process.execPath,
        [
          '-e',
          `const db = new (require(${JSON.stringify(sqlite)}))(${JSON.stringify(path)});
          db.pragma('busy_timeout = 0');
          try { db.exec('BEGIN IMMEDIATE'); console.log('taken'); } catch (e) { console.log(e.code); }`,
        ],
        { encoding: 'utf8' },
      ).trim();
    const answers: string[] = [];
    await b.transaction(async () => {
      answers.push(writeLock());
      await a.close();
      answers.push(writeLock()); // b's transaction still holds it
    });
    expect(answers).toEqual(['SQLITE_BUSY', 'SQLITE_BUSY']);
  });
});
