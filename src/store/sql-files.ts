import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromStates, LEASED_STATES, type TaskMove, TERMINAL_STATES, targetState } from '../core/task-state.js';

/**
 * Reads the named queries of a dialect's sql/ folder: each statement follows a
 * `-- name: queryName` line. Macros keep the state machine in one place:
 * `{from:claim}` becomes `('ENQUEUED')`, `{to:claim}` becomes `'CLAIMED'`,
 * `{terminal}` and `{leased}` the lists of those states.
 */
export function loadQueries(dir: URL): Record<string, string> {
  const path = fileURLToPath(dir);
  const out: Record<string, string> = {};
  for (const file of readdirSync(path)
    .filter((f) => f.endsWith('.sql'))
    .sort()) {
    for (const [name, text] of splitNamed(readFileSync(`${path}/${file}`, 'utf8'))) {
      if (out[name]) throw new Error(`query ${name} is defined twice (${file})`);
      out[name] = expandMacros(text);
    }
  }
  return out;
}

function splitNamed(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let name: string | null = null;
  let body: string[] = [];
  const flush = () => {
    if (name) out.push([name, body.join('\n').trim().replace(/;\s*$/, '')]);
  };
  for (const line of text.split('\n')) {
    const m = /^--\s*name:\s*(\w+)\s*$/.exec(line);
    if (m) {
      flush();
      name = m[1];
      body = [];
    } else if (name && !/^\s*--/.test(line)) body.push(line);
  }
  flush();
  return out;
}

const list = (states: readonly string[]) => `(${states.map((s) => `'${s}'`).join(', ')})`;

function expandMacros(sql: string): string {
  return sql.replace(/\{(from|to|terminal|leased)(?::(\w+))?\}/g, (_, kind: string, move?: string) => {
    if (kind === 'terminal') return list(TERMINAL_STATES);
    if (kind === 'leased') return list(LEASED_STATES);
    if (!move) throw new Error(`macro {${kind}} needs a move, e.g. {${kind}:claim}`);
    return kind === 'from' ? list(fromStates(move as TaskMove)) : `'${targetState(move as TaskMove)}'`;
  });
}

/** Numbered migrations (NNNN_name.sql) of a dialect, in order. */
export function loadMigrations(dir: URL): Array<{ version: number; name: string; sql: string }> {
  const path = fileURLToPath(dir);
  return readdirSync(path)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f.slice(5, -4), sql: readFileSync(`${path}/${f}`, 'utf8') }));
}
