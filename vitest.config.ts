import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', '**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'test/soak/**'],
    // Forks, not threads: zeromq and tfjs hold native/global state per process.
    pool: 'forks',
    globalSetup: ['test/setup/services.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
