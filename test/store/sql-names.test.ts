import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Both dialects answer the same named queries, so their sql/ folders diff side by side.
const STORE = join(import.meta.dirname, '../../src/store');
const DIALECTS = ['sqlite', 'postgres'] as const;

/**
 * driver.sql holds a driver's own plumbing (transactions, durability, migration bookkeeping),
 * which each engine does its own way; it is not compared.
 */
const PLUMBING = 'driver.sql';

/** Names one dialect needs and the other does not, each with the engine limit behind it. */
const DIALECT_ONLY: Record<(typeof DIALECTS)[number], Record<string, string>> = {
  sqlite: {
    // SQLite has no DELETE inside a WITH: taskDelete needs this one beside it, where
    // PostgreSQL's taskDelete removes a task's attempts in the same statement.
    attemptDeleteByTask: 'PostgreSQL deletes attempts inside taskDelete',
  },
  postgres: {
    // SQLite is one process (capabilities.multiProcess false): nobody to wake, so its notify is
    // a no-op in code and has no statement.
    notify: 'SQLite has no LISTEN/NOTIFY and no other process to wake',
    // SQLite has one writer at a time: a decision read in a transaction holds until its commit.
    taskByIdForUpdate: 'SQLite writers take turns: the plain taskById holds',
    keyLock: 'SQLite writers take turns: nothing decides about a key beside them',
    // Applications share a transaction with Conveyor only on PostgreSQL (a stored function).
    taskEnqueueCall: 'conveyor_enqueue is a PostgreSQL function (migration 0002)',
  },
};

function queryNames(dialect: string): Set<string> {
  const dir = join(STORE, dialect, 'sql');
  const names = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql') && f !== PLUMBING)) {
    for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/^--\s*name:\s*(\w+)\s*$/gm)) names.add(m[1]);
  }
  return names;
}

const migrations = (dialect: string) =>
  readdirSync(join(STORE, dialect, 'migrations'))
    .filter((f) => f.endsWith('.sql'))
    .sort();

describe('SQL names line up between dialects', () => {
  for (const [a, b] of [DIALECTS, [...DIALECTS].reverse()]) {
    it(`every ${a} query has a ${b} twin (or a reason why not)`, () => {
      const theirs = queryNames(b);
      const missing = [...queryNames(a)].filter((n) => !theirs.has(n) && !(n in DIALECT_ONLY[a as keyof typeof DIALECT_ONLY]));
      expect(missing).toEqual([]);
    });
  }

  it('lists only dialect-only names that exist and are really missing on the other side', () => {
    for (const [dialect, names] of Object.entries(DIALECT_ONLY)) {
      const own = queryNames(dialect);
      const other = queryNames(DIALECTS.find((d) => d !== dialect) as string);
      for (const name of Object.keys(names)) {
        expect(own.has(name), `${dialect} has ${name}`).toBe(true);
        expect(other.has(name), `${name} is not dialect-only any more`).toBe(false);
      }
    }
  });

  it('has the same migration files in both dialects', () => {
    expect(migrations('postgres')).toEqual(migrations('sqlite'));
  });
});
