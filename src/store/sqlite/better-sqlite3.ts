import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

/**
 * better-sqlite3, in the build that is safe on this Node.js. Version 12 (the one Node 20 can
 * run) wraps its objects with node::ObjectWrap, whose destructor aborts the process on Node 24
 * when the garbage collector frees a statement ("Assertion failed: (env) != nullptr" in
 * RemoveEnvironmentCleanupHook; seen here as `conveyor dev` dying at start). Version 13 is built
 * on Node-API and has no such destructor, but needs Node 22. package.json installs 13 as the
 * optional alias `better-sqlite3-napi`, which npm skips on Node 20; where it is installed, it is
 * the one used. Both have the same API.
 */
function load(): typeof BetterSqlite3 {
  const require = createRequire(import.meta.url);
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= 22) {
    try {
      return require('better-sqlite3-napi') as typeof BetterSqlite3;
    } catch {
      if (major >= 24) {
        process.emitWarning(
          'better-sqlite3 13 (optional dependency better-sqlite3-napi) is not installed; version 12 can abort the process on Node 24. Run `npm install` with Node 24 to add it.',
          { code: 'CONVEYOR_SQLITE_NODE24' },
        );
      }
    }
  }
  return require('better-sqlite3') as typeof BetterSqlite3;
}

export const Database: typeof BetterSqlite3 = load();
export type { BetterSqlite3 };
