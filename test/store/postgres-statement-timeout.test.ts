import { describe, expect, it } from 'vitest';
import { statementTimeoutOf } from '../../src/store/postgres/postgres-driver.js';

// The client-side limits follow the statement timeout the database enforces, so a URL that
// raises it (docs/operations.md) is not cut short at the built-in 30 s.
describe('PostgreSQL statement timeout from the URL', () => {
  it('takes the URL value in ms or with a unit, and 30 s without one', () => {
    const at = (q: string) => statementTimeoutOf(`postgres://u@127.0.0.1:5432/test${q}`);
    expect(at('')).toBe(30_000);
    expect(at('?search_path=a&statement_timeout=60000')).toBe(60_000);
    expect(at('?statement_timeout=90s')).toBe(90_000);
    expect(at('?statement_timeout=2min')).toBe(120_000);
    expect(at('?statement_timeout=0')).toBe(2 ** 31 - 1); // no limit: the longest timer Node takes
    expect(at('?statement_timeout=soon')).toBe(30_000); // PostgreSQL refuses it at connect
  });
});
