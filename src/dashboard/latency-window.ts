/** Percentiles of one sliding window, in milliseconds. */
export interface Percentiles {
  /** Samples in the window. */
  count: number;
  p50: number;
  p95: number;
  p99: number;
}

// Log-spaced buckets, four per doubling: each is 19% wide, so a reported percentile (the
// bucket's geometric middle) is within 9% of the true sample. Bucket 0 holds everything up to
// 0.5 ms; the last one everything from about two hours on. A percentile over a window is then
// a merge of a few fixed arrays, whatever the throughput (a sorted sample list would grow with
// it, and a reservoir would lose the tail the p99 is about).
const PER_DOUBLING = 4;
const FLOOR_MS = 0.5;
/** Buckets per histogram: 0.5 ms * 2^(95/4) is about 2 hours. */
export const LATENCY_BUCKETS = 96;

/** The bucket of a duration in milliseconds. */
export function latencyBucketOf(ms: number): number {
  if (!(ms > FLOOR_MS)) return 0;
  const i = 1 + Math.floor(Math.log2(ms / FLOOR_MS) * PER_DOUBLING);
  return i < LATENCY_BUCKETS ? i : LATENCY_BUCKETS - 1;
}

/** The value a bucket stands for: its geometric middle (bucket 0: half the floor). */
export function latencyOfBucket(i: number): number {
  if (i <= 0) return FLOOR_MS / 2;
  return FLOOR_MS * 2 ** ((i - 0.5) / PER_DOUBLING);
}

/**
 * Latency percentiles over the last `slots` ticks: one bucket histogram per tick in a ring.
 * `add` costs one log2; `rotate` (once a tick) clears the oldest slot. Memory is fixed:
 * slots * 96 counters, whatever the throughput.
 */
export class LatencyWindow {
  private readonly ring: Uint32Array[];
  private current = 0;

  constructor(slots: number) {
    this.ring = Array.from({ length: Math.max(1, slots) }, () => new Uint32Array(LATENCY_BUCKETS));
  }

  add(ms: number): void {
    this.ring[this.current][latencyBucketOf(ms)]++;
  }

  /** Starts a new tick, forgetting the oldest. */
  rotate(): void {
    this.current = (this.current + 1) % this.ring.length;
    this.ring[this.current].fill(0);
  }

  /** Percentiles over the whole window, or null when it holds no sample. */
  percentiles(): Percentiles | null {
    const merged = new Float64Array(LATENCY_BUCKETS);
    let count = 0;
    for (const slot of this.ring) {
      for (let i = 0; i < LATENCY_BUCKETS; i++) merged[i] += slot[i];
    }
    for (let i = 0; i < LATENCY_BUCKETS; i++) count += merged[i];
    if (count === 0) return null;
    const at = (q: number) => {
      const rank = Math.ceil(q * count);
      let seen = 0;
      for (let i = 0; i < LATENCY_BUCKETS; i++) {
        seen += merged[i];
        if (seen >= rank) return round(latencyOfBucket(i));
      }
      return round(latencyOfBucket(LATENCY_BUCKETS - 1));
    };
    return { count, p50: at(0.5), p95: at(0.95), p99: at(0.99) };
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
