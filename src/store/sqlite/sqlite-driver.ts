import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Gate } from '../../core/gate.js';
import { WHOLE_LAMBDA } from '../../core/gate.js';
import type { AttemptRow, TaskRow } from '../../core/task.js';
import type { TaskState } from '../../core/task-state.js';
import type { Driver, EndedRow, FencedItem, LambdaRow, Queries } from '../driver.js';
import { attemptOf, endedOf, taskOf } from '../rows.js';
import { loadMigrations, loadQueries } from '../sql-files.js';
import { storeErrorOf } from '../store-error.js';

export interface SqliteOptions {
  /** Database file; `:memory:` for a throw-away store. */
  path: string;
  /**
   * `full` fsyncs the WAL at every commit: an acknowledged task survives a power loss.
   * `normal` fsyncs only at checkpoints: it survives a killed process (SIGKILL) but a power
   * loss may take the last commits. Group commit makes `full` cheap (one fsync per batch,
   * about 0.17 ms on the reference disk), so it is the default.
   * @default 'full'
   */
  synchronous?: 'full' | 'normal';
  /** How long a statement waits for another process's write lock. @default 5000 */
  busyTimeoutMs?: number;
}

type Stmt = Database.Statement;

/**
 * The embedded store on one SQLite file (better-sqlite3, WAL). better-sqlite3 is synchronous:
 * a statement blocks the event loop for its few microseconds, which is cheaper than any
 * hand-off to a thread at these sizes. Transactions are serialised by a promise chain, so a
 * transaction that awaits between statements never interleaves with another.
 */
export class SqliteDriver implements Driver {
  readonly dialect = 'sqlite' as const;
  readonly capabilities = { multiProcess: false, listenNotify: false };
  private readonly db: Database.Database;
  private readonly sql = loadQueries(new URL('./sql/', import.meta.url));
  private readonly stmts = new Map<string, Stmt>();
  private chain: Promise<unknown> = Promise.resolve();
  private readonly queries: Queries;

  constructor(opts: SqliteOptions) {
    if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
    this.db = new Database(opts.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
    // Checkpoints in bigger steps than the 1000-page default: fewer fsyncs of the main file.
    this.db.pragma('wal_autocheckpoint = 4000');
    this.db.pragma('cache_size = -65536');
    this.db.pragma('temp_store = MEMORY');
    this.queries = sqliteQueries(this);
  }

  /** A prepared statement by query name (prepared once, reused). */
  stmt(name: string): Stmt {
    let s = this.stmts.get(name);
    if (!s) {
      const text = this.sql[name];
      if (!text) throw new Error(`sqlite: no query named ${name}`);
      s = this.db.prepare(text);
      this.stmts.set(name, s);
    }
    return s;
  }

  transaction<T>(fn: (q: Queries) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      this.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(this.queries);
        this.exec('COMMIT');
        return out;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    };
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => undefined);
    return next;
  }

  read<T>(fn: (q: Queries) => Promise<T>): Promise<T> {
    return fn(this.queries);
  }

  private exec(sql: string): void {
    try {
      this.db.exec(sql);
    } catch (err) {
      throw storeErrorOf(err);
    }
  }

  async migrate(): Promise<{ applied: string[] }> {
    this.db.exec(`CREATE TABLE IF NOT EXISTS conveyor_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
    const done = new Set(
      (this.db.prepare('SELECT version FROM conveyor_migrations').all() as Array<{ version: number }>).map((r) => r.version),
    );
    const applied: string[] = [];
    for (const m of loadMigrations(new URL('./migrations/', import.meta.url))) {
      if (done.has(m.version)) continue;
      // BEGIN IMMEDIATE: two processes starting on one file apply each migration once.
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const again = this.db.prepare('SELECT 1 FROM conveyor_migrations WHERE version = ?').get(m.version);
        if (!again) {
          this.db.exec(m.sql);
          this.db
            .prepare('INSERT INTO conveyor_migrations (version, name, applied_at) VALUES (?, ?, ?)')
            .run(m.version, m.name, Date.now());
          applied.push(`${String(m.version).padStart(4, '0')}_${m.name}`);
        }
        this.db.exec('COMMIT');
      } catch (err) {
        this.db.exec('ROLLBACK');
        throw err;
      }
    }
    return { applied };
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    await this.chain;
    if (this.db.open) this.db.close();
  }
}

/** Binds the named queries to better-sqlite3 calls; every method is synchronous inside. */
function sqliteQueries(d: SqliteDriver): Queries {
  const all = (name: string, params: object = {}) => guard(() => d.stmt(name).all(params) as Record<string, unknown>[]);
  const get = (name: string, params: object = {}) => guard(() => d.stmt(name).get(params) as Record<string, unknown> | undefined);
  const run = (name: string, params: object = {}) => guard(() => d.stmt(name).run(params).changes);
  const b = (v: boolean) => (v ? 1 : 0);
  const fencedSet = (name: string, items: FencedItem[], extra: object) => {
    const ok = new Set<string>();
    for (const it of items) if (run(name, { ...extra, id: it.id, attempt: it.attempt }) > 0) ok.add(it.id);
    return ok;
  };

  return {
    async taskInsertMany(rows) {
      const inserted = new Set<string>();
      for (const r of rows) {
        const params = { ...r, ordered: b(r.ordered) };
        if (run('taskInsert', params) > 0) inserted.add(r.id);
      }
      return inserted;
    },
    async taskByIds(ids) {
      const out: TaskRow[] = [];
      for (const id of ids) {
        const r = get('taskById', { id });
        if (r) out.push(taskOf(r));
      }
      return out;
    },
    async taskByIdempotencyKeys(keys) {
      const out: TaskRow[] = [];
      for (const key of keys) {
        const r = get('taskByIdempotencyKey', { key });
        if (r) out.push(taskOf(r));
      }
      return out;
    },
    async taskOrderedBusy(pairs) {
      const busy = new Set<string>();
      for (const p of pairs) if (get('taskOrderedBusy', p)) busy.add(`${p.lambda}\u0000${p.key}`);
      return busy;
    },
    async depInsertMany(pairs) {
      for (const p of pairs) run('depInsert', p);
    },
    async taskMarkHasChildren(ids) {
      for (const id of ids) run('taskMarkHasChildren', { id });
    },
    async taskClaimReady(p) {
      return all('taskClaimReady', p).map(taskOf);
    },
    async taskClaimOverdue(p) {
      return all('taskClaimOverdue', p).map(taskOf);
    },
    async taskStartMany(items, leaseUntil, now) {
      const ok = new Set<string>();
      for (const it of items) if (run('taskStart', { ...it, leaseUntil, now }) > 0) ok.add(it.id);
      return ok;
    },
    async taskRenewMany(items, leaseUntil) {
      return fencedSet('taskRenew', items, { leaseUntil });
    },
    async taskSucceedMany(items, now, retainUntil) {
      const out: EndedRow[] = [];
      for (const it of items) {
        const r = get('taskSucceed', { ...it, now, retainUntil });
        if (r) out.push(endedOf(r));
      }
      return out;
    },
    async taskFailMany(items, now) {
      const out: EndedRow[] = [];
      for (const it of items) {
        const r = get('taskFail', { ...it, now });
        if (r) out.push(endedOf(r));
      }
      return out;
    },
    async taskReleaseMany(items, nextCheckAt, now) {
      const out: Array<{ id: string; lambda: string }> = [];
      for (const it of items) {
        const r = get('taskRelease', { id: it.id, attempt: it.attempt, nextCheckAt, now });
        if (r) out.push({ id: it.id, lambda: r.lambda as string });
      }
      return out;
    },
    async attemptInsertMany(rows) {
      for (const r of rows) run('attemptInsert', r);
    },
    async taskPlaceMany(items, now) {
      const out: EndedRow[] = [];
      for (const it of items) {
        const r = get('taskPlace', {
          id: it.id,
          from: JSON.stringify(it.from),
          anyHold: it.fromHold === undefined ? 1 : 0,
          fromHold: it.fromHold ?? null,
          state: it.state,
          hold: it.hold,
          nextCheckAt: it.nextCheckAt,
          reason: it.reason,
          finishedAt: it.finishedAt,
          now,
        });
        if (r) out.push(endedOf(r));
      }
      return out;
    },
    async taskRedrive(id, now) {
      return run('taskRedrive', { id, now }) > 0;
    },
    async taskDue(now, limit) {
      return all('taskDue', { now, limit }).map(taskOf);
    },
    async depWaitingChildren(parentIds) {
      const out: string[] = [];
      for (const parentId of parentIds) for (const r of all('depWaitingChildren', { parentId })) out.push(r.id as string);
      return out;
    },
    async taskDepResolve(childIds) {
      const out: TaskRow[] = [];
      for (const id of childIds) {
        const r = get('taskDepResolve', { id });
        if (r && (r.deps_pending as number) === 0) out.push(taskOf(r));
      }
      return out;
    },
    async taskKeyNext(lambda, key) {
      const r = get('taskKeyNext', { lambda, key });
      return r ? taskOf(r) : null;
    },
    async taskOfGate(p) {
      return all(p.source === 'ready' ? 'taskOfGateReady' : 'taskOfGateHeld', {
        lambda: p.lambda,
        collection: p.collection,
        limit: p.limit,
        afterId: p.after?.id ?? null,
        afterPriority: p.after?.priority ?? null,
      }).map(taskOf);
    },
    async taskDeleteMany(ids) {
      let n = 0;
      for (const id of ids) {
        run('attemptDeleteByTask', { id });
        run('depDeleteByTask', { id });
        n += run('taskDelete', { id });
      }
      return n;
    },
    async taskGet(id) {
      const r = get('taskById', { id });
      return r ? taskOf(r) : null;
    },
    async taskList(p) {
      const failed = p.state === 'FATAL_FAILURE' || p.state === 'RETRIABLE_FAILURE' || p.state === 'CANCELLED';
      const name = p.key ? 'taskListByKey' : p.lambda ? 'taskListByLambda' : failed ? 'taskListFailed' : 'taskList';
      return all(name, {
        lambda: p.lambda ?? null,
        state: p.state ?? null,
        key: p.key ?? null,
        beforeId: p.beforeId ?? null,
        limit: p.limit,
      }).map(taskOf);
    },
    async attemptList(taskId) {
      return all('attemptList', { taskId }).map(attemptOf) as AttemptRow[];
    },
    async taskCounts() {
      return all('taskCounts').map((r) => ({ lambda: r.lambda as string, state: r.state as TaskState, count: r.count as number }));
    },
    async taskOpenCount() {
      return (get('taskOpenCount')?.count as number) ?? 0;
    },
    async taskNextCheck() {
      return (get('taskNextCheck')?.at as number | null | undefined) ?? null;
    },
    async lambdaUpsertMany(rows: LambdaRow[]) {
      for (const r of rows) run('lambdaUpsert', { name: r.name, config: JSON.stringify(r.config), updatedAt: r.updatedAt });
    },
    async lambdaList() {
      return all('lambdaList').map((r) => ({
        name: r.name as string,
        config: JSON.parse(r.config as string),
        updatedAt: r.updated_at as number,
      }));
    },
    async gateSet(gate: Gate, now: number) {
      if (gate.mode === 'open') run('gateDelete', gate);
      else run('gateSet', { ...gate, now });
    },
    async gateList() {
      return all('gateList').map((r) => ({
        lambda: r.lambda as string,
        collection: (r.collection as string) ?? WHOLE_LAMBDA,
        mode: r.mode as Gate['mode'],
      }));
    },
    async leaseTry(name, holder, now, until) {
      return get('leaseTry', { name, holder, now, until }) !== undefined;
    },
    async leaseRelease(name, holder) {
      run('leaseRelease', { name, holder });
    },
    async cronGet(lambda) {
      return (get('cronGet', { lambda })?.last_at as number | undefined) ?? null;
    },
    async cronSet(lambda, lastAt) {
      run('cronSet', { lambda, lastAt });
    },
  };
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw storeErrorOf(err);
  }
}
