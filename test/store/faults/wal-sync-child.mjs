// Run by sqlite-wal-sync-fault.test.ts with fail-wal-sync.so preloaded: commits on a SqliteDriver
// around one failed fsync of its WAL, and prints what each step answered as one JSON line.
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
const write = (sync, n) => d.transaction((q) => q.cronSet(`lambda-${n}`, n), { sync });
const steps = {};
steps.before = await outcome(write(true, 1));
// A commit without fsync, to be made durable by the next fsync of the WAL.
steps.unsynced = await outcome(write(false, 2));
writeFileSync(trigger, '');
// SQLite's own fsync in this COMMIT fails: it may have lost the frames of the commit before.
steps.failedCommit = await outcome(write(true, 3));
steps.triggerUsed = !existsSync(trigger);
// The fsyncs from here on succeed; none of them may stand for the frames the failed one lost.
steps.durableAfter = await outcome(d.durable());
steps.commitAfter = await outcome(write(true, 4));
steps.pingAfter = await outcome(d.ping());
await d.close();
process.stdout.write(`${JSON.stringify(steps)}\n`);
