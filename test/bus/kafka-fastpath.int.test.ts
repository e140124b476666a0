// The Bus's own record codec (bus/kafka-fastpath.ts) on the real broker, where it differs from
// kafkajs's: compressed batches both ways, many batches per call and partition, the partition a
// key lands on, and transactional data (control records to step over, aborted records to drop).
import { describe, expect, it } from 'vitest';
import { type BusMessage, KafkaBus } from '../../bus/index.ts';
import { prefetchStats } from '../../bus/kafka-fastpath.ts';
import { collect, collectValues } from '../helpers/bus.ts';
import { closeAfterEach } from '../helpers/cleanup.ts';
import { kcatConsume, kcatProduce } from '../helpers/kcat.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';
import { followsPastMarkers } from './lib/follow-markers.ts';

const track = closeAfterEach();

async function readAll(bus: KafkaBus, topic: string, count: number): Promise<BusMessage[]> {
  const { got } = track(await collect(bus, topic));
  await waitFor(() => got.length >= count, `${count} messages`, 60_000);
  return got;
}

describe('Kafka bus record codec (real broker)', () => {
  it('a gzip call of many batches per partition arrives whole, in order per key', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('fast-gzip');
    await bus.ensureTopics([{ topic, partitions: 3 }]);
    const n = 30_000; // ~3.6 MB: several 512 KiB batches per partition, several rounds
    const headers = { 'content-type': 'text/plain' };
    const msgs = Array.from({ length: n }, (_, i) => ({
      key: `host-${i % 7}`,
      value: `${i} ${'kernel: eth0 link up '.repeat(5)}`,
      headers,
    }));
    const res = await bus.publish(topic, msgs, { compression: 'gzip' });
    expect(res.count).toBe(n);
    const got = await readAll(bus, topic, n);
    expect(got).toHaveLength(n);
    const last = new Map<string, number>();
    for (const m of got) {
      const i = Number(m.value!.toString().split(' ')[0]);
      expect(m.key!.toString()).toBe(`host-${i % 7}`);
      expect(m.headers).toEqual(headers);
      const k = m.key!.toString();
      expect(i).toBeGreaterThan(last.get(k) ?? -1);
      last.set(k, i);
    }
    // kcat (librdkafka) reads our gzip batches too
    const r = await kcatConsume(topic, '%k\n');
    expect(r.stdout.trim().split('\n')).toHaveLength(n);
  });

  it('prefetches the next fetch of a backlog; a paused and resumed partition still gets every message once, in order', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('fast-prefetch');
    await bus.ensureTopics([{ topic, partitions: 2 }]);
    const n = 20_000;
    // small calls: record batches of ~100 messages per partition, so a fetch of 16 KiB per
    // partition takes one or two of them and the backlog is read in many fetches
    for (let from = 0; from < n; from += 200)
      await bus.publish(
        topic,
        Array.from({ length: 200 }, (_, k) => ({
          value: `${from + k} ${'x'.repeat(100)}`,
          partition: (from + k) % 2,
        })),
      );
    const before = { ...prefetchStats };
    const got = new Map<number, number[]>([
      [0, []],
      [1, []],
    ]);
    let resume: (() => void) | undefined;
    let paused = 0;
    const sub = track(
      await bus.subscribe({
        topics: [topic],
        groupId: unique('g-prefetch'),
        fromBeginning: true,
        // ~16 KiB per partition and fetch: many fetches, each one prefetched behind the last
        maxBytesPerPartition: 16 * 1024,
        onBatch: async (batch, ctx) => {
          for (const m of batch) got.get(m.partition)!.push(Number(m.value!.toString().split(' ')[0]));
          // partition 1 paused for a few of partition 0's batches: kafkajs's next requests leave
          // it out (a subset of the prefetched one), then take it back (not covered: discarded)
          if (
            ctx.partition === 1 &&
            paused === 0 &&
            got.get(1)!.length > 2_000 &&
            got.get(0)!.length < 7_000 &&
            ctx.pause
          ) {
            resume = ctx.pause();
            paused = 1;
          } else if (ctx.partition === 0 && resume && ++paused > 3) {
            resume();
            resume = undefined;
          }
        },
      }),
    );
    await waitFor(() => got.get(0)!.length + got.get(1)!.length >= n, `${n} messages`, 60_000);
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive in this time
    for (const [p, seen] of got) {
      expect(seen).toEqual(Array.from({ length: n / 2 }, (_, i) => i * 2 + p));
    }
    expect(paused).toBeGreaterThan(3);
    expect(prefetchStats.used - before.used).toBeGreaterThan(10);
    expect(prefetchStats.discarded - before.discarded).toBeGreaterThan(0);
    await sub.close();
  });

  it('reads gzip batches kcat wrote', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('fast-kcat-gzip');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    const lines = Array.from({ length: 5_000 }, (_, i) => `edge-${i % 3}:line ${i}`);
    const r = await kcatProduce(topic, `${lines.join('\n')}\n`, [
      '-K',
      ':',
      '-z',
      'gzip',
      '-H',
      'content-type=text/plain',
    ]);
    expect(r.code).toBe(0);
    const got = await readAll(bus, topic, lines.length);
    expect(got.map((m) => `${m.key}:${m.value}`)).toEqual(lines);
    expect(got.every((m) => m.headers['content-type'] === 'text/plain')).toBe(true);
    expect(got.map((m) => m.offset)).toEqual(lines.map((_, i) => String(i)));
  });

  it("puts a key on the partition kafkajs's DefaultPartitioner (and the Java client) picks", async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('fast-keys');
    await bus.ensureTopics([{ topic, partitions: 5 }]);
    const keys = Array.from({ length: 40 }, (_, i) => `host-${i}.example`);
    await bus.publish(
      topic,
      keys.map((key) => ({ key, value: 'ours' })),
    );
    // kafkajs's own producer, its own encoder (no packed records), the same keys
    const { Partitioners } = await import('kafkajs');
    const producer = bus.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic, messages: keys.map((key) => ({ key, value: 'kafkajs' })) });
    await producer.disconnect();
    const got = await readAll(bus, topic, 2 * keys.length);
    const where = new Map<string, Set<number>>();
    for (const m of got) {
      const k = m.key!.toString();
      where.set(k, (where.get(k) ?? new Set()).add(m.partition));
    }
    expect(where.size).toBe(keys.length);
    for (const [, ps] of where) expect(ps.size).toBe(1);
    expect(new Set(got.map((m) => m.partition)).size).toBeGreaterThan(2);
  });

  // A committed transaction ends in a control batch (the marker): read in our codec's path,
  // the subscription must resolve and commit past it even when it is the partition's last record.
  // Aborted records come with the fetch's aborted-transaction list: kafkajs's own decoder drops them.
  it('steps over transaction markers (last record included) and drops aborted records', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const producer = bus.kafka.producer({
      transactionalId: unique('txn'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    const txn = async (topic: string, values: string[], commit: boolean) => {
      const t = await producer.transaction();
      await t.send({ topic, messages: values.map((value) => ({ value })) });
      await (commit ? t.commit() : t.abort());
    };
    const committedOffset = async (group: string, topic: string) => {
      const admin = bus.kafka.admin();
      await admin.connect();
      const [c] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      await admin.disconnect();
      return c!.partitions[0]!.offset;
    };
    const consume = async (topic: string, expected: string[]) => {
      const group = unique('g');
      const sub = await collectValues(bus, topic, group);
      const got = sub.got;
      await waitFor(() => got.length >= expected.length, expected.join(','), 60_000);
      const high = (await bus.topicOffsets(topic))[0]!.high;
      // the marker after the last record is stepped over too: the group commits the end
      await waitFor(
        async () => {
          await sub.commit();
          const c = await committedOffset(group, topic);
          if (c !== high) throw new Error(`committed ${c}, end ${high}`);
          return true;
        },
        'the committed offset at the end of the partition',
        30_000,
      );
      await sub.close();
      expect(got).toEqual(expected);
    };

    const committedOnly = unique('fast-txn-commit');
    const withAborted = unique('fast-txn-abort');
    await bus.ensureTopics([
      { topic: committedOnly, partitions: 1 },
      { topic: withAborted, partitions: 1 },
    ]);
    await txn(committedOnly, ['c1', 'c2'], true);
    await txn(committedOnly, ['c3'], true);
    await txn(withAborted, ['c1', 'c2'], true);
    await txn(withAborted, ['a1', 'a2'], false);
    await txn(withAborted, ['c3'], true);
    await producer.disconnect();
    await consume(committedOnly, ['c1', 'c2', 'c3']);
    await consume(withAborted, ['c1', 'c2', 'c3']);
  });

  it('followFromStart reads to the end of partitions that end with a transaction marker', async () => {
    await followsPastMarkers(track(new KafkaBus({ brokers: BROKERS })));
  });
});
