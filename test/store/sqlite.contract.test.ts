import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStoreContract } from '../../src/store/contract/contract.js';
import { SqliteDriver } from '../../src/store/sqlite/sqlite-driver.js';

const dirs = new Map<object, string>();

runStoreContract({
  name: 'sqlite',
  async makeDriver() {
    const dir = mkdtempSync(join(tmpdir(), 'conveyor-contract-'));
    const driver = new SqliteDriver({ path: join(dir, 'store.db') });
    dirs.set(driver, dir);
    return driver;
  },
  async cleanup(driver) {
    rmSync(dirs.get(driver) as string, { recursive: true, force: true });
    dirs.delete(driver);
  },
});
