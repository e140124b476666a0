import { describe, expect, it } from 'vitest';
import { BusError, brokerUnreachable, KafkaBus } from '../../bus/index.ts';
import { freePort } from '../helpers/ports.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';
import { busContract } from './lib/contract.ts';

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

describe('Kafka bus commits', () => {
  const committed = async (bus: KafkaBus, groupId: string, topic: string) => {
    const admin = bus.kafka.admin();
    await admin.connect();
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    await admin.disconnect();
    return t!.partitions[0]!.offset;
  };

  it('commits handled offsets soon after the batch, with no commit() or close()', async () => {
    const bus = new KafkaBus({ brokers: BROKERS });
    const topic = unique('commit-soon');
    const groupId = unique('g');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    await bus.publish(topic, [{ value: 'a' }, { value: 'b' }, { value: 'c' }]);
    let seen = 0;
    const sub = await bus.subscribe({
      topics: [topic],
      groupId,
      fromBeginning: true,
      onBatch: async (b) => {
        seen += b.length;
      },
    });
    await waitFor(() => seen === 3, 'three messages');
    await waitFor(async () => (await committed(bus, groupId, topic)) === '3', 'offset 3 committed', 10_000);
    await sub.close();
    await bus.close();
  });

  it('close() commits what was handled, even right after the batch', async () => {
    const bus = new KafkaBus({ brokers: BROKERS });
    const topic = unique('commit-close');
    const groupId = unique('g');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    await bus.publish(topic, [{ value: 'a' }]);
    let sawB!: () => void;
    const gotB = new Promise<void>((r) => {
      sawB = r;
    });
    // 'a' is committed at once (the first commit); 'b' follows within the commit interval, so
    // its offset is still waiting for the interval when close() comes
    const sub = await bus.subscribe({
      topics: [topic],
      groupId,
      fromBeginning: true,
      onBatch: async (b) => {
        for (const m of b) {
          if (m.value!.toString() === 'a') void bus.publish(topic, [{ value: 'b' }]);
          if (m.value!.toString() === 'b') sawB();
        }
      },
    });
    await gotB;
    await sub.close();
    expect(await committed(bus, groupId, topic)).toBe('2');
    await bus.close();
  });
});
