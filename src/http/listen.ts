import { isIP } from 'node:net';
import { ConveyorError } from '../errors.js';

/** Whether a listen address only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1';
  return false;
}

/** Refuses a non-loopback address without a token unless `insecure` (checked before anything starts). */
export function checkListenable(opts: { host?: string; token?: string; insecure?: boolean }): void {
  const host = opts.host ?? '127.0.0.1';
  if (!opts.token && !opts.insecure && !isLoopback(host)) {
    throw new ConveyorError(
      'validation_failed',
      `refusing to listen on ${host} without a token: set CONVEYOR_TOKEN (or --token), or pass --insecure if the network is trusted`,
    );
  }
}
