import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { isConflict, isTransient, isUnavailable, storeErrorOf } from '../../src/store/store-error.js';

/** An error as postgres.js reports a server's ErrorResponse with this SQLSTATE. */
const pgError = (code: string, message: string) => new postgres.PostgresError({ code, message, severity: 'ERROR' } as unknown as string);

describe('native errors mapped to neutral codes', () => {
  it('answers a PostgreSQL server out of disk, memory or I/O as unavailable, as the same on SQLite is', () => {
    const sqlite = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    expect(isUnavailable(storeErrorOf(sqlite))).toBe(true);
    for (const [code, message] of [
      ['53100', 'could not extend file "base/16384/16385": No space left on device'],
      ['53200', 'out of memory'],
      ['53000', 'insufficient resources'],
      ['58030', 'could not write to file "pg_wal/xlogtemp.123": Input/output error'],
    ]) {
      const err = storeErrorOf(pgError(code, message));
      expect({ code, unavailable: isUnavailable(err) }).toEqual({ code, unavailable: true });
    }
  });

  it('answers a deadlock or a serialization failure as a conflict: not unavailable, but worth running again', () => {
    for (const code of ['40P01', '40001']) {
      const err = storeErrorOf(pgError(code, 'deadlock detected'));
      expect({ code, conflict: isConflict(err), transient: isTransient(err), unavailable: isUnavailable(err) }).toEqual({
        code,
        conflict: true,
        transient: true,
        unavailable: false,
      });
    }
  });
});
