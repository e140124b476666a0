import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/soak/**/*.test.ts'],
    pool: 'forks',
    globalSetup: ['test/setup/services.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 120_000,
  },
});
