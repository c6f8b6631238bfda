// Run by sqlite-wal-sync-fault.test.ts with fail-wal-sync.so preloaded: the driver's fdatasync
// of the WAL runs slowly while SQLite's own fsync in a COMMIT fails beside it; prints what each
// step answered as one JSON line.
import { existsSync, writeFileSync } from 'node:fs';

const [driverModule, path, failTrigger, slowTrigger] = process.argv.slice(2);
const { SqliteDriver } = await import(driverModule);
const d = new SqliteDriver({ path });
await d.migrate();
const outcome = (p) =>
  p.then(
    () => 'ok',
    (err) => String(err?.cause?.code ?? err?.code ?? err?.message),
  );
const steps = {};
steps.unsynced = await outcome(d.transaction((q) => q.cronSet('lambda-1', 1), { sync: false }));
writeFileSync(slowTrigger, '');
const durable = outcome(d.durable()); // its fdatasync takes 300 ms from now
await new Promise((r) => setTimeout(r, 50));
steps.slowStarted = !existsSync(slowTrigger);
writeFileSync(failTrigger, '');
steps.failedCommit = await outcome(d.transaction((q) => q.cronSet('lambda-2', 2), { sync: true }));
// The slow fdatasync reports nothing, but the failure beside it may have taken what it covers.
steps.durable = await durable;
await d.close();
process.stdout.write(`${JSON.stringify(steps)}\n`);
