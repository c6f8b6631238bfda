import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { tempDir } from '../helpers.js';

// A real fsync failure inside SQLite's COMMIT: a preloaded shim (faults/fail-wal-sync.c) makes
// one fsync of the WAL answer EIO in a child process, so the store under test is the real
// SQLite through libc, not a mock. (The driver's own fdatasync failing is sqlite-durable.test.ts.)

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const driver = new URL('../../dist/store/sqlite/sqlite-driver.js', import.meta.url).href;

function shim(dir: string): string {
  const so = join(dir, 'fail-wal-sync.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', so, here('./faults/fail-wal-sync.c'), '-ldl']);
  return so;
}

/** Runs a scenario of faults/wal-sync-child.mjs with the shim preloaded; what each step answered. */
function scenario(name: 'commit' | 'checkpoint' | 'race'): Record<string, unknown> {
  const dir = tempDir();
  const [fail, slow] = [join(dir, 'fail-next-wal-sync'), join(dir, 'slow-next-wal-sync')];
  const out = execFileSync(process.execPath, [here('./faults/wal-sync-child.mjs'), driver, join(dir, 'store.db'), name, fail, slow], {
    env: { ...process.env, LD_PRELOAD: shim(dir), CONVEYOR_FAIL_WAL_SYNC: fail, CONVEYOR_SLOW_WAL_SYNC: slow },
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

it('stops acknowledging after SQLite fails to fsync the WAL in a COMMIT, as after its own failed fdatasync', () => {
  expect(scenario('commit')).toEqual({
    before: 'ok',
    unsynced: 'ok',
    failedCommit: 'SQLITE_IOERR_FSYNC',
    triggerUsed: true,
    // The next fsync succeeds, but the commit made without one may have gone with the failure.
    durableAfter: 'SQLITE_IOERR_FSYNC',
    commitAfter: 'SQLITE_IOERR_FSYNC',
    // and /healthz answers 503, so that a supervisor restarts the server
    pingAfter: 'SQLITE_IOERR_FSYNC',
  });
});

it('stops acknowledging after a checkpoint on the writer’s connection fails to fsync the WAL (SQLite’s own, inside COMMIT, reported nothing)', () => {
  const steps = scenario('checkpoint');
  expect(steps).toMatchObject({ before: 'ok', unsynced: 'ok', triggerUsed: true });
  // The bulk commit may itself be refused (a checkpoint that fails before it returns), or go
  // through and leave its fsync to come; either way nothing is acknowledged after the failure.
  expect(steps.bulk).toMatch(/^(ok|SQLITE_IOERR\w*|EIO)$/);
  for (const step of ['durableAfter', 'commitAfter', 'pingAfter'])
    expect([step, steps[step]]).toEqual([step, expect.stringMatching(/^(SQLITE_IOERR\w*|EIO)$/)]);
});

it('acknowledges nothing on an fdatasync that succeeded while SQLite’s own fsync of the WAL failed beside it', () => {
  expect(scenario('race')).toEqual({
    unsynced: 'ok',
    slowStarted: true,
    failedCommit: 'SQLITE_IOERR_FSYNC',
    durable: 'SQLITE_IOERR_FSYNC',
  });
});
