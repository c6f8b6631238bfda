import { ConveyorError } from '../errors.js';
import type { Driver } from './driver.js';
import { SqliteDriver } from './sqlite/sqlite-driver.js';

export type StoreLocation = { dialect: 'sqlite'; path: string } | { dialect: 'postgres'; url: string };

/** Reads a store location: a file path, `sqlite:PATH`, `:memory:`, or a postgres:// URL. */
export function parseStoreLocation(store: string): StoreLocation {
  if (/^postgres(ql)?:\/\//i.test(store)) return { dialect: 'postgres', url: store };
  if (store.startsWith('sqlite:')) {
    const path = store.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new ConveyorError('validation_failed', 'sqlite: needs a path, e.g. sqlite:./conveyor.db');
    return { dialect: 'sqlite', path };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(store)) {
    throw new ConveyorError(
      'validation_failed',
      `unsupported store ${JSON.stringify(store.split('://')[0])}: use a SQLite file path, sqlite:PATH or postgres://...`,
    );
  }
  return { dialect: 'sqlite', path: store };
}

export interface DriverOptions {
  synchronous: 'full' | 'normal';
  /** PostgreSQL pool size. @default DEFAULT_POOL of postgres-driver.ts */
  maxConnections?: number;
}

export async function openDriver(store: string, opts: DriverOptions): Promise<Driver> {
  const loc = parseStoreLocation(store);
  if (loc.dialect === 'sqlite') return new SqliteDriver({ path: loc.path, synchronous: opts.synchronous });
  // Loaded on demand: a SQLite user never loads the PostgreSQL client.
  const { PostgresDriver } = await import('./postgres/postgres-driver.js');
  return new PostgresDriver({ url: loc.url, maxConnections: opts.maxConnections });
}
