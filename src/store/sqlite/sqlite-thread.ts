import { isMainThread, parentPort, type Worker, workerData } from 'node:worker_threads';
import { startThread } from '../../threads.js';
import { StoreError, storeErrorOf } from '../store-error.js';
import { type BetterSqlite3, Database } from './better-sqlite3.js';

/**
 * A second connection in a worker thread, for statements too slow for the event loop:
 * better-sqlite3 is synchronous, so on the main connection they would stop it. Read-only for
 * reads that scan (task counts by lambda and state over every row: 1.06 s for 1,000,000 tasks,
 * measured); WAL lets such a reader run beside the writer and see the last committed state.
 * Writable for checkpoints, which copy the WAL into the database file beside the writer too.
 */
export class SqliteThread {
  private readonly thread: Worker;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown[]): void; reject(e: Error): void }>();
  /** Why the thread is gone (it failed, or was closed): a message posted to it now is never answered. */
  private endedBy: Error | null = null;

  constructor(path: string, opts: { readonly: boolean }) {
    this.thread = startThread(new URL(import.meta.url), { workerData: { path, readonly: opts.readonly } });
    this.thread.unref();
    this.thread.on('message', (m: { id: number; rows?: unknown[]; error?: string; code?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(nativeError(m.error, m.code));
      else w?.resolve(m.rows ?? []);
    });
    // A SqliteError reaches here as a plain object holding only its code.
    this.thread.on('error', (err: { message?: string; code?: string }) =>
      this.end(nativeError(err.message ?? 'the SQLite thread failed', err.code)),
    );
    this.thread.on('exit', () => this.end(new StoreError('unavailable', 'sqlite: the SQLite thread ended')));
  }

  /** Whether the thread is gone; the driver then starts another. */
  get ended(): boolean {
    return this.endedBy !== null;
  }

  all(sql: string, params: object = {}): Promise<unknown[]> {
    if (this.endedBy) return Promise.reject(this.endedBy);
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.thread.postMessage({ id, sql, params });
    });
  }

  close(): Promise<number> {
    return this.thread.terminate();
  }

  private end(err: Error): void {
    this.endedBy ??= err;
    for (const w of this.waiting.values()) w.reject(this.endedBy);
    this.waiting.clear();
  }
}

/** The thread's error, with its SQLite code, as the driver's statements answer it. */
function nativeError(message: string, code: string | undefined): Error {
  return storeErrorOf(Object.assign(new Error(message), { code }));
}

if (!isMainThread && parentPort && (workerData as { path?: string })?.path) {
  const { path, readonly } = workerData as { path: string; readonly: boolean };
  const db = new Database(path, { readonly, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const statements = new Map<string, BetterSqlite3.Statement>();
  parentPort.on('message', (m: { id: number; sql: string; params: object }) => {
    try {
      let s = statements.get(m.sql);
      if (!s) statements.set(m.sql, (s = db.prepare(m.sql)));
      parentPort?.postMessage({ id: m.id, rows: s.all(m.params) });
    } catch (err) {
      parentPort?.postMessage({ id: m.id, error: (err as Error).message, code: (err as { code?: string }).code });
    }
  });
}
