// The ingest workload of the peer bench (../shared/bench/peers/README.md, "ingest"): the
// parent's embedded Conveyor serves POST /v1/ingest/bench; autocannon posts the same body of
// 10 payloads on 64 connections for DURATION s; the worker process writes one file per task to
// a bucket folder. As in the harness: the 400/413/202 contract is checked before the load,
// `accepted` counts the payloads of every accepted request (also those still in flight when
// autocannon stopped), `files` the files written after the drain, `lost = accepted - files`.
//
// autocannon runs in the parent process, as in the harness, but in one worker thread: the
// harness's server is a child process that never shares a thread with the load generator, and
// here the server is the parent's embedded Conveyor. BENCH_AUTOCANNON_WORKERS=0 runs it on the
// server's own event loop instead, where it takes CPU from the server it measures.
import { accessSync, constants, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { now, round, sleep } from './stats.mjs';

const PAD = 'p'.repeat(100);
const payload = (i) => ({ i, pad: PAD });
const ITEMS = 10;
const CONNECTIONS = 64;
// As the harness: stop waiting for the drain 20 s before the run's budget (PEERBENCH_TIMEOUT_S) ends.
const BUDGET_MS = Number(process.env.PEERBENCH_TIMEOUT_S ?? 110) * 1000;
const DRAIN_RESERVE_MS = 20_000;

/** tmpfs when writable, so disk and journal noise stay out of the comparison (as the harness). */
function bucketBase() {
  if (process.env.PEERBENCH_BUCKET_DIR) return process.env.PEERBENCH_BUCKET_DIR;
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/** The harness's contract checks: bad JSON 400, a body over 1 MiB 413, a good one 202. */
async function ingestChecks(url) {
  const post = async (body) => {
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      return res.status;
    } catch (e) {
      return `error: ${e.cause?.code || e.message}`;
    }
  };
  const checks = {
    bad_json: await post('{"token": "t", "data": [}'),
    too_large: await post(JSON.stringify({ token: 't', data: [{ i: 0, pad: 'x'.repeat(1024 * 1024) }] })),
    good: await post(JSON.stringify({ token: 't', data: [payload(-1)] })),
  };
  if (checks.bad_json !== 400 || checks.too_large !== 413 || checks.good !== 202) {
    throw new Error(`ingest contract check failed: ${JSON.stringify(checks)}`);
  }
  return checks;
}

export async function ingestRun({ ctx, conveyor, spawnWorker, url }) {
  const t0 = now();
  const { default: autocannon } = await import('autocannon');
  const bucket = mkdtempSync(join(bucketBase(), 'conveyor-bench-bucket-'));
  try {
    const w = spawnWorker({ bucket });
    await w.wait('ready', 30_000);
    const target = `${url}/v1/ingest/bench`;
    const checks = await ingestChecks(target);
    const body = JSON.stringify({ token: 'bench-token', data: Array.from({ length: ITEMS }, (_, k) => payload(k)) });
    const workers = Number(process.env.BENCH_AUTOCANNON_WORKERS ?? 1);
    const r = await autocannon({
      url: target,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      connections: CONNECTIONS,
      duration: ctx.duration,
      ...(workers > 0 ? { workers } : {}),
    });
    const tLoadEnd = now();
    // Requests still in flight when autocannon stopped commit too: wait until the queue is empty.
    const ingest = conveyor.engine.ingest;
    while (ingest.stats().depth > 0 && now() - tLoadEnd < 15_000) await sleep(5);
    const stats = ingest.stats();
    const accepted = stats.writtenItems;
    let reached;
    try {
      const m = await w.request(
        { type: 'waitFor', target: accepted },
        'reached',
        Math.max(1000, BUDGET_MS - DRAIN_RESERVE_MS - (now() - t0)),
      );
      reached = { ok: true, t: m.t };
    } catch (e) {
      if (!/timed out/.test(e.message)) throw e;
      reached = { ok: false, t: now() };
    }
    await sleep(reached.ok ? 300 : 0);
    const fin = await w.stop();
    const files = readdirSync(bucket).length;
    const secs = r.duration || ctx.duration;
    const figures = {
      jobs: accepted,
      duration_s: ctx.duration,
      connections: CONNECTIONS,
      bucket_dir: bucketBase(),
      requests_per_s: round(r['2xx'] / secs),
      payloads_per_s: round((r['2xx'] * ITEMS) / secs),
      non2xx: r.non2xx,
      p50_ms: r.latency.p50,
      p99_ms: r.latency.p99,
      max_ms: r.latency.max,
      socket_errors: r.errors,
      timeouts: r.timeouts,
      accepted,
      files,
      shed_429: stats.shedOffers,
      enqueue_failures: stats.failedItems,
      drain_ms: round(Math.max(0, reached.t - tLoadEnd)),
      checks,
      lost: accepted - files,
      dup: fin.dup,
      max_in_flight: fin.maxInFlight,
      load_generator:
        workers > 0 ? `autocannon in ${workers} worker thread(s) of the server process` : 'autocannon on the server event loop',
      ingest: { maxQueue: stats.maxItems, requestItemsMax: stats.requestItemsMax, batches: stats.batches },
    };
    if (reached.ok) return figures;
    return {
      ...figures,
      lost: null,
      undrained: accepted - fin.done,
      error: `not drained within the time budget: ${fin.done} of ${accepted} tasks completed`,
    };
  } finally {
    rmSync(bucket, { recursive: true, force: true });
  }
}
