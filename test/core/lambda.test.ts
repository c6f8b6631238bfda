import { describe, expect, it } from 'vitest';
import { lambdaConfigOf } from '../../src/core/lambda.js';

describe('lambda settings', () => {
  it('refuses a memoryMb that is not a whole number of MiB, naming the lambda and the field', () => {
    const handler = async () => undefined;
    for (const memoryMb of [-5, 0, 0.5, Number.NaN, '512']) {
      expect(() => lambdaConfigOf({ name: 'big', isolation: 'process', memoryMb, handler } as never)).toThrow(
        `lambda "big": memoryMb must be an integer from 1 to 1048576, got`,
      );
    }
    expect(lambdaConfigOf({ name: 'big', isolation: 'thread', memoryMb: 256, handler } as never).isolation).toBe('thread');
  });
});
