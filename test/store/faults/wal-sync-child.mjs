// Run by sqlite-wal-sync-fault.test.ts with fail-wal-sync.so preloaded: one scenario of commits
// on a SqliteDriver around a failed fsync of its WAL; prints what each step answered as one JSON
// line. Arguments: the driver's module, the database's path, the scenario, then the trigger files
// the shim watches (fail, slow).
import { existsSync, writeFileSync } from 'node:fs';

const [driverModule, path, scenario, failTrigger, slowTrigger] = process.argv.slice(2);
const { SqliteDriver } = await import(driverModule);
const d = new SqliteDriver({ path });
await d.migrate();
const outcome = (p) =>
  p.then(
    () => 'ok',
    (err) => String(err?.cause?.code ?? err?.code ?? err?.message),
  );
const write = (sync, n) => d.transaction((q) => q.cronSet(`lambda-${n}`, n), { sync });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const scenarios = {
  /** SQLite's own fsync in a COMMIT fails: it may have lost the frames of the commit before. */
  async commit(steps) {
    steps.before = await outcome(write(true, 1));
    steps.unsynced = await outcome(write(false, 2)); // made durable by the next fsync of the WAL
    writeFileSync(failTrigger, '');
    steps.failedCommit = await outcome(write(true, 3));
    steps.triggerUsed = !existsSync(failTrigger);
    // The fsyncs from here on succeed; none of them may stand for the frames the failed one lost.
    steps.durableAfter = await outcome(d.durable());
    steps.commitAfter = await outcome(write(true, 4));
    steps.pingAfter = await outcome(d.ping());
  },

  /** A commit long enough for a checkpoint (SQLite's own, inside COMMIT, was the backstop at 16,000 WAL pages). */
  async checkpoint(steps) {
    steps.before = await outcome(write(true, 1));
    steps.unsynced = await outcome(write(false, 2));
    await sleep(150); // the checkpoint thread has looked at the WAL since (too short to copy)
    writeFileSync(failTrigger, '');
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
    steps.triggerUsed = !existsSync(failTrigger);
    steps.commitAfter = await outcome(write(true, 3));
    steps.pingAfter = await outcome(d.ping());
  },

  /** The driver's fdatasync runs slowly while SQLite's own fsync in a COMMIT fails beside it. */
  async race(steps) {
    steps.unsynced = await outcome(write(false, 1));
    writeFileSync(slowTrigger, '');
    const durable = outcome(d.durable()); // its fdatasync takes 300 ms from now
    await sleep(50);
    steps.slowStarted = !existsSync(slowTrigger);
    writeFileSync(failTrigger, '');
    steps.failedCommit = await outcome(write(true, 2));
    // The slow fdatasync reports nothing, but the failure beside it may have taken what it covers.
    steps.durable = await durable;
  },
};

const steps = {};
await scenarios[scenario](steps);
await d.close();
process.stdout.write(`${JSON.stringify(steps)}\n`);
