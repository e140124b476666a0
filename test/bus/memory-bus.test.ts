import { describe, expect, it } from 'vitest';
import { BusError, MemoryBus, namespaced } from '../../bus/index.ts';
import { waitFor } from '../helpers/services.ts';
import { busContract } from './lib/contract.ts';

busContract('in-process', () => new MemoryBus());

describe('in-process bus specifics', () => {
  it('bounds memory: keeps the retention cap, and the latest per key on compacted topics', async () => {
    const bus = new MemoryBus({ retention: 100 });
    await bus.ensureTopics([
      { topic: 'plain', partitions: 1 },
      { topic: 'table', partitions: 1, configs: { 'cleanup.policy': 'compact' } },
    ]);
    for (let i = 0; i < 1000; i++) {
      await bus.publish('plain', [{ value: `p${i}` }]);
      await bus.publish('table', [{ key: `k${i % 10}`, value: `t${i}` }]);
    }
    const plain = await bus.topicOffsets('plain');
    expect(Number(plain[0]!.high) - Number(plain[0]!.low)).toBe(100);
    const got = new Map<string, string>();
    const sub = await bus.subscribe({
      topics: ['table'],
      groupId: 'g',
      fromBeginning: true,
      onBatch: async (b) => {
        for (const m of b) got.set(m.key!.toString(), m.value!.toString());
      },
    });
    await waitFor(() => got.get('k9') === 't999', 'latest of k9');
    for (let k = 0; k < 10; k++) expect(got.get(`k${k}`)).toBe(`t${990 + k}`);
    await sub.close();
    await bus.close();
  });
});

busContract('namespaced in-process', () => namespaced(new MemoryBus(), 'tenant-a'));

describe('in-process retention with a slow consumer', () => {
  it('counts what a lagging group lost instead of dropping it silently', async () => {
    const { registry } = await import('../../runtime/metrics.ts');
    const dropped = async () => {
      const m = registry.getSingleMetric('virgo_bus_memory_dropped_total');
      const v = m ? (await m.get()).values.find((x) => x.labels.topic === 'slow') : undefined;
      return v?.value ?? 0;
    };
    const before = await dropped();
    const bus = new MemoryBus({ retention: 10 });
    await bus.ensureTopics([{ topic: 'slow', partitions: 1 }]);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const got: string[] = [];
    const sub = await bus.subscribe({
      topics: ['slow'],
      groupId: 'g',
      fromBeginning: true,
      maxBatch: 1,
      onBatch: async (b) => {
        await gate;
        got.push(...b.map((m) => m.value!.toString()));
      },
    });
    await bus.publish('slow', [{ value: 'm0' }]);
    await waitFor(() => true, 'first batch in hand');
    // the consumer holds m0; 30 more arrive, the log keeps 10
    for (let i = 1; i <= 30; i++) await bus.publish('slow', [{ value: `m${i}` }]);
    release();
    await waitFor(() => got.includes('m30'), 'the tail');
    expect(got[0]).toBe('m0');
    expect(got.slice(1)).toEqual(Array.from({ length: 10 }, (_, i) => `m${21 + i}`));
    expect((await dropped()) - before).toBe(20);
    await sub.close();
    await bus.close();
  });
});

describe('in-process bus errors carry the code the Kafka bus would give', () => {
  it('unknown-topic, invalid, closed', async () => {
    const bus = new MemoryBus();
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e: unknown) => (e as BusError).code,
      );
    expect(await code(bus.topicOffsets('nope'))).toBe('unknown-topic');
    expect(await code(bus.ensureTopics([{ topic: 't', partitions: 0 }]))).toBe('invalid');
    expect(await code(bus.publish('t2', [{ value: 'v', partition: 9 }]))).toBe('invalid');
    await bus.close();
    const err = await bus.publish('t2', [{ value: 'v' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusError);
    expect((err as BusError).code).toBe('closed');
  });
});
