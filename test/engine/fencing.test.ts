import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileServerOptions } from '../../src/config/options.js';
import { lambdaConfigOf } from '../../src/core/lambda.js';
import type { TaskRow } from '../../src/core/task.js';
import { silentLogger } from '../../src/log.js';
import { PROTOCOL_VERSION, type ServerFrame } from '../../src/protocol/frames.js';
import { Engine } from '../../src/server/engine.js';
import { Database } from '../../src/store/sqlite/better-sqlite3.js';
import { onCleanup, tempDir, until } from '../helpers.js';

/** A worker that speaks the protocol by hand, so a test can make it stall past its lease. */
async function rawWorker(engine: Engine, capacity: number) {
  const frames: ServerFrame[] = [];
  const tasks: TaskRow[] = [];
  const side = engine.connectWorker({
    sendTasks: (rows) => tasks.push(...rows),
    send: (f) => frames.push(f),
    close: () => {},
  });
  side.onFrame({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    workerId: `raw-${Math.random()}`,
    lambdas: [lambdaConfigOf({ name: 'job' })],
    capacity,
    concurrency: capacity,
  });
  await until(() => frames.some((f) => f.type === 'welcome'));
  return { side, frames, tasks };
}

describe('fencing by attempt', () => {
  it("refuses a stale worker's late completion once its lease expired and the task moved on", async () => {
    const engine = await Engine.open(
      compileServerOptions({ store: join(tempDir(), 'f.db'), heartbeatMs: 50, leaseMs: 1000, sweepIntervalMs: 20 }),
      silentLogger,
    );
    onCleanup(() => engine.close());
    engine.start();
    const stale = await rawWorker(engine, 1);
    const [{ task }] = await engine.submit([{ lambda: 'job', payload: { n: 1 } }]);
    await until(() => stale.tasks.length === 1, 5000, 'first claim');
    const first = stale.tasks[0];
    stale.side.onFrame({ type: 'report', started: [{ id: first.id, attempt: first.attempt, at: Date.now() }] });
    // The stale worker goes silent (no heartbeat): its lease expires, the sweep rescues the task.
    await until(async () => (await engine.get(task.id)).task.state === 'RETRIABLE_FAILURE', 5000, 'rescue');
    const fresh = await rawWorker(engine, 1);
    await until(() => fresh.tasks.length === 1, 10_000, 'second claim');
    expect(fresh.tasks[0].attempt).toBe(first.attempt + 1);
    // The current holder completes at once: it sends no heartbeats, so its lease is short too.
    const cur = fresh.tasks[0];
    fresh.side.onFrame({ type: 'report', done: [{ id: cur.id, attempt: cur.attempt, startedAt: Date.now(), result: 'fresh' }] });
    await until(async () => (await engine.get(task.id)).task.state === 'SUCCESS', 5000, 'success');

    // The stale worker wakes up and reports: refused, and told so.
    stale.side.onFrame({ type: 'report', done: [{ id: first.id, attempt: first.attempt, startedAt: Date.now(), result: 'late' }] });
    await until(() => stale.frames.some((f) => f.type === 'refused'), 5000, 'refusal');
    const refused = stale.frames.find((f) => f.type === 'refused');
    expect(refused).toMatchObject({ items: [{ id: first.id, attempt: first.attempt }], reason: 'stale_attempt' });

    // Its heartbeat learns the lease is gone too.
    stale.side.onFrame({ type: 'heartbeat', seq: 7, held: [{ id: first.id, attempt: first.attempt }] });
    await until(() => stale.frames.some((f) => f.type === 'heartbeat_ack'), 5000, 'ack');
    expect(stale.frames.find((f) => f.type === 'heartbeat_ack')).toMatchObject({
      seq: 7,
      lost: [{ id: first.id, attempt: first.attempt }],
    });

    const { task: end, attempts } = await engine.get(task.id, { attempts: true });
    expect(JSON.parse(end.result as string)).toBe('fresh');
    expect(attempts?.map((a) => a.outcome)).toEqual(['lost']);
    expect(engine.hsc.counters.refused).toBeGreaterThanOrEqual(1);
  });

  it('acknowledges a report once it is written, and one the store refused (sending it again cannot help)', async () => {
    const path = join(tempDir(), 'acks.db');
    const engine = await Engine.open(compileServerOptions({ store: path, heartbeatMs: 1000, leaseMs: 10_000 }), silentLogger);
    onCleanup(() => engine.close());
    engine.start();
    const w = await rawWorker(engine, 2);
    const [{ task: a }, { task: b }] = await engine.submit([
      { lambda: 'job', payload: 1 },
      { lambda: 'job', payload: 2, key: 'poison' },
    ]);
    await until(() => w.tasks.length === 2, 5000, 'both claimed');
    const acks = () => w.frames.filter((f) => f.type === 'report_ack');

    w.side.onFrame({ type: 'report', seq: 1, done: [{ id: a.id, attempt: 1, startedAt: Date.now(), result: 'ok' }] });
    await until(() => acks().length === 1, 5000, 'the first ack');
    expect(acks()[0]).toEqual({ type: 'report_ack', seq: 1 });
    expect((await engine.get(a.id)).task.state).toBe('SUCCESS'); // written before it was acknowledged

    // A fault only the store knows of, injected through a second connection to the same file.
    const db = new Database(path);
    db.exec(
      `CREATE TRIGGER poison BEFORE UPDATE ON tasks WHEN NEW.key = 'poison' AND NEW.state = 'SUCCESS' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`,
    );
    db.close();
    w.side.onFrame({ type: 'report', seq: 2, done: [{ id: b.id, attempt: 1, startedAt: Date.now(), result: 'ok' }] });
    await until(() => acks().length === 2, 5000, 'the second ack');
    expect(acks()[1]).toEqual({ type: 'report_ack', seq: 2 });
    expect((await engine.get(b.id)).task.state).toBe('CLAIMED'); // not written: its lease will run out
  });

  it('never sends a worker more tasks than the credit it granted', async () => {
    const engine = await Engine.open(compileServerOptions({ store: join(tempDir(), 'c.db'), heartbeatMs: 1000 }), silentLogger);
    onCleanup(() => engine.close());
    engine.start();
    const w = await rawWorker(engine, 3);
    await engine.submit(
      Array.from({ length: 10 }, (_, i) => ({ lambda: 'job', payload: { i } })),
      { batch: true },
    );
    await until(() => w.tasks.length === 3, 5000, 'three tasks');
    await new Promise((r) => setTimeout(r, 100));
    expect(w.tasks.length).toBe(3);
    const t = w.tasks[0];
    w.side.onFrame({ type: 'report', credit: 2, done: [{ id: t.id, attempt: t.attempt, startedAt: Date.now(), result: null }] });
    await until(() => w.tasks.length === 5, 5000, 'two more');
    await new Promise((r) => setTimeout(r, 100));
    expect(w.tasks.length).toBe(5);
  });

  it('keeps no session for a worker whose connection closed while its hello was written', async () => {
    const engine = await Engine.open(compileServerOptions({ store: join(tempDir(), 'g.db'), heartbeatMs: 1000 }), silentLogger);
    onCleanup(() => engine.close());
    engine.start();
    const tasks: TaskRow[] = [];
    const frames: ServerFrame[] = [];
    const side = engine.connectWorker({ sendTasks: (rows) => tasks.push(...rows), send: (f) => frames.push(f), close: () => {} });
    side.onFrame({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      workerId: 'gone-during-hello',
      lambdas: [lambdaConfigOf({ name: 'job' })],
      capacity: 5,
      concurrency: 5,
    });
    side.onClose(); // before the hello's lambda registration was written
    await until(() => frames.some((f) => f.type === 'welcome'), 5000, 'the hello to finish');
    await new Promise((r) => setTimeout(r, 50));
    expect(engine.dispatcher.all()).toEqual([]);
    const [{ task }] = await engine.submit([{ lambda: 'job', payload: {} }]);
    await new Promise((r) => setTimeout(r, 100));
    expect(tasks).toEqual([]);
    expect((await engine.get(task.id)).task.state).toBe('ENQUEUED'); // waits for a live worker, holds no lease
  });

  it('stops counting the tasks a worker dropped without an outcome once it gave their places back', async () => {
    const engine = await Engine.open(compileServerOptions({ store: join(tempDir(), 'o.db'), heartbeatMs: 1000 }), silentLogger);
    onCleanup(() => engine.close());
    engine.start();
    const w = await rawWorker(engine, 4);
    await engine.submit(
      Array.from({ length: 4 }, (_, i) => ({ lambda: 'job', payload: { i } })),
      { batch: true },
    );
    await until(() => w.tasks.length === 4, 5000, 'four tasks');
    const [session] = engine.dispatcher.all();
    expect(session.outstanding).toBe(4);
    // As a worker does with attempts it forsook (lease lost, or three unanswered heartbeats):
    // the places come back, no outcome ever will.
    w.side.onFrame({ type: 'report', credit: 4 });
    expect(session.outstanding).toBe(4);
    w.side.onFrame({ type: 'heartbeat', seq: 1, held: [] });
    await until(() => w.frames.some((f) => f.type === 'heartbeat_ack'), 5000, 'ack');
    expect(session.outstanding).toBe(0);
  });

  it("refuses a stale worker's report that arrives in the same batch as the new holder's", async () => {
    const engine = await Engine.open(
      compileServerOptions({ store: join(tempDir(), 'b.db'), heartbeatMs: 50, leaseMs: 1000, sweepIntervalMs: 20 }),
      silentLogger,
    );
    onCleanup(() => engine.close());
    engine.start();
    const stale = await rawWorker(engine, 1);
    const [{ task }] = await engine.submit([{ lambda: 'job', payload: {} }]);
    await until(() => stale.tasks.length === 1, 5000, 'first claim');
    const old = stale.tasks[0];
    await until(async () => (await engine.get(task.id)).task.state === 'RETRIABLE_FAILURE', 5000, 'rescue');
    const fresh = await rawWorker(engine, 1);
    await until(() => fresh.tasks.length === 1, 10_000, 'second claim');
    const cur = fresh.tasks[0];
    // Both in one turn of the event loop: one write of the reports holds the two attempts.
    stale.side.onFrame({ type: 'report', done: [{ id: old.id, attempt: old.attempt, startedAt: Date.now(), result: 'late' }] });
    fresh.side.onFrame({ type: 'report', done: [{ id: cur.id, attempt: cur.attempt, startedAt: Date.now(), result: 'fresh' }] });
    await until(async () => (await engine.get(task.id)).task.state === 'SUCCESS', 5000, 'success');
    await until(() => stale.frames.some((f) => f.type === 'refused'), 5000, 'refusal of the stale report');
    expect(stale.frames.find((f) => f.type === 'refused')).toMatchObject({ items: [{ id: old.id, attempt: old.attempt }] });
    expect(fresh.frames.some((f) => f.type === 'refused')).toBe(false);
    expect(JSON.parse((await engine.get(task.id)).task.result as string)).toBe('fresh');
  });
});
