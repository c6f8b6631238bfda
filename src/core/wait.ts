import { MAX_TIMER_MS } from '../clock.js';
import { ConveyorError } from '../errors.js';

/** A wait's length (waitFor's timeoutMs): a whole number of ms a timer can hold, else validation_failed. */
export function waitTimeoutOf(ms: number | undefined, fallback: number): number {
  if (ms === undefined) return fallback;
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_TIMER_MS) {
    throw new ConveyorError('validation_failed', `timeoutMs must be a whole number of ms from 0 to ${MAX_TIMER_MS}, not ${ms}`);
  }
  return ms;
}
