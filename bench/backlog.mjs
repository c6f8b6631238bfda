#!/usr/bin/env node
// A backlog of pending tasks costs the server bounded memory, not memory per task:
//   node bench/backlog.mjs [--tasks 1000000] [--drain-s 10] [--backend sqlite|postgres]
// Enqueues the backlog with no worker connected, reports the server's RSS and heap, then
// connects a worker (separate process over the worker protocol) for --drain-s seconds and
// reports the drain rate with the backlog in place, and the RSS again. One JSON line on stdout.
// --backend postgres runs on a fresh schema of PG_URL (dropped at the end).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { now, round, sleep } from './stats.mjs';
import { benchStore } from './stores.mjs';

const { Conveyor, Worker } = await import(new URL('../dist/index.js', import.meta.url).href);
const { values: args } = parseArgs({
  options: {
    tasks: { type: 'string', default: '1000000' },
    'drain-s': { type: 'string', default: '10' },
    role: { type: 'string' },
    url: { type: 'string' },
    backend: { type: 'string', default: 'sqlite' },
  },
  strict: false,
});
const mb = (n) => round(n / 2 ** 20, 1);

if (args.role === 'worker') {
  let done = 0;
  const worker = new Worker({
    server: args.url,
    concurrency: 50,
    prefetch: 450,
    lambdas: [{ name: 'backlog', handler: () => void done++ }],
  }).start();
  process.on('message', async (m) => {
    if (m === 'count') process.send({ done });
    if (m === 'stop') {
      await worker.stop(2000);
      process.exit(0);
    }
  });
} else {
  if (!['sqlite', 'postgres'].includes(args.backend)) {
    process.stderr.write(`backlog: --backend must be sqlite or postgres, not ${args.backend}\n`);
    process.exit(2);
  }
  const { store, remove } = benchStore(args.backend, 'backlog');
  let conveyor;
  let child;
  // The store goes away however the run ends: a PostgreSQL schema would keep a million rows.
  const cleanup = async () => {
    child?.kill('SIGKILL');
    await conveyor?.close().catch(() => {});
    await remove().catch((e) => process.stderr.write(`backlog: remove the store: ${e.message}\n`));
  };
  for (const sig of ['SIGINT', 'SIGTERM'])
    process.once(sig, async () => {
      await cleanup();
      process.exit(1);
    });
  try {
    const figures = await run();
    await cleanup();
    process.stdout.write(`${JSON.stringify({ system: 'conveyor', workload: 'backlog', backend: args.backend, ...figures })}\n`);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`backlog: ${err?.stack ?? err}\n`);
    await cleanup();
    process.exit(1);
  }

  async function run() {
    const N = Number(args.tasks);
    conveyor = await new Conveyor({
      store,
      worker: false,
      lambdas: [{ name: 'backlog', handler: () => null }],
      batchMax: 10_000,
    }).start();
    const url = await conveyor.listen({ port: 0 });
    const pad = 'p'.repeat(100);
    const t0 = now();
    for (let s = 0; s < N; s += 10_000) {
      await conveyor.submitMany(
        Array.from({ length: Math.min(10_000, N - s) }, (_, k) => ({ lambda: 'backlog', payload: { i: s + k, pad } })),
      );
      if (s % 100_000 === 0) process.stderr.write(`enqueued ${s}\n`);
    }
    const enqueueS = (now() - t0) / 1000;
    globalThis.gc?.();
    const afterEnqueue = process.memoryUsage();
    const tCounts = now();
    const counts = (await conveyor.lambdas())[0].counts;
    const countsMs = now() - tCounts;
    child = fork(fileURLToPath(import.meta.url), ['--role', 'worker', '--url', url], { stdio: ['ignore', 2, 2, 'ipc'] });
    const count = () =>
      new Promise((r) => {
        child.once('message', (m) => r(m.done));
        child.send('count');
      });
    await sleep(1000);
    const d0 = await count();
    const tDrain = now();
    await sleep(Number(args['drain-s']) * 1000);
    const d1 = await count();
    const drainRate = (d1 - d0) / ((now() - tDrain) / 1000);
    const afterDrain = process.memoryUsage();
    child.send('stop');
    await new Promise((r) => child.once('exit', r));
    child = null;
    return {
      backlog: N,
      enqueue_per_s: round(N / enqueueS),
      rss_mb_after_enqueue: mb(afterEnqueue.rss),
      heap_used_mb_after_enqueue: mb(afterEnqueue.heapUsed),
      counts_query_ms: round(countsMs),
      counts,
      drain_per_s_with_backlog: round(drainRate),
      rss_mb_while_draining: mb(afterDrain.rss),
      heap_used_mb_while_draining: mb(afterDrain.heapUsed),
    };
  }
}
