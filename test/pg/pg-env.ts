import { randomBytes } from 'node:crypto';
import { describe, it } from 'vitest';
import { dropSchema, PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import { onCleanup } from '../helpers.js';

/** The shared PostgreSQL of the test machine (never restarted by a test: see private-cluster.ts). */
export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Why the shared PostgreSQL cannot be used, or null when it answers. */
export async function pgUnreachable(url = PG_URL): Promise<string | null> {
  const probe = new PostgresDriver({ url, maxConnections: 1 });
  try {
    await probe.ping();
    return null;
  } catch (err) {
    return `PostgreSQL at ${url} is unreachable (${(err as Error).message}); set PG_URL to run the PostgreSQL tests`;
  } finally {
    await probe.close().catch(() => undefined);
  }
}

/**
 * describe() for tests that need something the machine may lack (a database, server binaries):
 * skipped with the reason on a developer's machine, a failing test under CI=true, where a
 * missing database must never pass quietly.
 */
export function describeIf(reason: string | null, name: string, fn: () => void): void {
  if (reason !== null && process.env.CI === 'true') {
    describe(name, () => {
      it('needs its database in CI', () => {
        throw new Error(reason);
      });
    });
    return;
  }
  describe.skipIf(reason !== null)(reason ?? name, fn);
}

/** A URL of a fresh schema on `url` (created by the first migrate), dropped after the test. */
export function freshSchema(url = PG_URL): { url: string; schema: string } {
  const schema = `conveyor_test_${randomBytes(6).toString('hex')}`;
  onCleanup(() => dropSchema(url, schema));
  return { url: `${url}${url.includes('?') ? '&' : '?'}search_path=${schema}`, schema };
}
