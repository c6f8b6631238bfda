import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileServerOptions, type ServerOptions } from '../../src/config/options.js';
import { type LambdaConfig, lambdaConfigOf } from '../../src/core/lambda.js';
import type { ClaimedRow, TaskRow } from '../../src/core/task.js';
import { silentLogger } from '../../src/log.js';
import { type HelloFrame, PROTOCOL_VERSION, type ServerFrame } from '../../src/protocol/frames.js';
import { parseWorkerFrame } from '../../src/protocol/validate.js';
import { Dispatcher, type Session } from '../../src/server/dispatcher.js';
import { Engine } from '../../src/server/engine.js';
import type { GateCache } from '../../src/server/gates.js';
import { GroupCommit } from '../../src/server/group-commit.js';
import type { Store, StoreOps } from '../../src/store/store.js';
import { StoreError } from '../../src/store/store-error.js';
import { onCleanup, startConveyor, tempDir, until } from '../helpers.js';

const openGates = { lambdaMode: () => 'open' } as unknown as GateCache;
const clock = { now: () => 1_000 };

function dispatcher(): Dispatcher {
  return new Dispatcher(openGates, { leaseMs: 500, claimBatchMax: 500, agingShare: 0, clock });
}

function session(id: string, lambdas: string[], credit: number): Session & { sent: ClaimedRow[][] } {
  const sent: ClaimedRow[][] = [];
  return {
    id,
    workerId: `worker-${id}`,
    lambdas: new Set(lambdas),
    link: { sendTasks: (rows) => sent.push(rows), send: () => {}, close: () => {} },
    credit,
    outstanding: 0,
    capacity: credit,
    concurrency: credit,
    connectedAt: 0,
    caps: new Map(),
    capped: new Map(),
    sent,
  };
}

/** A transaction as the dispatcher sees one: a key for its deliveries, and what it inserted and enqueued. */
function tx(claim?: StoreOps['claim']): StoreOps {
  return { enqueued: new Set<string>(), inserted: new Set<string>(), claim } as unknown as StoreOps;
}

const row = (id: string, lambda: string): ClaimedRow => ({
  id,
  lambda,
  collection: null,
  payload: '{}',
  priority: 0,
  key: null,
  attempt: 1,
  tries: 1,
  maxAttempts: 3,
  timeoutMs: 1000,
  runAt: 0,
});

describe('hand-out at insert (Dispatcher as the store Handout)', () => {
  it('places fresh tasks only while a worker of their lambda has credit, and makes the rest ready', async () => {
    const d = dispatcher();
    const a = session('a', ['mail'], 2);
    const b = session('b', ['resize'], 5);
    d.attach(a);
    d.attach(b);
    // A worker's arrival marks its lambdas ready (a backlog may wait): nothing jumps it.
    expect(d.assign(tx(), [{ id: 't0', lambda: 'mail' }])).toEqual([null]);
    // A claim that comes back short clears the mark.
    await d.claimPhase(tx(async () => ({ rows: [], overdueShort: false })));
    const places = d.assign(
      tx(),
      ['t1', 't2', 't3', 't4'].map((id) => ({ id, lambda: 'mail' })),
    );
    expect(places.map((p) => p?.workerId ?? null)).toEqual(['worker-a', 'worker-a', null, null]);
    expect(places[0]?.leaseUntil).toBe(1_500);
    expect({ credit: a.credit, outstanding: a.outstanding }).toEqual({ credit: 0, outstanding: 2 });
    expect(b.credit).toBe(5);
    // t3 found no place, so mail is ready now: a later insert does not jump it, even with credit back.
    a.credit = 1;
    expect(d.assign(tx(), [{ id: 't5', lambda: 'mail' }])).toEqual([null]);
    expect(d.mayHaveReady('mail')).toBe(true);
  });

  it('does not hand out ahead of tasks the same transaction made ready (the children of a parent, say)', async () => {
    const d = dispatcher();
    d.attach(session('a', ['mail'], 2));
    await d.claimPhase(tx(async () => ({ rows: [], overdueShort: false })));
    const ops = tx();
    ops.enqueued.add('mail');
    expect(d.assign(ops, [{ id: 't1', lambda: 'mail' }])).toEqual([null]);
    expect(d.assign(tx(), [{ id: 't2', lambda: 'mail' }])[0]?.workerId).toBe('worker-a');
  });

  it('gives workers turns, idle handlers before buffer places', async () => {
    const d = dispatcher();
    const a = session('a', ['mail'], 4);
    const b = session('b', ['mail'], 4);
    a.concurrency = b.concurrency = 2;
    d.attach(a);
    d.attach(b);
    await d.claimPhase(tx(async () => ({ rows: [], overdueShort: false })));
    const who = (n: number) =>
      d
        .assign(
          tx(),
          Array.from({ length: n }, (_, i) => ({ id: `t${i}`, lambda: 'mail' })),
        )
        .map((p) => p?.workerId.slice(-1));
    const first = who(4);
    expect(first.filter((w) => w === 'a')).toHaveLength(2);
    expect(first.filter((w) => w === 'b')).toHaveLength(2);
    expect(first[0]).not.toBe(first[1]);
    // Both workers' handlers are busy now; a frees one: the next task goes to it, not to b's buffer.
    a.outstanding = 1;
    expect(who(1)).toEqual(['a']);
  });

  it('sends what was written after the commit, and gives back the places of what was not', async () => {
    const d = dispatcher();
    const a = session('a', ['mail'], 3);
    d.attach(a);
    await d.claimPhase(tx(async () => ({ rows: [], overdueShort: false })));
    const ops = tx();
    const places = d.assign(
      ops,
      ['t1', 't2', 't3'].map((id) => ({ id, lambda: 'mail' })),
    );
    d.settle(
      ops,
      [
        { place: places[0]!, row: row('t1', 'mail') },
        { place: places[1]!, row: row('t2', 'mail') },
      ],
      [places[2]!],
    );
    expect({ credit: a.credit, outstanding: a.outstanding }).toEqual({ credit: 1, outstanding: 2 });
    expect(a.sent).toEqual([]);
    expect(d.deliver(ops).map((r) => r.id)).toEqual(['t1', 't2']);
    expect(a.sent.map((rows) => rows.map((r) => r.id))).toEqual([['t1', 't2']]);
  });

  it('gives the places back when the transaction rolls back', async () => {
    const d = dispatcher();
    const a = session('a', ['mail'], 2);
    d.attach(a);
    await d.claimPhase(tx(async () => ({ rows: [], overdueShort: false })));
    const ops = tx();
    const [p] = d.assign(ops, [{ id: 't1', lambda: 'mail' }]);
    d.settle(ops, [{ place: p!, row: row('t1', 'mail') }], []);
    d.forget(ops);
    expect({ credit: a.credit, outstanding: a.outstanding }).toEqual({ credit: 2, outstanding: 0 });
    expect(d.deliver(ops)).toEqual([]);
    expect(a.sent).toEqual([]);
  });

  it('holds a claim’s places while it runs, so an insert meanwhile cannot hand them out twice', async () => {
    const d = dispatcher();
    const a = session('a', ['mail', 'resize'], 4);
    d.attach(a);
    await d.claimPhase(tx(async () => ({ rows: [], overdueShort: false })));
    d.markReady(['mail']);
    let placedDuringClaim: unknown[] = [];
    const claiming = d.claimPhase(
      tx(async ({ limit }) => {
        // Another flush inserts resize tasks while this claim waits for the database.
        placedDuringClaim = d.assign(tx(), [{ id: 'r1', lambda: 'resize' }]);
        return { rows: Array.from({ length: limit }, (_, i) => row(`m${i}`, 'mail')), overdueShort: false };
      }),
    );
    await claiming;
    expect(placedDuringClaim).toEqual([null]);
    expect({ credit: a.credit, outstanding: a.outstanding }).toEqual({ credit: 0, outstanding: 4 });
  });
});

describe('hand-out at insert (embedded)', () => {
  it('answers a submit to an idle worker already claimed, and runs it once', async () => {
    const c = await startConveyor({ concurrency: 2, lambdas: [{ name: 'ok', handler: async (p) => ({ echo: p }) }] });
    // Let the worker's first (empty) claim clear its lambda's ready mark.
    await c.waitFor((await c.submit('ok', { warm: true })).id);
    const t = await c.submit('ok', { n: 1 });
    expect(t).toMatchObject({ state: 'CLAIMED', attempt: 1 });
    const done = await c.waitFor(t.id);
    expect(done).toMatchObject({ state: 'SUCCESS', attempt: 1, result: { echo: { n: 1 } } });
    expect((await c.get(t.id, { attempts: true })).attempts).toHaveLength(1);
  });
});

/**
 * A dispatcher on a clock the test moves, with one worker whose lambda `capped` runs one at a
 * time; `claim` makes a claim phase's transaction that takes the given ids and records each limit.
 */
function cappedWorker() {
  const clock = { at: 1_000, now: () => clock.at };
  const d = new Dispatcher(openGates, { leaseMs: 500, claimBatchMax: 500, agingShare: 0, clock });
  const s = { ...session('a', ['capped'], 10), caps: new Map([['capped', 1]]) };
  d.attach(s);
  const asked: number[] = [];
  const claim = (ids: string[]) =>
    tx(async ({ limit }) => {
      asked.push(limit);
      return { rows: ids.slice(0, limit).map((id) => row(id, 'capped')), overdueShort: false };
    });
  return { d, s, clock, asked, claim };
}

/** A started engine on a fresh SQLite file, with these lambdas registered. */
async function startedEngine(lambdas: LambdaConfig[], opts: ServerOptions = {}): Promise<Engine> {
  const engine = await Engine.open(compileServerOptions({ store: join(tempDir(), 'engine.db'), heartbeatMs: 1000, ...opts }), silentLogger);
  onCleanup(() => engine.close());
  engine.start();
  await engine.registerLambdas(lambdas);
  return engine;
}

/** A worker connection to `engine` that keeps what it is sent; `hello` says hello on it. */
function workerOn(engine: Engine) {
  const frames: ServerFrame[] = [];
  const tasks: TaskRow[] = [];
  const side = engine.connectWorker({ sendTasks: (rows) => tasks.push(...rows), send: (f) => frames.push(f), close: () => {} });
  const hello = (f: Omit<HelloFrame, 'type' | 'protocol'>) => side.onFrame({ type: 'hello', protocol: PROTOCOL_VERSION, ...f });
  return { side, frames, tasks, hello };
}

describe('per-lambda caps', () => {
  it("keeps a worker's places from filling with a lambda it runs one at a time, so its other lambdas do not wait on it", async () => {
    const order: string[] = [];
    const c = await startConveyor({
      concurrency: 4,
      prefetch: 4,
      lambdas: [
        {
          name: 'one-at-a-time',
          concurrency: 1,
          handler: async (n: unknown) => {
            await new Promise((r) => setTimeout(r, 100));
            order.push(`slow${n}`);
          },
        },
        { name: 'quick', handler: async (n: unknown) => void order.push(`quick${n}`) },
      ],
    });
    // More slow tasks than the worker has places: both lambdas are ready at every claim.
    await c.submitMany(Array.from({ length: 30 }, (_, i) => ({ lambda: 'one-at-a-time', payload: i })));
    const quick = await c.submitMany(Array.from({ length: 20 }, (_, i) => ({ lambda: 'quick', payload: i })));
    for (const t of quick) await c.waitFor(t.id, { timeoutMs: 10_000 });
    // The quick tasks do not wait for the slow ones (100 ms each, one at a time); with the
    // places full of slow tasks, they went one per slow task that ended.
    expect(order.filter((x) => x.startsWith('slow')).length).toBeLessThan(3);
  });

  it('claims two rounds of a cap at most, and stops counting a task once a heartbeat shows the worker dropped it', async () => {
    const { d, s, clock, asked, claim } = cappedWorker();
    const first = claim(['t1', 't2', 't3']);
    await d.claimPhase(first);
    expect(asked).toEqual([2]); // a cap of 1: one running, one waiting
    d.deliver(first);
    await d.claimPhase(claim(['t3']));
    expect(asked).toEqual([2]); // no room: not even asked
    clock.at += 1000;
    d.heard(s, [{ id: 't1' }, { id: 't2' }]); // the first heartbeat only starts the count
    clock.at += 1000;
    d.heard(s, [{ id: 't1' }]); // t2, handed out before the last heartbeat, was dropped
    await d.claimPhase(claim(['t3']));
    expect(asked).toEqual([2, 1]);
  });

  it('counts what a reconnecting worker still holds against the caps, from its hello', async () => {
    const lambdas = [lambdaConfigOf({ name: 'capped', concurrency: 1 }), lambdaConfigOf({ name: 'quick' })];
    const engine = await startedEngine(lambdas);
    const { side, frames, tasks } = workerOn(engine);
    // Back after a dropped connection, still holding two tasks of the capped lambda (one
    // running, one waiting: its two rounds). Through the frame check, as over the socket.
    const hello = {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      workerId: 'w1',
      lambdas,
      capacity: 4,
      concurrency: 4,
      held: [
        { id: '01KAAAAAAAAAAAAAAAAAAAAAAA', attempt: 1, lambda: 'capped' },
        { id: '01KAAAAAAAAAAAAAAAAAAAAAAB', attempt: 2, lambda: 'capped' },
      ],
    };
    side.onFrame(parseWorkerFrame(JSON.stringify(hello)));
    await until(() => frames.some((f) => f.type === 'welcome'), 5000, 'welcome');
    await engine.submit([
      { lambda: 'capped', payload: 1 },
      { lambda: 'capped', payload: 2 },
    ]);
    await engine.submit([{ lambda: 'quick', payload: 3 }]);
    await until(() => tasks.some((t) => t.lambda === 'quick'), 5000, 'the quick task');
    // The free places went to the quick lambda only: the capped one has no room left.
    expect(tasks.map((t) => t.lambda)).toEqual(['quick']);
  });

  it('keeps counting claimed tasks that heartbeats cannot list yet (their flush is not durable)', async () => {
    const { d, s, clock, asked, claim } = cappedWorker();
    const first = claim(['t1', 't2', 't3']);
    await d.claimPhase(first);
    // While the flush's commit (or fsync) runs, a handler's ctx.heartbeat() sends two
    // heartbeats in quick succession: the worker does not hold t1 and t2 yet.
    clock.at += 1;
    d.heard(s, []);
    clock.at += 1;
    d.heard(s, []);
    expect(d.deliver(first).map((r) => r.id)).toEqual(['t1', 't2']);
    await d.claimPhase(claim(['t3']));
    expect(asked).toEqual([2]); // still two held: no room
  });
});

describe('claims for a worker that leaves', () => {
  it('gives back at once what was claimed for a worker that left before it could be sent', async () => {
    const d = dispatcher();
    const s = session('a', ['job'], 10);
    d.attach(s);
    const unsent: string[] = [];
    d.unsent = (_s, rows) => unsent.push(...rows.map((r) => r.id));
    const ops = tx(async ({ limit }) => ({ rows: ['t1', 't2'].slice(0, limit).map((id) => row(id, 'job')), overdueShort: false }));
    await d.claimPhase(ops);
    d.detach(s.id); // the connection closed while the claim's commit was made durable
    expect(d.deliver(ops).map((r) => r.id)).toEqual(['t1', 't2']);
    expect(s.sent).toEqual([]);
    expect(unsent).toEqual(['t1', 't2']);
  });

  it('runs such a task on the next worker without a lease to wait out or an attempt spent', async () => {
    const lambdas = [lambdaConfigOf({ name: 'job' })];
    const engine = await startedEngine(lambdas, { leaseMs: 60_000 });
    const [{ task }] = await engine.submit([{ lambda: 'job', payload: 1 }]); // ready, no worker yet
    // The claim's commit is made durable slowly: the worker leaves in between.
    const durable = engine.store.durable.bind(engine.store);
    let leave!: () => void;
    const left = new Promise<void>((r) => (leave = r));
    engine.store.durable = async () => {
      leave();
      await new Promise((r) => setTimeout(r, 50));
      return durable();
    };
    const first = workerOn(engine);
    first.hello({ workerId: 'w1', lambdas, capacity: 1, concurrency: 1 });
    await left;
    first.side.onClose();
    engine.store.durable = durable;
    const second = workerOn(engine);
    second.hello({ workerId: 'w2', lambdas, capacity: 1, concurrency: 1 });
    await until(() => second.tasks.length === 1, 5000, 'the task handed to the next worker');
    expect(first.tasks).toEqual([]);
    expect(second.tasks[0]).toMatchObject({ id: task.id, attempt: 2, tries: 1 });
  });
});

describe('hand-out after a failed flush', () => {
  it('claims what a write retried alone made ready before a later, lower-priority insert', async () => {
    // A sweep interval far beyond the test: no tick marks every lambda ready behind the claim phase's back.
    const engine = await startedEngine([lambdaConfigOf({ name: 'job' })], { sweepIntervalMs: 60_000 });
    const [{ task: urgent }] = await engine.submit([{ lambda: 'job', priority: 10, payload: 'urgent' }]);
    await engine.cancel(urgent.id);
    const { side, frames, tasks, hello } = workerOn(engine);
    hello({ workerId: 'w1', lambdas: [lambdaConfigOf({ name: 'job' })], capacity: 1, concurrency: 1 });
    await until(() => frames.some((f) => f.type === 'welcome'), 5000, 'welcome');
    await until(() => !engine.dispatcher.mayHaveReady('job'), 5000, 'the first, empty claim');
    const [{ task: busy }] = await engine.submit([{ lambda: 'job', payload: 'busy' }]);
    await until(() => tasks.length === 1, 5000, 'the worker busy');
    // One flush: the re-drive makes the urgent task ready, the cancel of a claimed task is refused,
    // so the flush rolls back and each write runs again alone.
    const [retried, cancelled] = await Promise.allSettled([engine.retry(urgent.id), engine.cancel(busy.id)]);
    expect([retried.status, cancelled.status]).toEqual(['fulfilled', 'rejected']);
    expect((await engine.get(urgent.id)).task.state).toBe('ENQUEUED');
    // The worker frees its place, and a low-priority task arrives: the urgent one goes first.
    side.onFrame({ type: 'report', credit: 1, done: [{ id: busy.id, attempt: 1, startedAt: Date.now(), result: null }] });
    await engine.submit([{ lambda: 'job', payload: 'later' }]);
    await until(() => tasks.length === 2, 5000, 'a second task');
    expect(tasks[1].id).toBe(urgent.id);
  });
});

describe('claim phase', () => {
  it('claims nothing for a worker that left while the claims of another were running', async () => {
    const d = dispatcher();
    const a = session('a', ['mail'], 2);
    const b = session('b', ['mail'], 2);
    d.attach(a);
    d.attach(b);
    const claimedFor: string[] = [];
    const ops = tx(async ({ limit, workerId }) => {
      claimedFor.push(workerId);
      // The other worker's connection closes while this claim waits for the database.
      d.detach(workerId === a.workerId ? b.id : a.id);
      return { rows: Array.from({ length: limit }, (_, i) => row(`${workerId}-${i}`, 'mail')), overdueShort: false };
    });
    await d.claimPhase(ops);
    expect(claimedFor).toHaveLength(1);
    const gone = claimedFor[0] === a.workerId ? b : a;
    expect({ credit: gone.credit, outstanding: gone.outstanding }).toEqual({ credit: 2, outstanding: 0 });
    expect(d.deliver(ops).map((r) => r.id)).toEqual([`${claimedFor[0]}-0`, `${claimedFor[0]}-1`]);
  });
});

describe('claim phase of a flush given up on', () => {
  it('gives the places back of claims that finish after their flush was given up on', async () => {
    const d = dispatcher();
    const a = session('a', ['mail'], 2);
    d.attach(a);
    let claimsDone!: () => void;
    const finished = new Promise<void>((r) => {
      claimsDone = r;
    });
    // As the PostgreSQL driver does with a transaction that takes too long (liveness.ts): the
    // caller is told it failed at once, and the transaction is left to finish on its own.
    const store = {
      deferredSync: false,
      durable: async () => {},
      transactionWith: (fn: (ops: StoreOps) => Promise<unknown>) => {
        const ops = tx(async ({ limit }) => {
          await new Promise((r) => setTimeout(r, 30));
          return { rows: Array.from({ length: limit }, (_, i) => row(`t${i}`, 'mail')), overdueShort: false };
        });
        void fn(ops).finally(claimsDone);
        return new Promise((_, reject) => setTimeout(() => reject(new StoreError('unavailable', 'no answer in time')), 5));
      },
    } as unknown as Store;
    const commit = new GroupCommit(
      store,
      { maxPending: 10, maxPerFlush: 10, concurrency: 1 },
      {
        beforeCommit: (ops) => d.claimPhase(ops),
        afterCommit: (ops) => d.deliver(ops),
        afterRollback: (ops) => d.forget(ops),
      },
    );
    await expect(commit.run(async () => null)).rejects.toThrow(/no answer/);
    await finished;
    expect(a.sent).toEqual([]);
    expect({ credit: a.credit, outstanding: a.outstanding }).toEqual({ credit: 2, outstanding: 0 });
  });

  it('gives the places back of an insert that ends after its flush was given up on', async () => {
    const d = dispatcher();
    const a = session('a', ['mail'], 2);
    d.attach(a);
    await d.claimPhase(tx(async () => ({ rows: [], overdueShort: false })));
    const ops = tx();
    const [p] = d.assign(ops, [{ id: 't1', lambda: 'mail' }]);
    d.forget(ops);
    d.settle(ops, [{ place: p!, row: row('t1', 'mail') }], []);
    expect(d.deliver(ops)).toEqual([]);
    expect({ credit: a.credit, outstanding: a.outstanding }).toEqual({ credit: 2, outstanding: 0 });
  });
});
