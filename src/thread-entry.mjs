// Entry of worker threads (and isolated child processes) when Conveyor runs from its
// TypeScript sources, as the tests do: loads the module named in CONVEYOR_ENTRY / workerData
// through tsx. Built, threads and processes start from the compiled .js file directly.
import { isMainThread, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

await tsImport(isMainThread ? process.env.CONVEYOR_ENTRY : workerData.entry, import.meta.url);
