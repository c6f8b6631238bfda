import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../src/errors.js';

// TigerBeetle's tidy.zig in spirit: the habits of CONTRIBUTING.md, checked by code.
const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

function files(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, ext));
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

const sources = files(SRC, /\.ts$/).map((p) => ({ path: relative(ROOT, p), text: readFileSync(p, 'utf8') }));
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

/** Files allowed past the size limit, each with its reason. */
const LONG_FILES: Record<string, string> = {};
const MAX_LINES = 500;

describe('tidy', () => {
  it(`keeps source files under ${MAX_LINES} lines (or says why)`, () => {
    const long = sources.filter((f) => f.text.split('\n').length > MAX_LINES && !LONG_FILES[f.path]).map((f) => f.path);
    expect(long).toEqual([]);
  });

  it('keeps SQL in store/ only', () => {
    const sql = /\b(SELECT\s+[\w*]+[\s\S]{0,40}\bFROM\b|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))/;
    const offenders = sources.filter((f) => !f.path.startsWith('src/store/') && sql.test(code(f.text))).map((f) => f.path);
    expect(offenders).toEqual([]);
  });

  it('reads time and randomness only through src/clock.ts', () => {
    const offenders = sources
      .filter((f) => f.path !== 'src/clock.ts' && /\bDate\.now\(|Math\.random\(|\bnew Date\(\)/.test(code(f.text)))
      .map((f) => f.path);
    expect(offenders).toEqual([]);
  });

  it('has no console output in src/ (the logger is pino)', () => {
    const offenders = sources.filter((f) => /\bconsole\.(log|info|warn|error|debug)\(/.test(code(f.text))).map((f) => f.path);
    expect(offenders).toEqual([]);
  });

  it('documents every error code in docs/errors.md, and nothing else', () => {
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => `${m[1]} ${m[2]}`);
    const catalogue = Object.entries(ERROR_CATALOGUE).map(([c, e]) => `${c} ${e.status}`);
    expect(new Set(documented)).toEqual(new Set(catalogue));
  });

  it('keeps the task states in one module', () => {
    const literal = /'(RETRIABLE_FAILURE|FATAL_FAILURE)'\s*(===|!==)|(===|!==)\s*'(RETRIABLE_FAILURE|FATAL_FAILURE)'/;
    // core/ decides; the store's lifecycle layer applies those decisions. Nobody else compares states.
    const allowed = new Set([
      'src/core/task-state.ts',
      'src/core/placement.ts',
      'src/core/failure.ts',
      'src/core/task.ts',
      'src/store/store.ts',
      'src/store/follow-ups.ts',
      'src/store/insert.ts',
    ]);
    const offenders = sources.filter((f) => !allowed.has(f.path) && literal.test(code(f.text))).map((f) => f.path);
    expect(offenders).toEqual([]);
  });
});
