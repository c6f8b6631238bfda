import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingGuards } from '../../src/store/postgres/client-patch.js';
import { describeIf, PG_URL, pgUnreachable } from '../pg/pg-env.js';

// scripts/patch-deps.mjs guards two places in postgres.js that can crash the process when
// PostgreSQL restarts or goes away (see the script); the install must have applied both guards
// to both builds.
describe('postgres client patch', () => {
  const root = join(dirname(createRequire(import.meta.url).resolve('postgres')), '..', '..');
  const files = [join(root, 'src', 'connection.js'), join(root, 'cjs', 'src', 'connection.js')];

  it('is applied to the ESM and CommonJS builds, and applying it again changes nothing', () => {
    const before = files.map((f) => readFileSync(f, 'utf8'));
    for (const text of before) {
      expect(text).toContain('/* conveyor: closed-socket guard */');
      expect(text).toMatch(/if \(!socket\) \{[^}]*CONNECTION_CLOSED[^}]*return false/);
      expect(text).toContain('/* conveyor: type-fetch guard */');
      expect(text).toMatch(/return fetchArrayTypes\(\)\.catch\(/);
    }
    execFileSync(process.execPath, ['scripts/patch-deps.mjs']);
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(before);
  });

  it('names the guards a client lacks, which the server warns about at start', () => {
    const installed = readFileSync(files[0] as string, 'utf8');
    expect(missingGuards(installed)).toEqual([]);
    const withoutTypeFetch = installed.replace('/* conveyor: type-fetch guard */', '');
    expect(missingGuards(withoutTypeFetch)).toEqual(['type-fetch guard']);
    expect(missingGuards('')).toEqual(['closed-socket guard', 'type-fetch guard']);
  });
});

// A new connection's first statement is postgres.js's own query for the array types; when it
// fails, the unpatched client leaves a rejected promise without a handler and Node ends the
// process. A 1 ms statement_timeout makes it fail on every connection (in CI it was a pool
// replaced during an outage, which ended a connection in the middle of that query).
const ARRAY_TYPES_CANCELLED = `
  import postgres from 'postgres';
  let cancelled = 0;
  for (let i = 0; i < 5; i++) {
    const sql = postgres(process.argv[1], { max: 1, onnotice() {}, connection: { statement_timeout: 1 } });
    try {
      await sql\`select 1\`;
    } catch (err) {
      if (err.code === '57014') cancelled++;
    }
    await new Promise((r) => setTimeout(r, 20));
    await sql.end({ timeout: 1 });
  }
  console.log(JSON.stringify({ cancelled }));
`;

describeIf(await pgUnreachable(), 'postgres client patch against the real PostgreSQL', () => {
  it('survives the array-types query failing on a new connection', () => {
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', ARRAY_TYPES_CANCELLED, PG_URL], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status, run.stderr).toBe(0);
    // The statement timeout did cancel statements, so the failing path was taken.
    expect(JSON.parse(run.stdout).cancelled).toBeGreaterThan(0);
  });
});
