import { closeSync, openSync, readSync, realpathSync } from 'node:fs';
import { endianness } from 'node:os';
import { nativeCodeOf, storeErrorOf } from '../store-error.js';
import type { BetterSqlite3 } from './better-sqlite3.js';
import { SqliteThread } from './sqlite-thread.js';

/** How often, at most, the WAL's length is looked at while commits go on. */
const CHECKPOINT_EVERY_MS = 50;
/** Pages (frames) not yet copied into the database file that make a checkpoint on the thread worth its two fsyncs. */
const CHECKPOINT_FRAMES = 1000;
/** A WAL this long after the thread's checkpoint is finished on the writer's connection, so it starts again from its beginning. */
const WAL_RESTART_FRAMES = 4000;
/** Where SQLite's own checkpoint in COMMIT takes over, should the thread fall behind. */
const WAL_BACKSTOP_FRAMES = 16000;
/** SQLite's own checkpoint once the thread has failed: in bigger steps than its 1,000-page default, fewer fsyncs of the main file. */
const INLINE_CHECKPOINT_FRAMES = 4000;

/**
 * The wal-index (-shm) files read by walIndex(), one descriptor per database file for the whole
 * process, with the stores that have that file open. Closing any descriptor of a file drops
 * every POSIX lock this process holds on it, SQLite's included (those of another store on the
 * same file too): so the descriptor is closed only when the last of them has closed its database.
 */
const shmFiles = new Map<string, { fd: number | null; stores: number }>();

/**
 * Copies the WAL into the database file on a second connection in a thread, at most every
 * CHECKPOINT_EVERY_MS while commits go on. SQLite's own automatic checkpoint runs inside a
 * COMMIT and stops the event loop while it copies (27 ms for its 4,000 pages, measured in a
 * bulk drain); on a second connection the copy runs beside the writer. In a 100,000-task bulk
 * run the longest COMMIT went from 44-50 ms to 4-5 ms, and the 20,000-task drain gained a few
 * percent (docs/benchmarks.md, 2026-12-07 23:15). The thread checkpoints only once
 * CHECKPOINT_FRAMES are waiting, so a light load does not pay two fsyncs every few commits.
 *
 * A checkpoint that runs beside commits can never catch up with all of them, and the WAL
 * starts again from its beginning only after one has: so when the thread finds the WAL long,
 * the next transaction first checkpoints on the writer's connection what came after the
 * thread's copy (a few frames) and then writes from the start of the WAL.
 */
export class Checkpoints {
  private thread: SqliteThread | null = null;
  private state: 'idle' | 'waiting' | 'running' = 'idle';
  /** A commit came while a look or a checkpoint was pending: another look follows it. */
  private again = false;
  /** The thread failed: SQLite checkpoints inside COMMIT again (see inline()). */
  private inlineOnly = false;
  /** The thread's last checkpoint found a long WAL: finish it on the writer, between transactions. */
  private restartWal = false;
  private stopped = false;
  private readonly shm: { key: string; file: { fd: number | null; stores: number } };
  private released = false;

  constructor(
    /** The writer's connection. */
    private readonly db: BetterSqlite3.Database,
    private readonly path: string,
    /** A checkpoint's I/O error: its fsync of the WAL failed, as durable()'s may (nothing is acknowledged after it). */
    private readonly failedSync: (err: Error) => void,
  ) {
    // This connection checkpoints by itself only if the thread falls this far behind.
    db.pragma(`wal_autocheckpoint = ${WAL_BACKSTOP_FRAMES}`);
    // The name SQLite opens the -shm by (it follows symbolic links), shared by every store on the file.
    let key = path;
    try {
      key = realpathSync(path);
    } catch {}
    const file = shmFiles.get(key) ?? { fd: null, stores: 0 };
    file.stores++;
    shmFiles.set(key, file);
    this.shm = { key, file };
  }

  /** Before a transaction begins: a long WAL's checkpoint is finished here, so this write restarts it. */
  beforeTransaction(): void {
    if (!this.restartWal || this.state === 'running') return;
    this.restartWal = false;
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch (err) {
      this.failed(err);
    }
  }

  /** After a commit: a look at the WAL's length within CHECKPOINT_EVERY_MS. */
  afterCommit(): void {
    if (this.inlineOnly || this.stopped) return;
    if (this.state !== 'idle') {
      this.again = true;
      return;
    }
    this.state = 'waiting';
    setTimeout(() => this.look(), CHECKPOINT_EVERY_MS).unref();
  }

  /** Ends the thread (a checkpoint it runs is given up); after it nothing starts another. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.thread?.close();
    this.thread = null;
  }

  /** Once the writer's database is closed: this store's share of the -shm descriptor goes. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const { key, file } = this.shm;
    if (--file.stores > 0) return;
    if (file.fd !== null) closeSync(file.fd);
    file.fd = null;
    if (shmFiles.get(key) === file) shmFiles.delete(key);
  }

  private look(): void {
    if (this.stopped) {
      this.state = 'idle';
      return;
    }
    const wal = this.walIndex();
    if (wal && wal.lastFrame - wal.copied < CHECKPOINT_FRAMES) {
      // Too few frames yet; look again after the next commit, or now if there were commits
      // meanwhile (the last ones of a burst would otherwise wait for the next write).
      this.state = 'idle';
      if (this.again) {
        this.again = false;
        this.afterCommit();
      }
      return;
    }
    if (!this.thread || this.thread.ended) {
      try {
        this.thread = new SqliteThread(this.path, { readonly: false });
      } catch {
        // No thread to be had (new Worker throws ERR_WORKER_INIT_FAILED): as for one that died,
        // rather than an uncaught exception in this timer and no checkpoint before the backstop.
        this.state = 'idle';
        this.inline();
        return;
      }
    }
    this.state = 'running';
    this.again = false;
    this.thread
      .all('PRAGMA wal_checkpoint(PASSIVE)')
      .then(
        (rows) => {
          if (Number((rows[0] as { log?: number } | undefined)?.log) >= WAL_RESTART_FRAMES) this.restartWal = true;
        },
        (err) => {
          this.failed(err);
          if (this.thread?.ended && !this.stopped) this.inline();
        },
      )
      .finally(() => {
        this.state = 'idle';
        if (this.again) this.afterCommit();
      });
  }

  /**
   * The WAL's last frame and the frames a checkpoint has copied so far, read from the
   * wal-index header (https://www.sqlite.org/walformat.html: mxFrame at byte 16, nBackfill at
   * byte 96, in the machine's byte order). Every SQLite version since 3.7.0 shares this file
   * with every other, so its layout cannot change. Null when it cannot be read; then the
   * thread checkpoints without looking.
   */
  private walIndex(): { lastFrame: number; copied: number } | null {
    try {
      const file = this.shm.file;
      file.fd ??= openSync(`${this.shm.key}-shm`, 'r');
      const head = Buffer.alloc(100);
      if (readSync(file.fd, head, 0, 100, 0) < 100) return null;
      return endianness() === 'LE'
        ? { lastFrame: head.readUInt32LE(16), copied: head.readUInt32LE(96) }
        : { lastFrame: head.readUInt32BE(16), copied: head.readUInt32BE(96) };
    } catch {
      return null;
    }
  }

  /**
   * The thread could not run (it failed to start, or died): SQLite's own checkpoint in COMMIT
   * takes over at its usual length, as before there was a thread, rather than a new thread
   * every CHECKPOINT_EVERY_MS that fails the same way.
   */
  private inline(): void {
    this.inlineOnly = true;
    this.db.pragma(`wal_autocheckpoint = ${INLINE_CHECKPOINT_FRAMES}`);
  }

  /**
   * A checkpoint fsyncs the WAL before it copies: an I/O error there is a failed fsync. Other
   * errors (busy, a full disk) leave the WAL as it was, for the next checkpoint.
   */
  private failed(err: unknown): void {
    if (nativeCodeOf(err).startsWith('SQLITE_IOERR')) this.failedSync(storeErrorOf(err));
  }
}
