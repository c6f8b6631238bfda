import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** What scripts/patch-deps.mjs writes into postgres.js with each of its guards, by guard. */
const MARKERS = { 'closed-socket guard': '/* conveyor: closed-socket guard */', 'type-fetch guard': '/* conveyor: type-fetch guard */' };

/** The guards that postgres.js's connection.js (its text) lacks. */
export function missingGuards(text: string): string[] {
  return Object.entries(MARKERS)
    .filter(([, marker]) => !text.includes(marker))
    .map(([name]) => name);
}

let checked = false;

/**
 * Warns once per process when the installed postgres.js lacks a guard that scripts/patch-deps.mjs
 * adds on install (skipped, say, by an install with --ignore-scripts): without them a PostgreSQL
 * restart or outage can end this process (a TypeError, or an unhandled rejection).
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
  const missing = missingGuards(text);
  if (missing.length) {
    process.emitWarning(
      `the postgres client lacks its ${missing.join(' and ')} (run \`node scripts/patch-deps.mjs\`); a PostgreSQL restart or outage may crash this process`,
      { code: 'CONVEYOR_PG_UNPATCHED' },
    );
  }
}
