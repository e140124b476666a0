// A topic whose partition ends with a transaction marker (its last offset is no record anyone
// reads): followFromStart must still tell that it was read to its end. Run on both record codecs.
import { expect } from 'vitest';
import { followFromStart, type KafkaBus } from '../../../bus/index.ts';
import { unique } from '../../helpers/services.ts';

export async function followsPastMarkers(bus: KafkaBus): Promise<void> {
  const topic = unique('follow-txn');
  await bus.ensureTopics([{ topic, partitions: 2 }]);
  const producer = bus.kafka.producer({
    transactionalId: unique('txn'),
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    for (const commit of [true, false, true]) {
      const t = await producer.transaction();
      await t.send({ topic, messages: [0, 1].map((partition) => ({ value: `${commit}`, partition })) });
      await (commit ? t.commit() : t.abort());
    }
  } finally {
    await producer.disconnect();
  }
  const got: string[] = [];
  const f = await followFromStart(bus, {
    topics: [topic],
    groupId: unique('g'),
    timeoutMs: 30_000,
    onBatch: async (b) => void got.push(...b.map((m) => m.value!.toString())),
  });
  try {
    expect(await f.caughtUp).toBe(true);
    // two committed records per partition; the aborted ones are dropped
    expect(got).toEqual(['true', 'true', 'true', 'true']);
    for (const o of await bus.topicOffsets(topic))
      expect(f.position(topic, o.partition)).toBe(BigInt(o.high));
  } finally {
    await f.sub.close();
  }
}
