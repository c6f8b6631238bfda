// Run by sqlite-wal-sync-fault.test.ts with fail-wal-sync.so preloaded: a bulk commit long
// enough for a checkpoint on the writer's connection (SQLite's own, inside COMMIT, was the
// backstop at 16,000 WAL pages), made while the next fsync of the WAL fails; prints what each
// step answered as one JSON line.
import { existsSync, writeFileSync } from 'node:fs';

const [driverModule, path, trigger] = process.argv.slice(2);
const { SqliteDriver } = await import(driverModule);
const d = new SqliteDriver({ path });
await d.migrate();
const outcome = (p) =>
  p.then(
    () => 'ok',
    (err) => String(err?.cause?.code ?? err?.code ?? err?.message),
  );
const steps = {};
steps.before = await outcome(d.transaction((q) => q.cronSet('lambda-1', 1), { sync: true }));
// A commit without fsync, to be made durable by the next fsync of the WAL.
steps.unsynced = await outcome(d.transaction((q) => q.cronSet('lambda-2', 2), { sync: false }));
// The checkpoint thread has looked at the WAL since (too short to copy).
await new Promise((r) => setTimeout(r, 150));
writeFileSync(trigger, '');
// About 18,000 WAL pages in one commit without fsync: 72 payloads of 1 MiB.
const payload = JSON.stringify('p'.repeat(1024 * 1024));
const rows = Array.from({ length: 72 }, (_, i) => ({
  id: `01BULK${String(i).padStart(20, '0')}`,
  lambda: 'work',
  collection: null,
  payload,
  priority: 0,
  runAt: 0,
  key: null,
  ordered: false,
  idempotencyKey: null,
  maxAttempts: 1,
  timeoutMs: 1000,
  state: 'ENQUEUED',
  attempt: 0,
  workerId: null,
  reason: null,
  hold: null,
  depsPending: 0,
  nextCheckAt: null,
  finishedAt: null,
  now: 0,
}));
steps.bulk = await outcome(d.transaction((q) => q.taskInsertMany(rows), { sync: false }));
// Whichever fsync of the WAL met the failure, none from here on may stand for what it lost.
steps.durableAfter = await outcome(d.durable());
steps.triggerUsed = !existsSync(trigger);
steps.commitAfter = await outcome(d.transaction((q) => q.cronSet('lambda-3', 3), { sync: true }));
steps.pingAfter = await outcome(d.ping());
await d.close();
process.stdout.write(`${JSON.stringify(steps)}\n`);
