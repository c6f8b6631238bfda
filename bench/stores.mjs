// The store a bench run uses: a SQLite file in a fresh directory, or a fresh schema on
// PostgreSQL (PG_URL, default the local server's `postgres` database), removed afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Answers `{ store, dir, remove() }`; `name` tags the directory or schema (letters and digits). */
export function benchStore(backend, name) {
  const dir = mkdtempSync(join(tmpdir(), `conveyor-${name}-`));
  if (backend !== 'postgres')
    return { store: join(dir, 'bench.db'), dir, remove: async () => rmSync(dir, { recursive: true, force: true }) };
  const u = new URL(process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  // The run id the harness passes, plus a random part: a schema left by a killed run is never reused.
  const run = (process.env.PEERBENCH_RUN_ID ?? Date.now().toString(36)).replace(/[^a-z0-9]/g, '');
  const schema = `conveyor_${name}_${run}_${randomBytes(3).toString('hex')}`;
  u.searchParams.set('search_path', schema);
  const store = u.toString();
  return {
    store,
    dir,
    async remove() {
      rmSync(dir, { recursive: true, force: true });
      const { dropSchema } = await import(new URL('../dist/store/postgres/postgres-driver.js', import.meta.url).href);
      await dropSchema(store, schema);
    },
  };
}
