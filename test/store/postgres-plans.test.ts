import type postgres from 'postgres';
import { expect, it } from 'vitest';
import { PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import { loadQueries } from '../../src/store/sql-files.js';
import { onCleanup } from '../helpers.js';
import { describeIf, freshSchema, pgUnreachable } from '../pg/pg-env.js';

const SQL = loadQueries(new URL('../../src/store/postgres/sql/', import.meta.url));
const plain = (rows: ReadonlyArray<Record<string, unknown>>) => rows.map((r) => r['QUERY PLAN']).join('\n');
const ROWS = 20_000;
const BATCH = 500;

// A batch of worker reports must probe the primary key for its ids, not read the whole table:
// on a table without statistics (new, or moved on since the last ANALYZE) PostgreSQL 15 plans a
// full scan for it unless the transaction rules that out (txBegin in sql/driver.sql).
describeIf(await pgUnreachable(), 'PostgreSQL plans of batch updates', () => {
  it('reach a batch of ids through the primary key on a table without statistics', async () => {
    const { url } = freshSchema();
    const driver = new PostgresDriver({ url, maxConnections: 2 });
    onCleanup(() => driver.close());
    await driver.migrate();
    // The store's own connections, with the session settings it opens them with.
    const sql = (driver as unknown as { sql: postgres.Sql }).sql;
    await sql.unsafe(
      `INSERT INTO tasks (id, lambda, state, payload, run_at, max_attempts, timeout_ms, attempt, created_at, updated_at)
       SELECT lpad(i::text, 26, '0'), 'l', CASE WHEN i <= ${BATCH} THEN 'CLAIMED' ELSE 'SUCCESS' END, '{}', 0, 3, 1000, 1, 0, 0
         FROM generate_series(1, ${ROWS}) AS i`,
    );
    const ids = Array.from({ length: BATCH }, (_, i) => String(i + 1).padStart(26, '0'));
    const ones = ids.map(() => 1);
    const plans: Record<string, unknown[]> = {
      taskSucceedBatch: [ids, ones, ids.map(() => 5), ids.map(() => 'w'), ids.map(() => '{}'), 10, 20],
      taskStartBatch: [ids, ones, ids.map(() => 5), ids.map(() => 'w'), 20, 10],
      taskRenewBatch: [ids, ones, 20],
    };
    for (const begin of ['txBegin', 'txBeginAsyncCommit']) {
      for (const [name, params] of Object.entries(plans)) {
        const plan = await sql.begin(async (tx) => {
          await tx.unsafe(SQL[begin] as string);
          return plain(await tx.unsafe(`EXPLAIN ${SQL[name]}`, params as never[]));
        });
        expect(plan, `${begin} ${name}`).toContain('Index Scan using tasks_pkey on tasks');
        expect(plan, `${begin} ${name}`).not.toMatch(/Seq Scan|Hash Join|Merge Join|Materialize/);
      }
    }
    // Reads keep the planner's own choice: counting every row is a full scan.
    expect(plain(await sql.unsafe('EXPLAIN SELECT COUNT(*) FROM tasks'))).toContain('Seq Scan on tasks');
  });
});

// The settings take effect only if every write transaction opens with them: the driver's own
// transaction() sends txBegin (durable) or txBeginAsyncCommit (worker reports) before anything else.
describeIf(await pgUnreachable(), 'PostgreSQL write transactions', () => {
  it('open with the keyed-plan settings, and reports with the asynchronous commit too', async () => {
    const { url } = freshSchema();
    const driver = new PostgresDriver({ url, maxConnections: 2 });
    onCleanup(() => driver.close());
    await driver.migrate();
    const sql = (driver as unknown as { sql: postgres.Sql }).sql;
    const firsts: string[] = [];
    const begin = sql.begin.bind(sql) as (fn: (tx: postgres.TransactionSql) => unknown) => Promise<unknown>;
    // Records the first statement each transaction sends, then runs it as it was.
    (sql as unknown as { begin: typeof begin }).begin = (fn) =>
      begin((tx) => {
        const unsafe = tx.unsafe.bind(tx);
        let first = true;
        tx.unsafe = ((text: string, ...rest: never[]) => {
          if (first) firsts.push(text);
          first = false;
          return unsafe(text, ...rest);
        }) as typeof tx.unsafe;
        return fn(tx);
      });
    await driver.transaction((q) => q.taskByIds(['none']));
    await driver.transaction((q) => q.taskByIds(['none']), { sync: false });
    expect(firsts).toEqual([SQL.txBegin, SQL.txBeginAsyncCommit]);
  });
});
