import postgres from 'postgres';
import { MAX_TIMER_MS, systemRandom } from '../../clock.js';
import type { Driver, Queries } from '../driver.js';
import { loadMigrations, loadQueries } from '../sql-files.js';
import { storeErrorOf } from '../store-error.js';
import { warnIfClientUnpatched } from './client-patch.js';
import { Liveness, within } from './liveness.js';
import { type Exec, PostgresQueries } from './postgres-queries.js';
import { type SearchPath, searchPathOf } from './search-path.js';

export interface PostgresOptions {
  /**
   * `postgres://user:pass@host:port/db`; a `?search_path=name` parameter picks the schema.
   * Other parameters are session settings (e.g. `?statement_timeout=60000` overrides ours).
   */
  url: string;
  /** Pool size: connections this process opens at most, besides one for LISTEN. @default 10 */
  maxConnections?: number;
  /**
   * Schema for Conveyor's tables, created by migrate() when missing; overrides the URL's
   * search_path. @default the URL's search_path, else the server's default (public)
   */
  schema?: string;
}

/**
 * 10 connections a process. A server's writes go through the group commit one flush at a time,
 * so it needs one connection for the flush, one for a WAL flush (durable()), one each for the
 * ingest writers and the singleton duties, and the rest serve API reads in parallel; past that,
 * queries only queue inside PostgreSQL for the same CPUs. Each process also holds one LISTEN
 * connection, so eight processes at 11 fit PostgreSQL's default max_connections of 100 (3 of
 * which are kept for superusers). CONVEYOR_PG_POOL (option pgPool) changes it.
 */
export const DEFAULT_POOL = 10;

// Timeouts. Without them a server whose database went away hangs instead of answering 503:
// postgres.js waits 30 s for a connection by default, PostgreSQL never ends a statement, and
// a connection whose peer vanished without a FIN or RST stays open for TCP's ~15 minutes.
/** A connection attempt that gets no answer (host down, packets dropped) fails after this. */
const CONNECT_TIMEOUT_S = 5;
/**
 * Longest pause between two connection attempts. postgres.js backs off up to 20 s after
 * repeated failures (one counter for the whole pool and its LISTEN connection), so after a
 * 30 s outage a query waited 10 s (measured) for its first try with the database back.
 */
const RECONNECT_MAX_S = 0.5;
/** Server side: a statement running longer is cancelled (57014, answered as 'unavailable'). */
const STATEMENT_TIMEOUT_MS = 30_000;
/** Server side: a transaction left open by a client that vanished (host lost) stops holding its row locks. */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;
/**
 * Client side: a transaction or read that has not settled this long after the server's own
 * timeout is answered 'unavailable' (a database that stopped answering is found much sooner,
 * see liveness.ts).
 */
const CLIENT_TIMEOUT_MARGIN_MS = 5_000;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };
/** A liveness probe (liveness.ts) that gets no answer on a fresh connection within this long finds the database unreachable. */
const PROBE_TIMEOUT_MS = 2_000;
/** GET /healthz must answer 503 fast while the database is away. */
const PING_TIMEOUT_MS = 2_000;

/** Idle connections close after this, so a burst's connections go back to a database many servers share. */
const IDLE_TIMEOUT_S = 60;

const SQL = loadQueries(new URL('./sql/', import.meta.url));
const MIGRATIONS = new URL('./migrations/', import.meta.url);
/** How long close() lets running queries finish before it cuts the connections. */
const CLOSE_TIMEOUT_S = 5;

/**
 * The statement timeout in force: a `statement_timeout` in the URL (ms, or with a unit as
 * PostgreSQL writes it) wins over ours, and the client-side limits must follow it, or a
 * statement the database is still allowed to run would be given up on as unavailable.
 */
export function statementTimeoutOf(url: string): number {
  const q = url.indexOf('?');
  const v = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('statement_timeout');
  const m = v === null ? null : /^\s*(\d+)\s*(ms|s|min|h)?\s*$/.exec(v);
  if (!m) return STATEMENT_TIMEOUT_MS; // absent, or a form PostgreSQL itself will refuse at connect
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 'ms'];
  return ms === 0 ? MAX_TIMER_MS : Math.min(ms, MAX_TIMER_MS); // 0: no limit on the server
}

type Client = postgres.Sql<{ bigint: number }>;
type Conn = postgres.ISql<{ bigint: number }>;

interface Listener {
  /** The channel's name on the database (conveyor_channel of migration 0002). */
  channel: string;
  onPayload(payload: string): void;
  onListen?(): void;
  live: boolean;
  sub: postgres.ListenMeta | null;
}

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
 *
 * Faults: a database that refuses connections answers StoreError 'unavailable' (HTTP 503 with
 * Retry-After) at once, and postgres.js reconnects on the next call, at most RECONNECT_MAX_S
 * after the previous attempt. One that stops answering is found within seconds by a probe, and
 * the pool is replaced (liveness.ts); every call settles within the statement timeout and a margin whatever
 * happens (ping within PING_TIMEOUT_MS). listen() subscriptions come back by themselves after
 * a reconnect (postgres.js re-runs LISTEN when its connection closes; a replaced pool LISTENs
 * anew) and call their onListen again. Two faults crashed the process inside postgres.js 3.4.x,
 * a connection closing with a write pending and one ending while it fetched the array types (a
 * pool replaced during an outage); scripts/patch-deps.mjs guards both on install.
 */
export class PostgresDriver implements Driver {
  readonly dialect = 'postgres' as const;
  /**
   * Writers: flushes in flight at once. A flush is mostly round trips (the server process sat
   * 83% idle at one at a time on the stream bench); four overlap them without starving the
   * pool (10 connections) of room for reads, listens and heartbeats. Stream bench: 2.9k
   * completions/s at one flush at a time, 11.2k at four. deferredSync is off: an asynchronous
   * commit plus the WAL flush before acknowledging cost a round trip more per flush (stream
   * 8.5k/s) for 0.3 ms of latency.
   */
  readonly capabilities = { multiProcess: true, listenNotify: true, deferredSync: false, writers: 4 };
  /** Replaced (with pool and LISTEN connection) when PostgreSQL stopped answering on it. */
  private sql: Client;
  private pool: Queries;
  private readonly where: SearchPath;
  private readonly maxConnections: number;
  private readonly liveness: Liveness;
  private readonly listens = new Set<Listener>();
  private readonly clientTimeoutMs: number;
  /** How often the pool was replaced (tests, diagnostics). */
  readonly counters = { poolReplaced: 0 };
  /** Transactions with `sync: false` committed so far... */
  private asyncCommits = 0;
  /** ...and how many of the first of them a WAL flush has made durable. */
  private durableThrough = 0;
  private flushing: { through: number; done: Promise<void> } | null = null;

  constructor(opts: PostgresOptions) {
    warnIfClientUnpatched();
    this.where = searchPathOf(opts.url, opts.schema);
    this.maxConnections = opts.maxConnections ?? DEFAULT_POOL;
    const statementTimeoutMs = statementTimeoutOf(this.where.url);
    this.clientTimeoutMs = Math.min(statementTimeoutMs + CLIENT_TIMEOUT_MARGIN_MS, MAX_TIMER_MS);
    this.sql = this.connect();
    this.pool = new PostgresQueries(execOn(this.sql));
    this.liveness = new Liveness(
      () => this.probe(),
      (readOnly) => this.replacePool(readOnly),
      statementTimeoutMs,
    );
  }

  private connect(): Client {
    return postgres(this.where.url, {
      max: this.maxConnections,
      connect_timeout: CONNECT_TIMEOUT_S,
      idle_timeout: IDLE_TIMEOUT_S,
      // Seconds before reconnect attempt n: 0.1, 0.2, 0.4 s, then RECONNECT_MAX_S, with jitter so
      // the servers of a restarted database do not all knock at once.
      backoff: (n: number) => Math.min(0.05 * 2 ** n, RECONNECT_MAX_S) * (0.5 + systemRandom.float() / 2),
      // Statements are prepared once per connection and then only bound and executed.
      prepare: true,
      // BIGINT (times in epoch ms, counts) as JS numbers: exact up to 2^53, far past any of ours.
      types: { bigint: { to: 20, from: [20], parse: Number, serialize: String } },
      connection: {
        application_name: 'conveyor',
        statement_timeout: STATEMENT_TIMEOUT_MS,
        idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
        ...(this.where.searchPath ? { search_path: this.where.searchPath } : {}),
      },
      // postgres.js prints notices (e.g. "schema already exists") to the console otherwise.
      onnotice: () => {},
    });
  }

  async transaction<T>(fn: (q: Queries) => Promise<T>, opts: { sync?: boolean } = {}): Promise<T> {
    const sync = opts.sync ?? true;
    const own = new Set<unknown>();
    try {
      const work = () =>
        this.sql.begin(async (tx) => {
          const exec = execOn(tx);
          // Not awaited: postgres.js pipelines it ahead of fn's first statement, so it costs no
          // round trip of its own (awaited, it added 0.1-0.4 ms to a submit's p50).
          const begun = exec(sync ? 'txBegin' : 'txBeginAsyncCommit', []).catch((err: unknown) => {
            if (connectionLost(err)) return NEVER; // see connectionLost
            throw err;
          });
          const done = fn(new PostgresQueries(exec)).catch((err: unknown) => {
            if (connectionLost(err)) return NEVER as Promise<T>; // see connectionLost
            own.add(err);
            throw err;
          });
          return (await Promise.all([begun, done]))[1];
        }) as Promise<T>;
      const out = await this.liveness.guard(work, 'transaction', this.clientTimeoutMs);
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
    const done = this.liveness
      .guard(() => execOn(this.sql)('walFlush', []), 'WAL flush', this.clientTimeoutMs)
      .then(() => {
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
    return this.liveness.guard(() => fn(this.pool), 'read', this.clientTimeoutMs);
  }

  async migrate(): Promise<{ applied: string[] }> {
    const migrations = loadMigrations(MIGRATIONS);
    try {
      return await this.sql.begin(async (tx) => {
        const exec = execOn(tx);
        // One lock per schema: servers starting together apply each migration once.
        await exec('txNoStatementTimeout', []);
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
    await this.liveness.guard(() => execOn(this.sql)('ping', []), 'ping', PING_TIMEOUT_MS);
  }

  async listen(channel: string, onPayload: (payload: string) => void, onListen?: () => void): Promise<() => Promise<void>> {
    const [row] = await this.liveness.guard(() => execOn(this.sql)('notifyChannel', [channel]), 'listen', this.clientTimeoutMs);
    const l: Listener = { channel: row.channel as string, onPayload, onListen, live: true, sub: null };
    await this.subscribe(l, true);
    this.listens.add(l);
    return async () => {
      l.live = false;
      this.listens.delete(l);
      // Bounded: with the database away this would wait for a connection; close() ends it anyway.
      const sub = l.sub;
      if (sub) await this.liveness.guard(async () => void (await sub.unlisten()), 'unlisten', PING_TIMEOUT_MS).catch(() => undefined);
    };
  }

  /**
   * postgres.js keeps one extra connection for the LISTENs of a client; when it closes (database
   * restarted, backend terminated), postgres.js reconnects and LISTENs again, retrying until it
   * succeeds, and runs onlisten each time (test/pg/signals.test.ts, test/pg/restart.test.ts).
   */
  private async subscribe(l: Listener, first: boolean): Promise<void> {
    const client = this.sql;
    try {
      const sub = await client.listen(
        l.channel,
        (payload) => {
          if (l.live) l.onPayload(payload);
        },
        () => {
          if (l.live) l.onListen?.();
        },
      );
      if (client === this.sql) l.sub = sub;
    } catch (err) {
      if (first) throw storeErrorOf(err);
      // A replaced pool whose first LISTEN failed: postgres.js goes on trying by itself.
    }
  }

  /** Whether PostgreSQL answers on a connection of the probe's own (liveness.ts). */
  private async probe(): Promise<void> {
    const probe = postgres(this.where.url, {
      max: 1,
      connect_timeout: PROBE_TIMEOUT_MS / 1000,
      onnotice: () => {},
      connection: { application_name: 'conveyor-probe' },
    });
    try {
      await within(execOn(probe)('ping', []), PROBE_TIMEOUT_MS, 'probe');
    } catch (err) {
      // It answered, with an error (e.g. too many connections): it is there.
      if ((err as { cause?: unknown }).cause instanceof postgres.PostgresError) return;
      throw err;
    } finally {
      void probe.end({ timeout: 0 }).catch(() => undefined);
    }
  }

  /**
   * Gives up the pool's connections (their calls reject at once) and opens a new pool, which
   * LISTENs again for every subscription. For a write refused as read-only (`readOnly`) the
   * old pool's calls in flight finish first (up to CLOSE_TIMEOUT_S): its connections answer,
   * and those that reached the new primary may be committing a write that would otherwise
   * be answered 503 after it happened.
   */
  private replacePool(readOnly = false): void {
    const old = this.sql;
    this.sql = this.connect();
    this.pool = new PostgresQueries(execOn(this.sql));
    this.counters.poolReplaced++;
    void old.end({ timeout: readOnly ? CLOSE_TIMEOUT_S : 0 }).catch(() => undefined);
    for (const l of this.listens) void this.subscribe(l, false);
  }

  async close(): Promise<void> {
    this.liveness.close();
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

/** A promise that never settles. */
const NEVER = new Promise<never>(() => {});

// Native codes (postgres.js's, Node's, PostgreSQL's) of a statement that failed because its
// connection is gone: closed, reset, or ended by the server (admin or crash shutdown, the
// idle-in-transaction timeout).
const LOST = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  '57P01',
  '57P02',
  '57P03',
  '25P03',
]);

/**
 * Whether a statement of a transaction failed because its connection is gone. Then the
 * transaction's callback must not settle: postgres.js 3.4.9 sends ROLLBACK after the callback
 * rejects, even on a connection whose socket has closed, and that write throws an uncaught
 * TypeError from a setImmediate (nextWrite) that kills the process (upstream issues #1154 and
 * #1208; seen in test/pg/restart.test.ts about one run in three). sql.begin() rejects on its own
 * when the connection closes (it races the callback against the connection's onclose), and
 * PostgreSQL rolls the transaction back when the session ends; the abandoned callback is a few
 * closures per lost connection.
 */
function connectionLost(err: unknown): boolean {
  const code = String((err as { cause?: { code?: unknown } })?.cause?.code ?? (err as { code?: unknown })?.code ?? '');
  return LOST.has(code) || code.startsWith('08');
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
