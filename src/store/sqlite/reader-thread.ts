import { isMainThread, parentPort, type Worker, workerData } from 'node:worker_threads';
import { startThread } from '../../threads.js';
import { type BetterSqlite3, Database } from './better-sqlite3.js';

/**
 * A second, read-only connection in a worker thread, for reads that scan (task counts by
 * lambda and state over every row): better-sqlite3 is synchronous, so on the main connection
 * such a scan would stop the event loop (1.06 s for 1,000,000 tasks, measured). WAL lets this
 * reader run beside the writer; it sees the last committed state.
 */
export class ReaderThread {
  private readonly thread: Worker;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown[]): void; reject(e: Error): void }>();

  constructor(path: string) {
    this.thread = startThread(new URL(import.meta.url), { workerData: { path } });
    this.thread.unref();
    this.thread.on('message', (m: { id: number; rows?: unknown[]; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(m.error));
      else w?.resolve(m.rows ?? []);
    });
    this.thread.on('error', (err) => {
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  all(sql: string, params: object = {}): Promise<unknown[]> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.thread.postMessage({ id, sql, params });
    });
  }

  close(): Promise<number> {
    return this.thread.terminate();
  }
}

if (!isMainThread && parentPort && (workerData as { path?: string })?.path) {
  const db = new Database((workerData as { path: string }).path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const statements = new Map<string, BetterSqlite3.Statement>();
  parentPort.on('message', (m: { id: number; sql: string; params: object }) => {
    try {
      let s = statements.get(m.sql);
      if (!s) statements.set(m.sql, (s = db.prepare(m.sql)));
      parentPort?.postMessage({ id: m.id, rows: s.all(m.params) });
    } catch (err) {
      parentPort?.postMessage({ id: m.id, error: (err as Error).message });
    }
  });
}
