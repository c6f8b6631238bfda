#!/usr/bin/env node
// Table hygiene on PostgreSQL under a steady load: finished tasks are deleted after retention,
// in batches, by the sweep, and autovacuum reuses their space, so the tables and indexes stop
// growing once retention is reached instead of growing for ever.
//   node bench/soak.mjs [--rate 500] [--minutes 10] [--retention-s 60] [--url postgres://...]
// Runs one embedded server with an in-process worker on a fresh schema (dropped at the end),
// submits --rate tasks a second, and prints one JSON line a minute with every table's and
// index's size (pg_total_relation_size / pg_relation_size) and live and dead rows; a last line
// compares the sizes after the first retention period with the end. Needs `npm run build`.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { now, round, sleep } from './stats.mjs';

const { Conveyor } = await import(new URL('../dist/index.js', import.meta.url).href);
const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    minutes: { type: 'string', default: '10' },
    'retention-s': { type: 'string', default: '60' },
    'report-s': { type: 'string', default: '60' },
    url: { type: 'string', default: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
  },
  strict: false,
});
const rate = Number(args.rate);
const durationMs = Number(args.minutes) * 60_000;
const reportMs = Number(args['report-s']) * 1000;
const schema = `conveyor_soak_${randomBytes(4).toString('hex')}`;
const sql = postgres(args.url, { max: 1, onnotice: () => {} });
const kb = (n) => round(Number(n) / 1024, 0);

const conveyor = await new Conveyor({
  store: `${args.url}${args.url.includes('?') ? '&' : '?'}search_path=${schema}`,
  lambdas: [{ name: 'soak', handler: () => null }],
  concurrency: 50,
  retentionMs: Number(args['retention-s']) * 1000,
}).start();
let done = 0;
conveyor.engine.events.on('ended', () => void done++);

async function sizes() {
  const rows = await sql`
    SELECT c.relname AS name, c.relkind AS kind, pg_total_relation_size(c.oid) AS total, pg_relation_size(c.oid) AS own,
           s.n_live_tup AS live, s.n_dead_tup AS dead, s.autovacuum_count AS autovacuums
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
     WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'i')
       AND (c.relname LIKE 'task%' OR c.relkind = 'r')
     ORDER BY c.relkind DESC, c.relname`;
  const tables = {};
  const indexes = {};
  for (const r of rows) {
    if (r.kind === 'r' && !r.name.startsWith('task')) continue; // bookkeeping tables of a few rows
    if (r.kind === 'r')
      tables[r.name] = { totalKB: kb(r.total), live: Number(r.live), dead: Number(r.dead), autovacuums: Number(r.autovacuums) };
    else indexes[r.name] = kb(r.own);
  }
  return { tables, indexes };
}

// Submits in ticks of 100 ms, catching up if a tick ran late, so the rate holds on average.
const t0 = now();
let submitted = 0;
let failed = 0;
const load = (async () => {
  while (now() - t0 < durationMs) {
    const due = Math.floor(((now() - t0) / 1000) * rate) - submitted;
    if (due > 0) {
      const n = Math.min(due, 1000);
      try {
        await conveyor.submitMany(Array.from({ length: n }, (_, i) => ({ lambda: 'soak', payload: { i: submitted + i } })));
        submitted += n;
      } catch {
        failed++;
      }
    }
    await sleep(100);
  }
})();

const reports = [];
let lastDone = 0;
let lastAt = t0;
for (let minute = 1; now() - t0 < durationMs; minute++) {
  await sleep(Math.max(0, t0 + minute * reportMs - now()));
  const s = await sizes();
  const at = now();
  const line = {
    bench: 'soak',
    minute: round((at - t0) / 60_000, 1),
    submitted,
    done,
    perS: round(((done - lastDone) * 1000) / (at - lastAt), 0),
    open: (await conveyor.engine.store.read((o) => o.q.taskOpenCount())) ?? null,
    ...s,
  };
  lastDone = done;
  lastAt = at;
  reports.push(line);
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
await load;

// Growth after the first retention period (the table holds its steady-state rows from then).
const steady = reports.find((r) => r.minute * 60 >= Number(args['retention-s']) * 2) ?? reports[0];
const last = reports[reports.length - 1];
const growth = {};
for (const [name, t] of Object.entries(last.tables)) growth[name] = `${steady.tables[name]?.totalKB ?? 0} -> ${t.totalKB} KB`;
process.stdout.write(
  `${JSON.stringify({ bench: 'soak', summary: true, rate, minutes: Number(args.minutes), submitted, done, failedBatches: failed, from: steady.minute, to: last.minute, growth })}\n`,
);
await conveyor.close();
await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
await sql.end();
