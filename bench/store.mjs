#!/usr/bin/env node
// What one task costs the embedded store, statement by statement, without the server around it:
//   node bench/store.mjs [--tasks 30000] [--rounds 5] [--ordered]
// Each round inserts --tasks tasks into a fresh SQLite file (500 a transaction), claims them
// (450 a claim, as a worker's prefetch asks) and reports them succeeded (the same batches), and
// measures the process's CPU time for each phase; stdout gets one JSON line with the median
// microseconds a task of each phase. CPU time rather than wall time, so the disk (commits run
// without fsync here) and other processes move the figures less. `--ordered` gives every task
// a key (100 keys) in per-key order, which adds the ordered-head checks and indexes.
//
// For a deterministic count, run one round under callgrind and compare sqlite3_step's inclusive
// instructions: valgrind --tool=callgrind node bench/store.mjs --tasks 4000 --rounds 1
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median, round } from './stats.mjs';

const dist = (p) => import(new URL(`../dist/${p}`, import.meta.url).href);
const { SqliteDriver } = await dist('store/sqlite/sqlite-driver.js');
const { IdGenerator } = await dist('core/ids.js');
const { seededRandom, systemClock } = await dist('clock.js');

const { values: args } = parseArgs({
  options: {
    tasks: { type: 'string', default: '30000' },
    rounds: { type: 'string', default: '5' },
    ordered: { type: 'boolean', default: false },
  },
});
const N = Number(args.tasks);
const INSERT_BATCH = 500;
const CLAIM_BATCH = 450;
const payload = JSON.stringify({ i: 1, pad: 'p'.repeat(100) });
const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

async function round1() {
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-bench-store-'));
  const d = new SqliteDriver({ path: join(dir, 'bench.db') });
  try {
    await d.migrate();
    const ids = new IdGenerator(systemClock, seededRandom(1));
    const at = Date.now();
    const tx = (fn) => d.transaction(fn, { sync: false });
    let t = cpuUs();
    for (let from = 0; from < N; from += INSERT_BATCH) {
      const rows = [];
      for (let k = from; k < Math.min(N, from + INSERT_BATCH); k++) {
        rows.push({
          id: ids.next(),
          lambda: 'bench',
          collection: null,
          state: 'ENQUEUED',
          attempt: 0,
          workerId: null,
          payload,
          priority: 0,
          runAt: at,
          key: args.ordered ? `k${k % 100}` : null,
          ordered: args.ordered,
          idempotencyKey: null,
          maxAttempts: 3,
          timeoutMs: 60_000,
          reason: null,
          hold: null,
          depsPending: 0,
          nextCheckAt: at + 60_000,
          finishedAt: null,
          now: at,
        });
      }
      await tx((q) => q.taskInsertMany(rows));
    }
    const insert = (cpuUs() - t) / N;
    t = cpuUs();
    const batches = [];
    for (let got = 0; got < N; ) {
      const claimed = await tx((q) =>
        q.taskClaimReady({ lambda: 'bench', limit: CLAIM_BATCH, workerId: 'w1', now: at, leaseUntil: at + 30_000 }),
      );
      if (claimed.length === 0) throw new Error(`claimed ${got} of ${N} tasks`);
      got += claimed.length;
      batches.push(claimed);
    }
    const claim = (cpuUs() - t) / N;
    t = cpuUs();
    let ended = 0;
    for (const batch of batches) {
      const items = batch.map((c) => ({ id: c.id, attempt: c.attempt, startedAt: at, workerId: 'w1', result: 'null' }));
      ended += (await tx((q) => q.taskSucceedMany(items, at, at + 3_600_000))).length;
    }
    if (ended !== N) throw new Error(`succeeded ${ended} of ${N} tasks`);
    const succeed = (cpuUs() - t) / N;
    return { insert, claim, succeed };
  } finally {
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const rounds = [];
for (let r = 0; r < Number(args.rounds); r++) {
  rounds.push(await round1());
  process.stderr.write(`round ${r + 1}: ${JSON.stringify(rounds.at(-1), (_k, v) => (typeof v === 'number' ? round(v, 2) : v))}\n`);
}
const med = (k) => round(median(rounds.map((r) => r[k])), 2);
const out = {
  tasks: N,
  rounds: rounds.length,
  ordered: args.ordered,
  insert_us: med('insert'),
  claim_us: med('claim'),
  succeed_us: med('succeed'),
};
out.total_us = round(out.insert_us + out.claim_us + out.succeed_us, 2);
console.log(JSON.stringify(out));
