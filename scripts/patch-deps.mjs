#!/usr/bin/env node
// Repairs two crashes in the `postgres` client (3.4.x) that upstream has not released fixes for.
// Both end the whole process during a PostgreSQL restart or outage, which the store otherwise
// rides out (503, then recovery):
//  - closed-socket guard (porsager/postgres issues 1154 and 1208): a write scheduled with
//    setImmediate can run after the socket closed, and `null.write` then throws outside any
//    promise. The guard fails the connection's pending queries with CONNECTION_CLOSED instead,
//    which the store maps to 503 and retries.
//  - type-fetch guard (issues 1192, 1205, 1223): a new connection first asks for the array
//    types, in an async function whose promise is dropped; if that query fails (the connection
//    ended by a pool being replaced, the database shutting down, a statement timeout) the
//    rejection has no handler. The error already reaches the connection's queries, so the
//    guard only gives that promise a handler.
// Runs on install; idempotent; warns (never fails the install) when the client's code has moved on.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const PATCHES = [
  {
    name: 'closed-socket guard',
    marker: '/* conveyor: closed-socket guard */',
    unguarded: /function nextWrite\(fn\) \{\n(\s+)const x = socket\.write\(chunk, fn\)/,
    guard: (marker, _, pad) =>
      `function nextWrite(fn) {\n${pad}${marker}\n` +
      `${pad}if (!socket) {\n` +
      `${pad}  nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n` +
      `${pad}  chunk = nextWriteTimer = null\n` +
      `${pad}  error(Errors.connection('CONNECTION_CLOSED', options))\n` +
      `${pad}  return false\n` +
      `${pad}}\n` +
      `${pad}const x = socket.write(chunk, fn)`,
  },
  {
    name: 'type-fetch guard',
    marker: '/* conveyor: type-fetch guard */',
    unguarded: /\n(\s+)return fetchArrayTypes\(\)\n/,
    guard: (marker, _, pad) => `\n${pad}${marker}\n${pad}return fetchArrayTypes().catch(() => {})\n`,
  },
];

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

/** Applies every patch not applied yet to one file; answers what became of each. */
function patchFile(file) {
  let text = readFileSync(file, 'utf8');
  const outcomes = PATCHES.map((p) => {
    if (text.includes(p.marker)) return 'already';
    if (!p.unguarded.test(text)) return 'unknown';
    text = text.replace(p.unguarded, (...m) => p.guard(p.marker, ...m));
    return 'patched';
  });
  if (outcomes.includes('patched')) writeFileSync(file, text);
  return outcomes;
}

const results = connectionFiles().map((f) => [f, patchFile(f)]);
PATCHES.forEach((p, i) => {
  const unknown = results.filter(([, r]) => r[i] === 'unknown').map(([f]) => f);
  if (unknown.length) console.error(`patch-deps: postgres client code differs from 3.4.x; ${p.name} not applied to ${unknown.join(', ')}`);
  else if (results.some(([, r]) => r[i] === 'patched')) console.error(`patch-deps: postgres client ${p.name} applied`);
});
