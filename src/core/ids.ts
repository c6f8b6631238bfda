import type { Clock, Random } from '../clock.js';

// Crockford base32, the ULID alphabet: sortable as plain strings, no ambiguous letters.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * Makes ULIDs: 48 bits of milliseconds then 80 random bits, 26 characters, sortable by
 * creation time. Within one millisecond the random part is incremented, so ids from one
 * generator are strictly increasing; that keeps inserts appending at the end of the primary
 * key index (a random key costs a page split per insert on big tables).
 */
export class IdGenerator {
  private lastMs = -1;
  private last = new Uint8Array(10);

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  next(): string {
    let ms = this.clock.now();
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      increment(this.last);
    } else {
      this.lastMs = ms;
      this.last = Uint8Array.from(this.random.bytes(10));
      this.last[0] &= 0x7f; // leave headroom so increments within one ms never overflow
    }
    return encodeTime(ms) + encodeRandom(this.last);
  }
}

function increment(bytes: Uint8Array): void {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 255) {
      bytes[i]++;
      return;
    }
    bytes[i] = 0;
  }
}

function encodeTime(ms: number): string {
  let out = '';
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits = 16 base32 characters, read 5 bits at a time
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
export function isId(value: string): boolean {
  return ULID.test(value);
}
