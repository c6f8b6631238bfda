import type { Random } from '../clock.js';

/** How long a failed attempt waits before the next one. */
export interface BackoffOptions {
  /** First retry delay. @default 1000 */
  baseMs: number;
  /** Upper bound of any delay. @default 3_600_000 (one hour) */
  maxMs: number;
  /** Growth per attempt. @default 2 */
  factor: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { baseMs: 1000, maxMs: 3_600_000, factor: 2 };

/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random. Full jitter
 * (0..delay) can retry almost at once, which hurts a struggling dependency; no jitter makes
 * every task that failed together retry together.
 * @param failures how many attempts have failed so far (1 after the first failure)
 */
export function backoffDelayMs(failures: number, opts: BackoffOptions, random: Random): number {
  const exp = opts.baseMs * opts.factor ** Math.max(0, failures - 1);
  const capped = Math.min(opts.maxMs, exp);
  return Math.round(capped / 2 + (random.float() * capped) / 2);
}
