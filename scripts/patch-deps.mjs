#!/usr/bin/env node
// Repairs a crash in the `postgres` client (3.4.x) that upstream has not released a fix for
// (porsager/postgres issues 1154 and 1208): a write scheduled with setImmediate can run after the
// socket closed, and `null.write` then throws outside any promise, which ends the whole process.
// A PostgreSQL restart under load triggers it. The guard makes that write fail the connection's
// pending queries with CONNECTION_CLOSED instead, which the store already maps to 503 and retries.
// Runs on install; idempotent; warns (never fails the install) when the client's code has moved on.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const MARKER = '/* conveyor: closed-socket guard */';

const UNGUARDED = /function nextWrite\(fn\) \{\n(\s+)const x = socket\.write\(chunk, fn\)/;

/** Returns the client's connection.js files (ESM and CommonJS builds), or [] when not installed. */
function connectionFiles() {
  let root;
  try {
    root = join(dirname(createRequire(import.meta.url).resolve('postgres')), '..', '..');
  } catch {
    return [];
  }
  return [join(root, 'src', 'connection.js'), join(root, 'cjs', 'src', 'connection.js')];
}

function patch(file) {
  const text = readFileSync(file, 'utf8');
  if (text.includes(MARKER)) return 'already';
  if (!UNGUARDED.test(text)) return 'unknown';
  const guarded = text.replace(
    UNGUARDED,
    (_, pad) =>
      `function nextWrite(fn) {\n${pad}${MARKER}\n` +
      `${pad}if (!socket) {\n` +
      `${pad}  nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n` +
      `${pad}  chunk = nextWriteTimer = null\n` +
      `${pad}  error(Errors.connection('CONNECTION_CLOSED', options))\n` +
      `${pad}  return false\n` +
      `${pad}}\n` +
      `${pad}const x = socket.write(chunk, fn)`,
  );
  writeFileSync(file, guarded);
  return 'patched';
}

const results = connectionFiles().map((f) => [f, patch(f)]);
const unknown = results.filter(([, r]) => r === 'unknown');
if (unknown.length) {
  console.error(
    `patch-deps: postgres client code differs from 3.4.x; closed-socket guard not applied to ${unknown.map(([f]) => f).join(', ')}`,
  );
} else if (results.some(([, r]) => r === 'patched')) {
  console.error('patch-deps: postgres client closed-socket guard applied');
}
