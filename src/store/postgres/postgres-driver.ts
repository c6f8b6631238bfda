import postgres from 'postgres';
import type { Driver, Queries } from '../driver.js';
import { loadMigrations, loadQueries } from '../sql-files.js';
import { storeErrorOf } from '../store-error.js';
import { type Exec, PostgresQueries } from './postgres-queries.js';
import { type SearchPath, searchPathOf } from './search-path.js';

export interface PostgresOptions {
  /** `postgres://user:pass@host:port/db`; a `?search_path=name` parameter picks the schema. */
  url: string;
  /** Pool size: connections this process opens at most. @default 10 */
  maxConnections?: number;
  /**
   * Schema for Conveyor's tables, created by migrate() when missing; overrides the URL's
   * search_path. @default the URL's search_path, else the server's default (public)
   */
  schema?: string;
}

const SQL = loadQueries(new URL('./sql/', import.meta.url));
const MIGRATIONS = new URL('./migrations/', import.meta.url);
/** How long close() lets running queries finish before it cuts the connections. */
const CLOSE_TIMEOUT_S = 5;

type Client = postgres.Sql<{ bigint: number }>;
type Conn = postgres.ISql<{ bigint: number }>;

/**
 * The scale-out store on PostgreSQL (postgres.js). Many server processes share one database:
 * claims take rows with FOR UPDATE SKIP LOCKED, every other write is a conditional update,
 * and migrations run under an advisory lock.
 *
 * Durability: a transaction with `sync: false` commits with synchronous_commit off, so its
 * COMMIT returns before the WAL is flushed (a worker report need not wait for the disk; see
 * docs/durability.md). Measured on the 2-core reference machine: 230-275 us for a one-update
 * transaction so, against 490-590 us with the flush. PostgreSQL flushes such commits within
 * wal_writer_delay on its own, but a flush that hands out claims must not wait for that:
 * durable() flushes the WAL past every such commit.
 */
export class PostgresDriver implements Driver {
  readonly dialect = 'postgres' as const;
  readonly capabilities = { multiProcess: true, listenNotify: true };
  private readonly sql: Client;
  private readonly where: SearchPath;
  private readonly pool: Queries;
  /** Transactions with `sync: false` committed so far... */
  private asyncCommits = 0;
  /** ...and how many of the first of them a WAL flush has made durable. */
  private durableThrough = 0;
  private flushing: { through: number; done: Promise<void> } | null = null;

  constructor(opts: PostgresOptions) {
    this.where = searchPathOf(opts.url, opts.schema);
    this.sql = postgres(this.where.url, {
      max: opts.maxConnections ?? 10,
      // Statements are prepared once per connection and then only bound and executed.
      prepare: true,
      // BIGINT (times in epoch ms, counts) as JS numbers: exact up to 2^53, far past any of ours.
      types: { bigint: { to: 20, from: [20], parse: Number, serialize: String } },
      connection: this.where.searchPath ? { search_path: this.where.searchPath } : {},
      // postgres.js prints notices (e.g. "schema already exists") to the console otherwise.
      onnotice: () => {},
    });
    this.pool = new PostgresQueries(execOn(this.sql));
  }

  async transaction<T>(fn: (q: Queries) => Promise<T>, opts: { sync?: boolean } = {}): Promise<T> {
    const sync = opts.sync ?? true;
    const own = new Set<unknown>();
    try {
      const out = (await this.sql.begin(async (tx) => {
        const exec = execOn(tx);
        if (!sync) await exec('txAsyncCommit', []);
        return fn(new PostgresQueries(exec)).catch((err: unknown) => {
          own.add(err);
          throw err;
        });
      })) as T;
      if (!sync) this.asyncCommits++;
      return out;
    } catch (err) {
      // The caller's own errors pass through as they are (its queries' are mapped already);
      // BEGIN's and COMMIT's are mapped here.
      throw own.has(err) ? err : storeErrorOf(err);
    }
  }

  /**
   * One small write committed synchronously (walFlush in sql/driver.sql; 490-620 us measured,
   * about one synchronous commit) flushes the WAL past every commit before it. It runs only
   * when an asynchronous commit came since the last one, and callers that arrive while it runs
   * share it. (A synchronous commit of our own would flush as much, but only if it wrote
   * something: a transaction that wrote nothing commits without a flush, so it is not counted.)
   */
  durable(): Promise<void> {
    const target = this.asyncCommits;
    if (this.durableThrough >= target) return Promise.resolve();
    if (this.flushing && this.flushing.through >= target) return this.flushing.done;
    const done = execOn(this.sql)('walFlush', []).then(() => {
      this.durableThrough = Math.max(this.durableThrough, target);
    });
    const entry = { through: target, done };
    this.flushing = entry;
    const clear = () => {
      if (this.flushing === entry) this.flushing = null;
    };
    done.then(clear, clear);
    return done;
  }

  read<T>(fn: (q: Queries) => Promise<T>): Promise<T> {
    return fn(this.pool);
  }

  async migrate(): Promise<{ applied: string[] }> {
    const migrations = loadMigrations(MIGRATIONS);
    try {
      return await this.sql.begin(async (tx) => {
        const exec = execOn(tx);
        // One lock per schema: servers starting together apply each migration once.
        await exec('migrationLock', [`conveyor_migrations:${this.where.schema ?? ''}`]);
        if (this.where.schema) {
          const [create] = await exec('schemaCreateStatement', [this.where.schema]);
          await tx.unsafe(create.ddl as string);
        }
        await exec('migrationTable', []);
        const done = new Set((await exec('migrationList', [])).map((r) => Number(r.version)));
        const applied: string[] = [];
        for (const m of migrations) {
          if (done.has(m.version)) continue;
          await tx.unsafe(m.sql); // no parameters: the simple protocol, which runs a whole file
          await exec('migrationRecord', [m.version, m.name]);
          applied.push(`${String(m.version).padStart(4, '0')}_${m.name}`);
        }
        return { applied };
      });
    } catch (err) {
      throw storeErrorOf(err);
    }
  }

  async ping(): Promise<void> {
    await execOn(this.sql)('ping', []);
  }

  async close(): Promise<void> {
    await this.flushing?.done.catch(() => undefined);
    try {
      await this.sql.end({ timeout: CLOSE_TIMEOUT_S });
    } catch (err) {
      throw storeErrorOf(err);
    }
  }
}

/** Drops a schema and everything in it: for tests and benchmarks that made one per run. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const sql = postgres(searchPathOf(url).url, { max: 1, onnotice: () => {} });
  try {
    const [drop] = await execOn(sql)('schemaDropStatement', [schema]);
    await sql.unsafe(drop.ddl as string);
  } catch (err) {
    throw storeErrorOf(err);
  } finally {
    await sql.end({ timeout: CLOSE_TIMEOUT_S });
  }
}

/** Runs named queries on a connection as prepared statements, mapping the database's errors. */
function execOn(conn: Conn | postgres.Sql): Exec {
  return async (name, params) => {
    const text = SQL[name];
    if (text === undefined) throw new Error(`postgres: no query named ${name}`);
    try {
      return await (conn as Conn).unsafe(text, params as never[], { prepare: true });
    } catch (err) {
      throw storeErrorOf(err);
    }
  };
}
