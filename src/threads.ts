import { Worker, type WorkerOptions } from 'node:worker_threads';

const ENTRY = new URL('./thread-entry.mjs', import.meta.url);

/**
 * Starts a worker thread on `entry`; from TypeScript sources (tests) through thread-entry.mjs,
 * which loads the .ts module with tsx (a thread does not inherit the parent's loaders).
 */
export function startThread(entry: URL, opts: WorkerOptions = {}): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, opts);
  return new Worker(ENTRY, { ...opts, workerData: { ...(opts.workerData as object), entry: entry.href } });
}

/** How to fork a module as a child process: the file, and the environment that makes a .ts file loadable. */
export function forkTarget(entry: URL): { file: URL; env: Record<string, string> } {
  if (!entry.pathname.endsWith('.ts')) return { file: entry, env: {} };
  return { file: ENTRY, env: { CONVEYOR_ENTRY: entry.href } };
}
