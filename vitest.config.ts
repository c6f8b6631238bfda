import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Crash and browser suites start real processes; two files at a time fits the 2-core machine.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
