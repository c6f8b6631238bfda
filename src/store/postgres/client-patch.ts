import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** What scripts/patch-deps.mjs writes into postgres.js when it guards the closed-socket write. */
const MARKER = '/* conveyor: closed-socket guard */';

let checked = false;

/**
 * Warns once per process when the installed postgres.js lacks the closed-socket guard that
 * scripts/patch-deps.mjs adds on install (skipped, say, by an install with --ignore-scripts):
 * without it a PostgreSQL restart under load can end this process with a TypeError.
 */
export function warnIfClientUnpatched(): void {
  if (checked) return;
  checked = true;
  let text: string;
  try {
    // The ESM build (src/) is the one this process loads; require.resolve names the CommonJS one.
    const cjsIndex = createRequire(import.meta.url).resolve('postgres');
    text = readFileSync(join(dirname(cjsIndex), '..', '..', 'src', 'connection.js'), 'utf8');
  } catch {
    return;
  }
  if (!text.includes(MARKER)) {
    process.emitWarning(
      'the postgres client is not patched (run `node scripts/patch-deps.mjs`); a PostgreSQL restart under load may crash this process',
      { code: 'CONVEYOR_PG_UNPATCHED' },
    );
  }
}
