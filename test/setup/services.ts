// Integration tests (*.int.test.ts) run on the real services (never mocks): Kafka (4.x, as
// scripts/services.sh starts it) on VIRGO_TEST_BROKERS (default 127.0.0.1:9092) and Redis on
// VIRGO_TEST_REDIS (default redis://127.0.0.1:6379), plus nc, kcat and redis-cli. A missing service
// fails the whole run with the fix; it never skips.
import { Socket } from 'node:net';
import { missingTools } from './tools.ts';

function reachable(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => done(true));
  });
}

function hostPort(s: string): [string, number] {
  const u = s.includes('://') ? new URL(s) : new URL(`tcp://${s}`);
  return [u.hostname, Number(u.port)];
}

export default async function setup(): Promise<void> {
  const brokers = process.env.VIRGO_TEST_BROKERS ?? '127.0.0.1:9092';
  const redis = process.env.VIRGO_TEST_REDIS ?? 'redis://127.0.0.1:6379';
  const missing: string[] = [];
  const [kh, kp] = hostPort(brokers.split(',')[0]!);
  if (!(await reachable(kh, kp))) missing.push(`Kafka at ${brokers}`);
  const [rh, rp] = hostPort(redis);
  if (!(await reachable(rh, rp))) missing.push(`Redis at ${redis}`);
  for (const tool of missingTools(['nc', 'kcat', 'redis-cli'])) missing.push(`the ${tool} command`);
  if (missing.length > 0) {
    throw new Error(
      `integration tests (*.int.test.ts) need real services; missing: ${missing.join(', ')}.\n` +
        'Start them with `npm run services:up` (installs Redis, nc and kcat with apt-get and fetches Kafka with mvn), ' +
        'or point VIRGO_TEST_BROKERS / VIRGO_TEST_REDIS at yours. `npm run test:unit` runs the tests that need none.',
    );
  }
  process.env.VIRGO_TEST_BROKERS = brokers;
  process.env.VIRGO_TEST_REDIS = redis;
}
