import { describe, expect, it } from 'vitest';
import { BusError, KafkaBus } from '../../bus/index.ts';
import { BROKERS } from '../helpers/services.ts';
import { busContract } from './contract.ts';

busContract('Kafka (real broker)', () => new KafkaBus({ brokers: BROKERS, clientId: 'virgo-test' }));

describe('Kafka bus errors', () => {
  it('fails with a clear, bounded error when no broker answers', async () => {
    const bus = new KafkaBus({ brokers: ['127.0.0.1:1'], retries: 1, connectionTimeoutMs: 500 });
    const t0 = Date.now();
    const err = await bus.publish('x', [{ value: 'y' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusError);
    expect((err as Error).message).toMatch(/127\.0\.0\.1:1.*services:up/s);
    expect(Date.now() - t0).toBeLessThan(20_000);
    await bus.close();
  });
});
