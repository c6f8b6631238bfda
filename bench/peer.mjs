#!/usr/bin/env node
// Conveyor's adapter for the peer benchmark (../shared/bench/peers/README.md, "JSON contract"):
//   npm run -s bench:peer -- --workload bulk|stream|latency|ingest [--jobs N] [--concurrency C] [--duration S] [--rate R]
// prints exactly one JSON line on stdout. The parent process embeds Conveyor (server roles and
// the SQLite store, or PostgreSQL with --backend postgres); the worker is a separate process
// that connects over the worker protocol, as a `conveyor worker` would. Timing and counting
// follow the harness: first completion of each job counts, later ones are dups.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ingestRun } from './ingest.mjs';
import { now, percentile, round, sleep } from './stats.mjs';
import { benchStore } from './stores.mjs';

const SELF = fileURLToPath(import.meta.url);
const dist = new URL('../dist/index.js', import.meta.url);
const { Conveyor, Worker } = await import(dist.href);
const { version } = JSON.parse((await import('node:fs')).readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

const PAD = 'p'.repeat(100);
const payload = (i) => ({ i, pad: PAD });
const BULK_BATCH = 1000;
const STREAM_INFLIGHT = 64;

const { values: args } = parseArgs({
  options: {
    workload: { type: 'string' },
    jobs: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '50' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '250' },
    backend: { type: 'string', default: 'sqlite' },
    prefetch: { type: 'string' },
    role: { type: 'string' },
  },
  strict: false,
});

const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const log = (...a) => process.stderr.write(`[conveyor-bench] ${a.join(' ')}\n`);
console.log = (...a) => log(...a);

// ---------------------------------------------------------------------------------------------

async function parentMain() {
  const ctx = {
    workload: args.workload,
    jobs: Number(args.jobs),
    concurrency: Number(args.concurrency),
    duration: Number(args.duration),
    rate: Number(args.rate),
    backend: args.backend,
  };
  // The throughput setting (the peers run with theirs, e.g. Graphile's localQueue 500): a worker
  // holds up to 500 tasks, 50 running and 450 ready, so a finished slot never waits for a round trip.
  const prefetch = args.prefetch === undefined ? Math.max(0, 500 - ctx.concurrency) : Number(args.prefetch);
  const base = { system: 'conveyor', version, backend: ctx.backend, workload: ctx.workload, concurrency: ctx.concurrency };
  if (!['bulk', 'stream', 'latency', 'ingest'].includes(ctx.workload)) {
    out({ ...base, error: '--workload must be bulk, stream, latency or ingest' });
    process.exit(2);
  }
  const { store, dir, remove } = benchStore(ctx.backend, 'bench');
  const settings = {
    store:
      ctx.backend === 'postgres'
        ? 'postgres (schema per run, synchronous_commit on for submits and claims, off for worker reports)'
        : 'sqlite file, WAL, synchronous=FULL for submits and claims (group commit)',
    worker: { concurrency: ctx.concurrency, prefetch },
    transport: 'worker protocol over WebSocket (separate process)',
  };
  let conveyor;
  let child;
  const cleanup = async () => {
    try {
      child?.kill('SIGKILL');
    } catch {}
    await conveyor?.close().catch(() => {});
    // A fresh schema per run on PostgreSQL, dropped afterwards (the peers do the same with theirs).
    await remove().catch((e) => log('remove the store:', e.message));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.once(sig, async () => {
      await cleanup();
      out({ ...base, error: `interrupted by ${sig}`, settings });
      process.exit(1);
    });
  let result;
  try {
    conveyor = new Conveyor({ store, worker: false, lambdas: [{ name: 'bench', handler: () => null }], batchMax: 10_000 });
    await conveyor.start();
    const url = await conveyor.listen({ port: 0 });
    const spawnWorker = (extra = {}) => {
      child = fork(SELF, ['--role', 'worker'], {
        // BENCH_PROFILE=DIR writes a CPU profile of the worker process there (the parent: node --cpu-prof).
        execArgv: process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : [],
        env: { ...process.env, BENCH_CTX: JSON.stringify({ ...ctx, url, prefetch, ...extra }) },
        stdio: ['ignore', 2, 2, 'ipc'],
      });
      return ipc(child);
    };
    const figures = await RUNS[ctx.workload]({ ctx, conveyor, spawnWorker, url, dir });
    result = { ...base, ...figures, settings };
  } catch (err) {
    log(err?.stack ?? err);
    result = { ...base, error: String(err?.message ?? err), settings };
  }
  await cleanup();
  out(result);
  process.exit(result.error ? 1 : 0);
}

const remaining = (conveyor) => conveyor.engine.store.read((o) => o.q.taskOpenCount());

const RUNS = {
  async bulk({ ctx, conveyor, spawnWorker }) {
    const N = ctx.jobs;
    const batches = [];
    for (let s = 0; s < N; s += BULK_BATCH)
      batches.push(Array.from({ length: Math.min(BULK_BATCH, N - s) }, (_, k) => ({ lambda: 'bench', payload: payload(s + k) })));
    const t0 = now();
    for (const b of batches) await conveyor.submitMany(b);
    const t1 = now();
    const queued = await remaining(conveyor);
    const tFork = now();
    const w = spawnWorker({ target: N });
    const starting = await w.wait('starting', 30_000);
    const cpu0 = process.cpuUsage();
    const reached = await w.wait('reached', 100_000);
    let rem = await remaining(conveyor);
    while (rem > 0) {
      await sleep(5);
      rem = await remaining(conveyor);
    }
    const tEnd = now();
    const cpu = process.cpuUsage(cpu0);
    await sleep(300);
    const fin = await w.stop();
    return {
      jobs: N,
      server_cpu_us_per_task: round((cpu.user + cpu.system) / N, 2),
      worker_cpu_us_per_task: round(fin.cpuUs / N, 2),
      enqueue_per_s: round(N / ((t1 - t0) / 1000)),
      drain_per_s: round(N / ((tEnd - starting.t) / 1000)),
      enqueue_ms: round(t1 - t0),
      drain_ms: round(tEnd - starting.t),
      drain_handler_ms: round(reached.t - starting.t),
      // From the worker's start to its first handler: connecting, the hello and the first claim.
      first_task_ms: round(reached.firstAt - starting.t),
      worker_boot_ms: round(starting.t - tFork),
      queued_before_drain: queued,
      remaining_after_drain: rem,
      lost: N - fin.done,
      dup: fin.dup,
      max_in_flight: fin.maxInFlight,
      rss_mb: round(process.memoryUsage().rss / 2 ** 20),
    };
  },

  async stream({ ctx, conveyor, spawnWorker }) {
    const w = spawnWorker();
    await w.wait('ready', 30_000);
    const D = ctx.duration * 1000;
    let next = 0;
    let acked = 0;
    let errors = 0;
    const tEnd = now() + D;
    const lane = async () => {
      while (now() < tEnd) {
        const i = next++;
        try {
          await conveyor.submit('bench', payload(i));
          acked++;
        } catch (e) {
          if (++errors < 5) log('submit failed:', e.message);
        }
      }
    };
    const lanes = Array.from({ length: STREAM_INFLIGHT }, lane);
    await sleep(tEnd - now());
    const ackedAtEnd = acked;
    const snap = await w.request({ type: 'snapshot' }, 'snapshot');
    await Promise.all(lanes);
    const produced = acked;
    const reached = await w.request({ type: 'waitFor', target: produced }, 'reached', 100_000);
    await sleep(300);
    const fin = await w.stop();
    return {
      jobs: produced,
      duration_s: ctx.duration,
      produced_per_s: round(ackedAtEnd / ctx.duration),
      completed_per_s: round(snap.done / ctx.duration),
      backlog: produced - snap.done,
      drain_ms: round(Math.max(0, reached.t - tEnd)),
      add_errors: errors,
      lost: produced - fin.done,
      dup: fin.dup,
      max_in_flight: fin.maxInFlight,
    };
  },

  async latency({ ctx, conveyor, spawnWorker }) {
    const w = spawnWorker();
    await w.wait('ready', 30_000);
    const period = 1000 / ctx.rate;
    const warm = Math.min(100, Math.round(ctx.rate * 0.4));
    const total = warm + Math.round(ctx.rate * ctx.duration);
    const submit = new Float64Array(total);
    const pending = [];
    let errors = 0;
    let maxLag = 0;
    const start = performance.now();
    let k = 0;
    while (k < total) {
      const p = performance.now();
      while (k < total && start + k * period <= p) {
        const i = k++;
        maxLag = Math.max(maxLag, performance.now() - (start + i * period));
        submit[i] = now();
        pending.push(
          conveyor.submit('bench', payload(i)).catch((e) => {
            if (++errors < 5) log('submit failed:', e.message);
          }),
        );
      }
      if (k < total) await sleep(start + k * period - performance.now());
    }
    await Promise.all(pending);
    await w.request({ type: 'waitFor', target: total }, 'reached', 100_000);
    const { stamps } = await w.request({ type: 'stamps' }, 'stamps');
    await sleep(300);
    const fin = await w.stop();
    const starts = new Map(stamps);
    const lat = [];
    for (let i = warm; i < total; i++) if (starts.has(i)) lat.push(starts.get(i) - submit[i]);
    lat.sort((a, b) => a - b);
    return {
      jobs: total,
      rate: ctx.rate,
      duration_s: ctx.duration,
      samples: lat.length,
      warmup_jobs: warm,
      p50_ms: round(percentile(lat, 0.5), 2),
      p95_ms: round(percentile(lat, 0.95), 2),
      p99_ms: round(percentile(lat, 0.99), 2),
      max_ms: round(lat[lat.length - 1], 2),
      mean_ms: round(lat.reduce((a, b) => a + b, 0) / (lat.length || 1), 2),
      max_send_lag_ms: round(maxLag, 2),
      add_errors: errors,
      lost: total - fin.done,
      dup: fin.dup,
    };
  },

  ingest: ingestRun,
};

/** Typed waits on a child's IPC messages. */
function ipc(child) {
  const inbox = [];
  const waiters = [];
  let dead = null;
  child.on('message', (m) => {
    const k = waiters.findIndex((w) => w.type === m.type);
    if (k >= 0) {
      const [w] = waiters.splice(k, 1);
      clearTimeout(w.timer);
      w.resolve(m);
    } else inbox.push(m);
  });
  child.on('exit', (code, sig) => {
    dead = new Error(`worker exited (code ${code}, signal ${sig})`);
    for (const w of waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(dead);
    }
  });
  const wait = (type, ms = 10_000) => {
    const k = inbox.findIndex((m) => m.type === type);
    if (k >= 0) return Promise.resolve(inbox.splice(k, 1)[0]);
    if (dead) return Promise.reject(dead);
    return new Promise((resolve, reject) => {
      const w = { type, resolve, reject };
      w.timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${type}`));
      }, ms);
      waiters.push(w);
    });
  };
  return {
    wait,
    request(m, type, ms) {
      const p = wait(type, ms);
      child.send(m);
      return p;
    },
    async stop() {
      const fin = await this.request({ type: 'stop' }, 'stopped', 15_000);
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      return fin;
    },
  };
}

// ---------------------------------------------------------------------------------------------

async function workerMain() {
  const ctx = JSON.parse(process.env.BENCH_CTX);
  process.on('disconnect', () => process.exit(0));
  const send = (m) => new Promise((r) => (process.connected ? process.send(m, r) : r()));
  const counts = new Map();
  let done = 0;
  let dup = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let target = ctx.target ?? Number.POSITIVE_INFINITY;
  let reachedSent = false;
  let firstAt = null;
  const stamps = ctx.workload === 'latency' ? new Map() : null;
  const { writeFile } = await import('node:fs/promises');
  // Ingest payloads are the clients' items as sent, and every request repeats the same `i`s:
  // there a job is a task, so completions are counted and files named by task id.
  const jobOf = ctx.workload === 'ingest' ? (_data, tctx) => tctx.task.id : (data) => data.i;
  const handler = async (data, tctx) => {
    const t = now();
    firstAt ??= t;
    inFlight++;
    if (inFlight > maxInFlight) maxInFlight = inFlight;
    try {
      const job = jobOf(data, tctx);
      if (stamps && !stamps.has(job)) stamps.set(job, t);
      if (ctx.bucket) await writeFile(join(ctx.bucket, `${job}.json`), JSON.stringify(data.p ?? data));
      const c = counts.get(job) ?? 0;
      counts.set(job, c + 1);
      if (c === 0) {
        done++;
        if (done >= target && !reachedSent) {
          reachedSent = true;
          send({ type: 'reached', t: now(), done, firstAt });
        }
      } else dup++;
      return null;
    } finally {
      inFlight--;
    }
  };
  await send({ type: 'starting', t: now() });
  const cpu0 = process.cpuUsage();
  let ready;
  const readyP = new Promise((r) => (ready = r));
  const worker = new Worker({
    server: ctx.url,
    lambdas: [{ name: 'bench', handler }],
    concurrency: ctx.concurrency,
    prefetch: ctx.prefetch,
    events: { ready: () => ready() },
  }).start();
  await readyP;
  await send({ type: 'ready', t: now() });
  process.on('message', async (m) => {
    if (m.type === 'waitFor') {
      target = m.target;
      if (done >= target && !reachedSent) {
        reachedSent = true;
        send({ type: 'reached', t: now(), done });
      }
    } else if (m.type === 'snapshot') send({ type: 'snapshot', t: now(), done, dup });
    else if (m.type === 'stamps') send({ type: 'stamps', stamps: stamps ? [...stamps] : [] });
    else if (m.type === 'stop') {
      const cpu = process.cpuUsage(cpu0);
      await worker.stop(5000);
      await send({ type: 'stopped', done, dup, maxInFlight, cpuUs: cpu.user + cpu.system });
      process.exit(0);
    }
  });
}

if (args.role === 'worker') await workerMain();
else await parentMain();
