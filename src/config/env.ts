import type { ServerOptions } from './options.js';

/**
 * Server tuning from the environment (12-factor): every ServerOptions number has a
 * CONVEYOR_* twin, e.g. heartbeatMs <- CONVEYOR_HEARTBEAT_MS. Flags that the CLI documents
 * (port, host, store, token, concurrency) are read by commander; these are the rest.
 */
const NUMERIC: Array<keyof ServerOptions> = [
  'heartbeatMs',
  'leaseMs',
  'enqueueTimeoutMs',
  'agingShare',
  'retentionMs',
  'sweepIntervalMs',
  'sweepBatch',
  'maxPayloadBytes',
  'batchMax',
  'maxPendingWrites',
  'claimBatchMax',
  'maxQueue',
  'ingestWriters',
  'maxConnections',
  'pgPool',
];

export const envName = (option: string) => `CONVEYOR_${option.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

export function serverOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ServerOptions {
  const out: Record<string, unknown> = {};
  for (const name of NUMERIC) {
    const raw = env[envName(name)];
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new TypeError(`${envName(name)} must be a number, got ${JSON.stringify(raw)}`);
    out[name] = n;
  }
  const sync = env.CONVEYOR_SYNCHRONOUS;
  if (sync !== undefined && sync !== '') out.synchronous = sync.toLowerCase();
  return out as ServerOptions;
}

/** Names of the env twins, for --help texts. */
export function envTwins(): string[] {
  return [...NUMERIC.map(envName), 'CONVEYOR_SYNCHRONOUS'];
}
