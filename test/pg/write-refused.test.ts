import postgres from 'postgres';
import { expect, it, vi } from 'vitest';
import { toConveyorError } from '../../src/http/errors.js';
import { Harness } from '../../src/store/contract/harness.js';
import { READ_ONLY_REPLACE_MS } from '../../src/store/postgres/liveness.js';
import { PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import { isUnavailable } from '../../src/store/store-error.js';
import { onCleanup } from '../helpers.js';
import { describeIf, freshSchema, PG_URL, pgUnreachable } from './pg-env.js';

// Writes PostgreSQL refuses for the moment, not for what they are: they must answer 503 with
// Retry-After (and a worker's reports must be kept and written later), never 500.

async function driver(url: string): Promise<PostgresDriver> {
  const pg = new PostgresDriver({ url, maxConnections: 2 });
  onCleanup(() => pg.close());
  return pg;
}

/**
 * Makes the connections open now (those pg_stat_activity lists with `where` added) play an
 * old primary demoted to a standby: an insert into the schema's tasks on them is refused with
 * 25006, as a standby refuses it; a connection opened later writes.
 */
async function demote(schema: string, where: string): Promise<void> {
  const admin = postgres(PG_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
  onCleanup(() => admin.end({ timeout: 1 }));
  await admin.unsafe(`
    CREATE TABLE demoted AS SELECT pid FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() ${where};
    CREATE FUNCTION refuse_on_demoted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM demoted WHERE pid = pg_backend_pid()) THEN
        RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction' USING ERRCODE = '25006';
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER refuse_on_demoted BEFORE INSERT ON tasks FOR EACH STATEMENT EXECUTE FUNCTION refuse_on_demoted();`);
}

describeIf(await pgUnreachable(), 'postgres: writes refused for the moment', () => {
  it('answers a write on a read-only server (a primary demoted by a failover, a standby behind a stale address) as unavailable', async () => {
    const { url } = freshSchema();
    await (await driver(url)).migrate();
    // What a standby, or a failed-over primary's old address, answers every write with (25006).
    const standby = new Harness(await driver(`${url}&default_transaction_read_only=on`));
    const err = await standby.insert(standby.task()).catch((e: unknown) => e);
    expect(String(err)).toContain('read-only');
    expect(isUnavailable(err)).toBe(true);
    expect(toConveyorError(err).status).toBe(503);
  });

  it('replaces its pool when its connections reach a demoted primary, so writes reach the new one', async () => {
    const { url, schema } = freshSchema();
    const pg = await driver(url);
    const h = new Harness(pg);
    await pg.migrate();
    await Promise.all([h.insert(h.task()), h.insert(h.task())]); // both pool connections open
    // The connections open now play the old primary: a write on them is refused as on a
    // standby (25006); a connection opened later reaches the new primary.
    await demote(schema, '');
    const refused = await h.insert(h.task()).catch((e: unknown) => e);
    expect(toConveyorError(refused).status).toBe(503);
    const [task] = await h.insert(h.task()); // on a new pool
    expect(task?.state).toBe('ENQUEUED');
    expect(pg.counters.poolReplaced).toBe(1);
  });

  it('replaces its pool again when the new pool reached the old primary too (its refusal is an answer)', async () => {
    const { url, schema } = freshSchema();
    const pg = await driver(url);
    const h = new Harness(pg);
    await pg.migrate();
    await h.insert(h.task());
    // Every connection opened before `cutover.at` reaches the old primary, now a standby: at
    // first all of them, new ones included (the address still leads there, a DNS cache, say).
    const admin = postgres(PG_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
    onCleanup(() => admin.end({ timeout: 1 }));
    await admin.unsafe(`
      CREATE TABLE cutover AS SELECT 'infinity'::timestamptz AS at;
      CREATE FUNCTION refuse_before_cutover() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) < (SELECT at FROM cutover) THEN
          RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction' USING ERRCODE = '25006';
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER refuse_before_cutover BEFORE INSERT ON tasks FOR EACH STATEMENT EXECUTE FUNCTION refuse_before_cutover();`);
    const write = () =>
      h.insert(h.task()).then(
        () => 'written',
        (e: unknown) => toConveyorError(e).status,
      );
    expect(await write()).toBe(503);
    expect(pg.counters.poolReplaced).toBe(1);
    expect(await write()).toBe(503); // the new pool reached the old primary too
    // Now the address leads to the new primary; the new pool's connection still reaches the old one.
    await admin.unsafe('UPDATE cutover SET at = clock_timestamp()');
    const now = Date.now;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => now() + READ_ONLY_REPLACE_MS + 1000);
    onCleanup(() => spy.mockRestore());
    expect(await write()).toBe(503);
    expect(pg.counters.poolReplaced).toBe(2);
    expect(await write()).toBe('written');
  });

  it('lets a transaction in flight on a connection that still writes finish when a refusal replaces the pool', async () => {
    const { url, schema } = freshSchema();
    const pg = await driver(url);
    const h = new Harness(pg);
    await pg.migrate();
    await Promise.all([h.insert(h.task()), h.insert(h.task())]); // both pool connections open
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let begun!: () => void;
    const isBegun = new Promise<void>((r) => (begun = r));
    const holder = h.tx(async (ops) => {
      await ops.q.gateList();
      begun();
      await held;
      return ops.insert([h.task()], h.gate);
    });
    await isBegun;
    // The idle connection plays the old primary; the one in the transaction reached the new one.
    await demote(schema, "AND state = 'idle'");
    const refused = await h.insert(h.task()).catch((e: unknown) => e);
    expect(toConveyorError(refused).status).toBe(503);
    expect(pg.counters.poolReplaced).toBe(1);
    release();
    const [row] = await holder;
    expect(row && 'task' in row && row.task.state).toBe('ENQUEUED');
  });

  it('answers a write that gave up waiting for a lock (lock_timeout set on the URL) as unavailable, as a statement timeout is', async () => {
    const { url } = freshSchema();
    const h = new Harness(await driver(url));
    await h.driver.migrate();
    const [task] = await h.insert(h.task());
    const [claimed] = await h.claim();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = h.tx(async (ops) => {
      await ops.q.taskByIdsForUpdate([task.id]);
      locked();
      await held;
    });
    await isLocked;
    const impatient = new Harness(await driver(`${url}&lock_timeout=200`));
    const err = await impatient.succeed(claimed).catch((e: unknown) => e);
    release();
    await holder;
    expect(String(err)).toContain('lock timeout');
    expect(isUnavailable(err)).toBe(true);
    expect(toConveyorError(err).status).toBe(503);
  });
});
