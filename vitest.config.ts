import { defineConfig } from 'vitest/config';

// Two projects, split by file name:
//   unit         every *.test.ts: needs Node and nc only, passes with Kafka and Redis stopped;
//   integration  every *.int.test.ts: real Kafka and Redis (+ kcat, redis-cli), checked up front.
// `npm test` runs both; `npm run test:unit` / `npm run test:int` one each. A test that needs a
// service must be named *.int.test.ts: the unit project points the service addresses at a closed
// port, so such a test fails there even on a machine where the services run.
const CLOSED = '127.0.0.1:1';

export default defineConfig({
  test: {
    exclude: ['node_modules/**', 'dist/**', 'test/soak/**'],
    // Forks, not threads: zeromq and tfjs hold native/global state per process.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: ['node_modules/**', 'dist/**', 'test/soak/**', '**/*.int.test.ts'],
          globalSetup: ['test/setup/tools.ts'],
          env: { VIRGO_TEST_BROKERS: CLOSED, VIRGO_TEST_REDIS: `redis://${CLOSED}` },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['**/*.int.test.ts'],
          globalSetup: ['test/setup/services.ts'],
        },
      },
    ],
  },
});
