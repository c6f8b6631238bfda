import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { compileWorkerOptions } from '../../src/config/options.js';
import type { Handler } from '../../src/core/lambda.js';
import { MAX_FRAME_BYTES } from '../../src/http/routes/workers.js';
import type { Logger } from '../../src/log.js';
import { workerFrameJson } from '../../src/protocol/codec.js';
import type { AttemptRef, DoneItem, ReportFrame, ServerFrame, TaskFrame, WorkerFrame } from '../../src/protocol/frames.js';
import type { WorkerTransport } from '../../src/protocol/transport.js';
import { parseWorkerFrame } from '../../src/protocol/validate.js';
import { Controller } from '../../src/worker/controller.js';
import { until } from '../helpers.js';

/** The server's end of a connection, played by the test: frames sent, and a way to answer. */
function fakeLink() {
  const sent: WorkerFrame[] = [];
  let toWorker: (f: ServerFrame) => void = () => {};
  let state: (s: 'up' | 'down') => void = () => {};
  const transport: WorkerTransport = {
    connect(onFrame, onState) {
      toWorker = onFrame;
      state = onState;
      queueMicrotask(() => onState('up'));
    },
    send: (f) => void sent.push(f),
    close: async () => {},
  };
  return {
    transport,
    sent,
    answer: (f: ServerFrame) => toWorker(f),
    drop: () => state('down'),
    reopen: () => state('up'),
  };
}

const welcome: ServerFrame = {
  type: 'welcome',
  protocol: 1,
  sessionId: 's',
  heartbeatMs: 60_000,
  leaseMs: 240_000,
  gates: [],
  reportAcks: true,
};
const taskFrame = (n: number): TaskFrame => ({
  id: `t${n}`,
  lambda: 'echo',
  collection: null,
  attempt: 1,
  tries: 1,
  maxAttempts: 3,
  priority: 0,
  key: null,
  timeoutMs: 60_000,
  payload: n,
});
const reports = (frames: WorkerFrame[]) => frames.filter((f): f is ReportFrame => f.type === 'report');
const doneIn = (frames: WorkerFrame[]) => reports(frames).flatMap((r) => r.done ?? []);

/** A started controller of one `echo` lambda on a fake link, once it has sent its hello (not welcomed yet). */
async function helloFrom(handler: Handler, opts: { concurrency: number; prefetch: number }) {
  const link = fakeLink();
  const c = new Controller([{ name: 'echo', handler }], compileWorkerOptions(opts), link.transport, systemClock, pino({ level: 'silent' }));
  c.start();
  await until(() => link.sent.some((f) => f.type === 'hello'), 2000, 'hello');
  return { link, c };
}

/** A started worker of one echo lambda on a fake link, with `slots` slots and no prefetch. */
function echoWorker(slots: number, log: Logger) {
  const link = fakeLink();
  const c = new Controller(
    [{ name: 'echo', handler: async (p: unknown) => p }],
    compileWorkerOptions({ concurrency: slots, prefetch: 0 }),
    link.transport,
    systemClock,
    log,
  );
  c.start();
  return { link, c };
}

describe('a worker keeps outcomes until the server acknowledges them', () => {
  it('sends them again after a reconnect, in frames of at most 128, and forgets them once acknowledged', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const { link, c } = echoWorker(300, log);
    await until(() => link.sent.some((f) => f.type === 'hello'), 2000, 'hello');
    link.answer(welcome);
    link.answer({ type: 'tasks', tasks: Array.from({ length: 300 }, (_, i) => taskFrame(i)) });
    await until(() => doneIn(link.sent).length === 300, 2000, 'every outcome reported');
    for (const r of reports(link.sent)) expect((r.done?.length ?? 0) <= 128).toBe(true);
    const firstSeqs = reports(link.sent).flatMap((r) => (r.seq === undefined ? [] : [r.seq]));
    expect(firstSeqs.length).toBeGreaterThanOrEqual(3);

    // The server acknowledged the first report only; then the connection died.
    const firstDone = new Set((reports(link.sent).find((r) => r.seq === firstSeqs[0])?.done ?? []).map((d: DoneItem) => d.id));
    link.answer({ type: 'report_ack', seq: firstSeqs[0] });
    link.drop();
    link.sent.length = 0;
    link.reopen();
    await until(() => link.sent.some((f) => f.type === 'hello'), 2000, 'hello again');
    expect(reports(link.sent)).toEqual([]); // nothing goes out before the new session is welcomed
    link.answer(welcome);
    const again = reports(link.sent);
    const resentIds = doneIn(link.sent).map((d) => d.id);
    expect(resentIds).toHaveLength(300 - firstDone.size);
    expect(resentIds.filter((id) => firstDone.has(id))).toEqual([]);
    for (const r of again) {
      expect(r.seq).toBeTypeOf('number');
      expect((r.done?.length ?? 0) <= 128).toBe(true);
    }

    // The server had some already: it refuses those, then acknowledges everything.
    link.answer({ type: 'refused', items: [{ id: resentIds[0], attempt: 1 }], reason: 'stale_attempt' });
    link.answer({ type: 'report_ack', seq: again[again.length - 1].seq as number });
    const refusals = lines.filter((l) => /refused reports/.test(l));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(/refused reports on 1 attempts .*; 1 of them were sent again after a reconnect/);

    // Nothing is left to send after another reconnect, and stop() does not wait.
    link.drop();
    link.sent.length = 0;
    link.reopen();
    await until(() => link.sent.some((f) => f.type === 'hello'), 2000, 'hello a third time');
    link.answer(welcome);
    expect(doneIn(link.sent)).toEqual([]);
    const t0 = Date.now();
    await c.stop(0);
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it("keeps each report frame under the server's frame limit when large results piled up", async () => {
    const big = 'x'.repeat(1024 * 1024 - 2); // each result at the 1 MiB default limit, as JSON
    const { link, c } = await helloFrom(async () => big, { concurrency: 80, prefetch: 0 });
    link.answer(welcome);
    link.drop(); // the server restarts while 80 attempts end
    link.answer({ type: 'tasks', tasks: Array.from({ length: 80 }, (_, i) => taskFrame(i)) });
    await until(() => c.inFlight === 0, 5000, 'every attempt to end');
    link.reopen();
    await until(() => link.sent.filter((f) => f.type === 'hello').length === 2, 2000, 'hello again');
    link.answer(welcome);
    expect(doneIn(link.sent)).toHaveLength(80);
    // A bigger frame closes the connection (1009), and the same frame after every reconnect.
    for (const r of reports(link.sent)) expect(workerFrameJson(r).length).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    await c.stop(0);
  });

  it('stopping while disconnected waits, within its grace, for a server to take the last outcomes', async () => {
    const { link, c } = echoWorker(2, pino({ level: 'silent' }));
    await until(() => link.sent.some((f) => f.type === 'hello'), 2000, 'hello');
    link.answer(welcome);
    link.drop(); // the tasks below finish while the connection is down
    link.answer({ type: 'tasks', tasks: [taskFrame(1), taskFrame(2)] });
    let stopped = false;
    const stopping = c.stop(10_000).then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(stopped).toBe(false);
    expect(doneIn(link.sent)).toEqual([]);
    link.reopen();
    await until(() => link.sent.filter((f) => f.type === 'hello').length === 2, 2000, 'hello again');
    expect(link.sent.filter((f) => f.type === 'hello').at(-1)).toMatchObject({ capacity: 0 }); // draining: no new work
    link.answer(welcome);
    const r = reports(link.sent).find((f) => f.seq !== undefined) as ReportFrame;
    expect(r.done?.map((d) => d.id).sort()).toEqual(['t1', 't2']);
    expect(stopped).toBe(false);
    link.answer({ type: 'report_ack', seq: r.seq as number });
    await stopping;
  });
});

/** A handler that runs until its signal aborts, and how long after its start that came. */
function untilAborted() {
  let after: number | null = null;
  return {
    handler: (_p: unknown, ctx: { signal: AbortSignal }) =>
      new Promise((resolve) => {
        const t0 = Date.now();
        ctx.signal.addEventListener('abort', () => {
          after = Date.now() - t0;
          resolve(null);
        });
      }),
    abortedAfter: () => after,
  };
}

describe('heartbeats of a worker', () => {
  /** A started worker of one lambda on a fake link, welcomed with a short heartbeat interval. */
  async function worker(
    handler: (p: unknown, ctx: { heartbeat(): Promise<void>; signal: AbortSignal }) => Promise<unknown>,
    slots: number,
    heartbeatMs = 100,
  ) {
    const link = fakeLink();
    const c = new Controller(
      [{ name: 'echo', handler }],
      compileWorkerOptions({ concurrency: slots, prefetch: 0 }),
      link.transport,
      systemClock,
      pino({ level: 'silent' }),
    );
    c.start();
    await until(() => link.sent.some((f) => f.type === 'hello'), 2000, 'hello');
    link.answer({ ...welcome, heartbeatMs, leaseMs: heartbeatMs * 4 });
    return { link, c };
  }

  it("answers each handler's ctx.heartbeat() by its own acknowledgement, however many are pending at once", async () => {
    const { link, c } = await worker(async (_p, ctx) => {
      await ctx.heartbeat();
      return 'beat';
    }, 3);
    // The server answers every heartbeat 30 ms late, so all three are pending together.
    const answered = new Set<number>();
    const server = setInterval(() => {
      for (const f of link.sent)
        if (f.type === 'heartbeat' && !answered.has(f.seq)) {
          answered.add(f.seq);
          setTimeout(() => link.answer({ type: 'heartbeat_ack', seq: f.seq, lost: [] }), 30);
        }
    }, 5);
    link.answer({ type: 'tasks', tasks: [taskFrame(1), taskFrame(2), taskFrame(3)] });
    await until(() => doneIn(link.sent).length + reports(link.sent).flatMap((r) => r.failed ?? []).length === 3, 3000, 'three outcomes');
    clearInterval(server);
    expect(reports(link.sent).flatMap((r) => r.failed ?? [])).toEqual([]);
    expect(
      doneIn(link.sent)
        .map((d) => d.id)
        .sort(),
    ).toEqual(['t1', 't2', 't3']);
    await c.stop(0);
  });

  it('aborts running attempts after three unanswered heartbeats while draining too', async () => {
    const held = untilAborted();
    const { link, c } = await worker(held.handler, 1);
    link.answer({ type: 'tasks', tasks: [taskFrame(1)] });
    await until(() => link.sent.some((f) => f.type === 'report' && (f.started?.length ?? 0) > 0), 2000, 'started');
    // No heartbeat is answered from here on; the grace period (2 s) outlasts the lease (400 ms).
    await c.stop(2000);
    expect(held.abortedAfter()).not.toBeNull();
    expect(held.abortedAfter() as number).toBeLessThan(1000); // three intervals of 100 ms, not the grace period
  });

  it('answers a ctx.heartbeat() still pending when the worker stops, so its handler is not left waiting', async () => {
    let outcome: string | null = null;
    let asked = false;
    // A heartbeat interval far longer than the test: only the stop can answer it.
    const { link, c } = await worker(
      async (_p, ctx) => {
        asked = true;
        await ctx.heartbeat().then(
          () => (outcome = 'confirmed'),
          (err: Error) => (outcome = err.message),
        );
        return outcome;
      },
      1,
      60_000,
    );
    link.answer({ type: 'tasks', tasks: [taskFrame(1)] });
    await until(() => asked, 2000, 'the handler to ask');
    await c.stop(0);
    await until(() => outcome !== null, 1000, 'an answer to ctx.heartbeat()');
    expect(outcome).toMatch(/heartbeat unanswered/);
  });

  it('no longer lists an attempt it gave up after unanswered heartbeats, though its handler still runs', async () => {
    let stop!: () => void;
    // A handler that takes its time to stop (a transaction to roll back, a request to drain).
    const { link, c } = await worker(() => new Promise<void>((r) => (stop = r)), 1);
    link.answer({ type: 'tasks', tasks: [taskFrame(1)] });
    await until(() => link.sent.some((f) => f.type === 'heartbeat' && f.held.some((h) => h.id === 't1')), 2000, 'a heartbeat of t1');
    // Three intervals unanswered: the worker aborts t1 and will not report it. Then acks come back.
    await new Promise((r) => setTimeout(r, 400));
    link.sent.length = 0;
    const held: AttemptRef[][] = [];
    const server = setInterval(() => {
      for (const f of link.sent.splice(0))
        if (f.type === 'heartbeat') {
          held.push(f.held);
          link.answer({ type: 'heartbeat_ack', seq: f.seq, lost: [] });
        }
    }, 5);
    await new Promise((r) => setTimeout(r, 300));
    clearInterval(server);
    // Renewing its lease would hold the task here until the handler returns, for an outcome never sent.
    expect(held.length).toBeGreaterThan(0);
    for (const h of held) expect(h).toEqual([]);
    stop();
    await c.stop(0);
  });

  it('counts unanswered heartbeats from the last answer, not from a reconnect', async () => {
    const held = untilAborted();
    const { link, c } = await worker(held.handler, 1, 200);
    link.answer({ type: 'tasks', tasks: [taskFrame(1)] });
    // No heartbeat is ever answered. Two intervals in, the connection drops and a new session is
    // welcomed: that renews no lease, so the attempt still stops three intervals after the start.
    await new Promise((r) => setTimeout(r, 400));
    link.drop();
    link.reopen();
    await until(() => link.sent.filter((f) => f.type === 'hello').length === 2, 2000, 'hello again');
    link.answer({ ...welcome, heartbeatMs: 200, leaseMs: 800 });
    await until(() => held.abortedAfter() !== null, 3000, 'the abort');
    expect(held.abortedAfter() as number).toBeLessThan(850); // 600 ms; 1000 if the welcome restarted the count
    await c.stop(0);
  });
});

describe('a reconnecting worker', () => {
  it('says in its hello which attempts it still holds, running or buffered, with their lambdas', async () => {
    let release!: () => void;
    const running = new Promise<void>((r) => (release = r));
    const { link, c } = await helloFrom(() => running, { concurrency: 1, prefetch: 1 });
    expect(link.sent.find((f) => f.type === 'hello')).toMatchObject({ capacity: 2, held: [] });
    link.answer(welcome);
    link.answer({ type: 'tasks', tasks: [taskFrame(1), taskFrame(2)] }); // one runs, one waits
    await until(() => reports(link.sent).some((r) => (r.started?.length ?? 0) > 0), 2000, 'started');
    link.drop();
    link.sent.length = 0;
    link.reopen();
    await until(() => link.sent.some((f) => f.type === 'hello'), 2000, 'hello again');
    expect(link.sent.find((f) => f.type === 'hello')).toMatchObject({
      capacity: 0,
      held: [
        { id: 't1', attempt: 1, lambda: 'echo' },
        { id: 't2', attempt: 1, lambda: 'echo' },
      ],
    });
    release();
    await c.stop(0);
  });
});

describe('a worker at the largest settings', () => {
  it('sends frames the server accepts when it holds more than 100,000 tasks', async () => {
    const { link, c } = await helloFrom(() => new Promise(() => {}), { concurrency: 1, prefetch: 100_000 });
    link.answer({ ...welcome, heartbeatMs: 50, leaseMs: 200 });
    link.answer({ type: 'tasks', tasks: Array.from({ length: 100_001 }, (_, i) => taskFrame(i)) });
    const held = (f: WorkerFrame) => (f.type === 'heartbeat' || f.type === 'hello' ? (f.held?.length ?? 0) : 0);
    const beat = await until(() => link.sent.find((f) => f.type === 'heartbeat' && held(f) === 100_001), 2000, 'a heartbeat');
    expect(() => parseWorkerFrame(JSON.stringify(beat))).not.toThrow(); // refused, it would go unanswered: the worker stops
    link.drop();
    link.reopen();
    const hello = await until(() => link.sent.find((f) => f.type === 'hello' && held(f) === 100_001), 2000, 'hello again');
    expect(() => parseWorkerFrame(JSON.stringify(hello))).not.toThrow();
    link.answer({ ...welcome, heartbeatMs: 50, leaseMs: 200 });
    link.sent.length = 0;
    await c.stop(0); // releases the 100,000 buffered tasks
    const release = reports(link.sent).find((r) => (r.released?.length ?? 0) > 0);
    expect(release?.released).toHaveLength(100_000);
    expect(() => parseWorkerFrame(workerFrameJson(release as ReportFrame))).not.toThrow();
  }, 20_000);
});

describe('what a handler throws', () => {
  it('is reported as a failure the server accepts, whatever its message and name hold', async () => {
    const odd = Object.assign(new Error('x'), { message: { status: 500 }, name: 7 });
    const { link, c } = await helloFrom(async () => Promise.reject(odd), { concurrency: 1, prefetch: 0 });
    link.answer(welcome);
    link.answer({ type: 'tasks', tasks: [taskFrame(1)] });
    // Before: a TypeError in the worker's own code (an unhandled rejection that ends a Node process), no outcome, the slot lost.
    const r = await until(() => reports(link.sent).find((f) => f.failed?.length), 2000, 'the failure');
    expect(r.failed?.[0].error).toMatchObject({ message: '[object Object]', name: '7' });
    expect(() => parseWorkerFrame(workerFrameJson(r))).not.toThrow();
    await c.stop(0);
  });
});
