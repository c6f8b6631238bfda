import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

// scripts/patch-deps.mjs guards a write in postgres.js that can crash the process when
// PostgreSQL restarts (see the script); the install must have applied it to both builds.
describe('postgres client patch', () => {
  const root = join(dirname(createRequire(import.meta.url).resolve('postgres')), '..', '..');
  const files = [join(root, 'src', 'connection.js'), join(root, 'cjs', 'src', 'connection.js')];

  it('is applied to the ESM and CommonJS builds, and applying it again changes nothing', () => {
    const before = files.map((f) => readFileSync(f, 'utf8'));
    for (const text of before) {
      expect(text).toContain('/* conveyor: closed-socket guard */');
      expect(text).toMatch(/if \(!socket\) \{[^}]*CONNECTION_CLOSED[^}]*return false/);
    }
    execFileSync(process.execPath, ['scripts/patch-deps.mjs']);
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(before);
  });
});
