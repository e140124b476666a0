import { describe, expect, it } from 'vitest';
import { MemoryBus, namespaced } from '../../bus/index.ts';
import { waitFor } from '../helpers/services.ts';
import { busContract } from './contract.ts';

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
