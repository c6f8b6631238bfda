import { expect, it } from 'vitest';
import { startConveyor } from '../helpers.js';

it('counts a result against the limit in bytes of UTF-8, not in characters', async () => {
  // 400 CJK characters: 402 characters of JSON, 1,202 bytes.
  const c = await startConveyor({
    maxPayloadBytes: 1000,
    lambdas: [
      { name: 'cjk', handler: async () => '漢'.repeat(400), maxAttempts: 1 },
      { name: 'ascii', handler: async () => 'x'.repeat(900), maxAttempts: 1 },
    ],
  });
  const big = await c.waitFor((await c.submit('cjk', {})).id);
  expect(big.state).toBe('FATAL_FAILURE');
  expect(big.error?.message).toMatch(/returned 1202 bytes of JSON, above the limit of 1000/);
  const fits = await c.waitFor((await c.submit('ascii', {})).id);
  expect(fits.state).toBe('SUCCESS');
});
