import { randomBytes } from 'node:crypto';

/**
 * The time and randomness seams. Nothing else in src/ reads the wall clock or draws random
 * numbers, so tests can pin time and make jitter repeatable.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export interface Random {
  /** A float in [0, 1). */
  float(): number;
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The longest delay a Node timer takes (about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

// Random bytes are drawn from a pooled buffer: ids need 10 bytes each, and one 4 KiB
// randomBytes call serves 400 of them (a call per id cost more than the insert at 60k ids/s).
const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let poolOffset = 0;

export const systemRandom: Random = {
  float: () => Math.random(),
  bytes(n) {
    if (n > POOL_BYTES) return randomBytes(n);
    if (poolOffset + n > POOL_BYTES) {
      pool = randomBytes(POOL_BYTES);
      poolOffset = 0;
    }
    const out = pool.subarray(poolOffset, poolOffset + n);
    poolOffset += n;
    return out;
  },
};

/** A clock that only moves when told to, for tests. */
export class ManualClock implements Clock {
  constructor(private ms: number = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
}

/** A repeatable random source (mulberry32), for tests. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  const float = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    float,
    bytes(n) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.floor(float() * 256);
      return out;
    },
  };
}
