import { randomBytes } from 'node:crypto';
import { describe, it } from 'vitest';
import { runStoreContract } from '../../src/store/contract/contract.js';
import { dropSchema, PostgresDriver } from '../../src/store/postgres/postgres-driver.js';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Why PostgreSQL cannot be used, or null when it answers. */
async function unreachable(): Promise<string | null> {
  const probe = new PostgresDriver({ url: PG_URL, maxConnections: 1 });
  try {
    await probe.ping();
    return null;
  } catch (err) {
    return `PostgreSQL at ${PG_URL} is unreachable (${(err as Error).message}); set PG_URL to run the PostgreSQL store contract`;
  } finally {
    await probe.close().catch(() => undefined);
  }
}

const reason = await unreachable();

// In CI a missing database is a failure, never a quiet skip.
if (reason !== null && process.env.CI === 'true') {
  describe('store contract: postgres', () => {
    it('needs a reachable PostgreSQL in CI', () => {
      throw new Error(reason);
    });
  });
}

const schemas = new Map<object, string>();

describe.skipIf(reason !== null)(reason ?? 'postgres', () => {
  runStoreContract({
    name: 'postgres',
    async makeDriver() {
      // A fresh schema per test: migrate() creates it, cleanup drops it.
      const schema = `conveyor_test_${randomBytes(6).toString('hex')}`;
      const driver = new PostgresDriver({ url: PG_URL, schema, maxConnections: 4 });
      schemas.set(driver, schema);
      return driver;
    },
    async cleanup(driver) {
      await dropSchema(PG_URL, schemas.get(driver) as string);
      schemas.delete(driver);
    },
  });
});
