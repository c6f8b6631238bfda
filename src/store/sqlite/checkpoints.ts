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
/** Checkpoints on the writer's connection once the thread has failed: in bigger steps than SQLite's 1,000-page default, fewer fsyncs of the main file. */
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
 *
 * SQLite's own automatic checkpoint is off: it runs after a COMMIT and throws its error away
 * (sqlite3WalDefaultHook), so an fsync of the WAL failing in it went unseen, and the next
 * fsync, reporting nothing, acknowledged commits the failed write-back may have taken. Every
 * checkpoint on the writer's connection is run here instead, where its error is seen.
 */
export class Checkpoints {
  private thread: SqliteThread | null = null;
  private state: 'idle' | 'waiting' | 'running' = 'idle';
  /** A commit came while a look or a checkpoint was pending: another look follows it. */
  private again = false;
  /** The thread failed: the writer's connection checkpoints, between transactions (see inline()). */
  private inlineOnly = false;
  /**
   * A checkpoint on the writer before its next transaction: the thread's last one found a long
   * WAL (finished here, so the WAL restarts), or one was due while a transaction was open.
   */
  private writerNext = false;
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
    // Never inside a COMMIT, where a failed fsync of the WAL would go unreported (see above).
    db.pragma('wal_autocheckpoint = 0');
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

  /** Before a transaction begins: a checkpoint due on the writer runs here (a long WAL's is finished, so this write restarts it). */
  beforeTransaction(): void {
    if (!this.writerNext || this.state === 'running') return;
    this.writerNext = false;
    this.onWriter();
  }

  /** After a commit: a look at the WAL's length within CHECKPOINT_EVERY_MS. */
  afterCommit(): void {
    if (this.stopped) return;
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
    if (wal && wal.lastFrame - wal.copied < (this.inlineOnly ? INLINE_CHECKPOINT_FRAMES : CHECKPOINT_FRAMES)) {
      // Too few frames yet; look again after the next commit, or now if there were commits
      // meanwhile (the last ones of a burst would otherwise wait for the next write).
      this.state = 'idle';
      if (this.again) {
        this.again = false;
        this.afterCommit();
      }
      return;
    }
    if (!this.inlineOnly && (!this.thread || this.thread.ended)) {
      try {
        this.thread = new SqliteThread(this.path, { readonly: false });
      } catch {
        // No thread to be had (new Worker throws ERR_WORKER_INIT_FAILED): as for one that died,
        // rather than an uncaught exception in this timer and no checkpoint at all.
        this.inline();
      }
    }
    const thread = this.thread;
    if (this.inlineOnly || !thread) {
      // Between transactions, as SQLite's own checkpoint ran after a COMMIT.
      if (this.db.inTransaction) this.writerNext = true;
      else this.onWriter();
      this.state = 'idle';
      if (this.again) {
        this.again = false;
        this.afterCommit();
      }
      return;
    }
    this.state = 'running';
    this.again = false;
    thread
      .all('PRAGMA wal_checkpoint(PASSIVE)')
      .then(
        (rows) => {
          if (Number((rows[0] as { log?: number } | undefined)?.log) >= WAL_RESTART_FRAMES) this.writerNext = true;
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

  /** A checkpoint on the writer's connection, between its transactions. */
  private onWriter(): void {
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch (err) {
      this.failed(err);
    }
  }

  /**
   * The thread could not run (it failed to start, or died): the writer's connection checkpoints
   * every INLINE_CHECKPOINT_FRAMES, as SQLite's own checkpoint in COMMIT did before there was a
   * thread, rather than a new thread every CHECKPOINT_EVERY_MS that fails the same way.
   */
  private inline(): void {
    this.inlineOnly = true;
  }

  /**
   * A checkpoint fsyncs the WAL before it copies: an I/O error there is a failed fsync. Other
   * errors (busy, a full disk) leave the WAL as it was, for the next checkpoint.
   */
  private failed(err: unknown): void {
    if (nativeCodeOf(err).startsWith('SQLITE_IOERR')) this.failedSync(storeErrorOf(err));
  }
}
