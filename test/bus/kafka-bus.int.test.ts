import { describe, expect, it } from 'vitest';
import { BusError, brokerUnreachable, KafkaBus } from '../../bus/index.ts';
import { BROKERS, unique } from '../helpers/services.ts';
import { freePort } from '../reliability/lib/private-kafka.ts';
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

  // Callers decide on BusError.code; these pin the mapping from what kafkajs really throws.
  it('an unreachable broker (a closed port) is code connect, whichever call meets it', async () => {
    const port = await freePort(); // bound then released: nothing listens there now
    const bus = new KafkaBus({ brokers: [`127.0.0.1:${port}`], retries: 0, connectionTimeoutMs: 500 });
    for (const call of [
      () => bus.ensureTopics([{ topic: 'x' }]),
      () => bus.publish('x', [{ value: 'y' }]),
      () => bus.topicOffsets('x'),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BusError);
      expect((err as BusError).code).toBe('connect');
      expect(brokerUnreachable(err)).toBe(true);
    }
    await bus.close();
  });

  it('the offsets of a topic that does not exist are code unknown-topic, not connect', async () => {
    const bus = new KafkaBus({ brokers: BROKERS, retries: 0 });
    const err = await bus.topicOffsets(unique('no-such-topic')).catch((e: unknown) => e);
    await bus.close();
    expect(err).toBeInstanceOf(BusError);
    expect((err as BusError).code).toBe('unknown-topic');
    expect(brokerUnreachable(err)).toBe(false);
  });
});
