// The contract every Bus implementation passes (docs/design.md §2.3): run by memory-bus.test.ts
// and kafka-bus.int.test.ts with their own factory.
import { describe, expect, it } from 'vitest';
import { type Bus, type BusMessage, followFromStart } from '../../../bus/index.ts';
import { collect, collectValues } from '../../helpers/bus.ts';
import { closeAfterEach } from '../../helpers/cleanup.ts';
import { unique, waitFor } from '../../helpers/services.ts';

export function busContract(name: string, makeBus: () => Bus): void {
  describe(`Bus contract: ${name}`, () => {
    const track = closeAfterEach();

    it('publishes a batch with keys and headers and delivers it in order per partition', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-order');
      await bus.ensureTopics([{ topic, partitions: 3 }]);
      const msgs = Array.from({ length: 300 }, (_, i) => ({
        key: `host-${i % 5}`,
        value: `line ${i}`,
        headers: { 'content-type': 'text/plain', seq: String(i) },
      }));
      const res = await bus.publish(topic, msgs);
      expect(res.count).toBe(300);
      expect(res.partitions.length).toBeGreaterThan(1);
      const { got } = track(await collect(bus, topic));
      await waitFor(() => got.length >= 300, '300 messages');
      expect(got.length).toBe(300);
      // same key, same partition; per key the order is the publish order
      const partitionOfKey = new Map<string, number>();
      const lastSeqOfKey = new Map<string, number>();
      for (const m of got) {
        const k = m.key!.toString();
        const seq = Number(m.headers.seq);
        expect(m.headers['content-type']).toBe('text/plain');
        expect(m.value!.toString()).toBe(`line ${seq}`);
        if (partitionOfKey.has(k)) expect(m.partition).toBe(partitionOfKey.get(k));
        partitionOfKey.set(k, m.partition);
        expect(seq).toBeGreaterThan(lastSeqOfKey.get(k) ?? -1);
        lastSeqOfKey.set(k, seq);
      }
    });

    it('carries binary values byte for byte', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-binary');
      await bus.ensureTopics([{ topic, partitions: 1 }]);
      const value = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await bus.publish(topic, [{ key: Buffer.from([0, 255]), value }]);
      const { got } = track(await collect(bus, topic));
      await waitFor(() => got.length === 1, 'the binary message');
      expect(got[0]!.value!.equals(value)).toBe(true);
      expect([...got[0]!.key!]).toEqual([0, 255]);
    });

    it('a group resumes after its committed offset; a new group starts from the beginning', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-commit');
      const group = unique('g');
      await bus.ensureTopics([{ topic, partitions: 1 }]);
      await bus.publish(
        topic,
        [1, 2, 3].map((i) => ({ value: `m${i}` })),
      );
      const s1 = await collectValues(bus, topic, group);
      const first = s1.got;
      await waitFor(() => first.length === 3, 'first three');
      await s1.commit();
      await s1.close();

      await bus.publish(
        topic,
        [4, 5].map((i) => ({ value: `m${i}` })),
      );
      const { got: second } = track(await collectValues(bus, topic, group));
      await waitFor(() => second.length >= 2, 'the two new messages');
      expect(second).toEqual(['m4', 'm5']);

      const { got: fresh } = track(await collectValues(bus, topic));
      await waitFor(() => fresh.length >= 5, 'all five for a new group');
      expect(fresh).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    });

    it("tells the assignment and each batch's high watermark; commitOffset holds the commit back", async () => {
      const bus = track(makeBus());
      const topic = unique('contract-hold');
      const group = unique('g');
      await bus.ensureTopics([{ topic, partitions: 2 }]);
      await bus.publish(
        topic,
        [1, 2, 3, 4].map((i) => ({ value: `m${i}`, partition: 0 })),
      );
      const assigned: number[][] = [];
      const hwms: string[] = [];
      const first: string[] = [];
      const s1 = await bus.subscribe({
        topics: [topic],
        groupId: group,
        fromBeginning: true,
        onAssign: (a) => void assigned.push(a.find((x) => x.topic === topic)?.partitions ?? []),
        // the subscriber keeps m3 and m4 for later: commit no further than m3
        commitOffset: (_t, partition, next) => (partition === 0 ? '2' : next),
        onBatch: async (b, ctx) => {
          first.push(...b.map((m) => m.value!.toString()));
          if (ctx.highWatermark !== undefined) hwms.push(ctx.highWatermark);
        },
      });
      await s1.ready;
      await waitFor(() => first.length === 4, 'four');
      expect(assigned.at(-1)!.sort()).toEqual([0, 1]);
      expect(hwms.at(-1)).toBe('4');
      await s1.commit();
      await s1.close();
      const { got: again } = track(await collectValues(bus, topic, group));
      await waitFor(() => again.length >= 2, 'the held two again');
      expect(again).toEqual(['m3', 'm4']);
    });

    it('followFromStart reads every partition to the end it had, then keeps following', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-follow');
      await bus.ensureTopics([{ topic, partitions: 3 }]);
      await bus.publish(
        topic,
        Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 4}`, value: `v${i}` })),
      );
      const got: string[] = [];
      let atEnd = -1;
      let laterIn = -1;
      const f = await followFromStart(bus, {
        topics: [topic],
        groupId: unique('g'),
        onBatch: async (b) => {
          for (const m of b) {
            got.push(m.value!.toString());
            if (m.value!.toString() === 'later') laterIn = m.partition;
          }
        },
      });
      track(f.sub);
      void f.caughtUp.then(() => {
        atEnd = got.length;
      });
      expect(await f.caughtUp).toBe(true);
      // everything there was at start was handed over before caughtUp resolved
      expect(atEnd).toBe(30);
      await bus.publish(topic, [{ key: 'k9', value: 'later' }]);
      await waitFor(() => got.includes('later'), 'a later message');
      const high = (await bus.topicOffsets(topic)).find((o) => o.partition === laterIn)!.high;
      expect(await f.readTo(topic, [laterIn], 20_000)).toBe(true);
      expect(f.position(topic, laterIn)).toBe(BigInt(high));
    });

    it('redelivers a batch whose handler failed (at-least-once, nothing lost)', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-retry');
      await bus.ensureTopics([{ topic, partitions: 1 }]);
      await bus.publish(topic, [{ value: 'a' }, { value: 'b' }]);
      let failures = 0;
      const got: string[] = [];
      track(
        await bus.subscribe({
          topics: [topic],
          groupId: unique('g'),
          fromBeginning: true,
          onBatch: async (b) => {
            if (failures === 0) {
              failures++;
              throw new Error('injected failure');
            }
            got.push(...b.map((m) => m.value!.toString()));
          },
        }),
      );
      await waitFor(() => got.includes('b'), 'redelivery', 40_000);
      expect(failures).toBe(1);
      expect(got.slice(0, 2)).toEqual(['a', 'b']);
    });

    it('two members of one group split the partitions and together see every message once', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-group');
      const group = unique('g');
      await bus.ensureTopics([{ topic, partitions: 4 }]);
      const seenBy = new Map<string, string>();
      const dup: string[] = [];
      const handler = (who: string) => async (b: BusMessage[]) => {
        for (const m of b) {
          const v = m.value!.toString();
          if (seenBy.has(v)) dup.push(v);
          seenBy.set(v, who);
        }
      };
      const a = track(
        await bus.subscribe({ topics: [topic], groupId: group, fromBeginning: true, onBatch: handler('a') }),
      );
      const b = track(
        await bus.subscribe({ topics: [topic], groupId: group, fromBeginning: true, onBatch: handler('b') }),
      );
      await Promise.all([a.ready, b.ready]);
      // Kafka rebalances as the second member joins; publish once both are in.
      await waitFor(
        async () => {
          await bus.publish(topic, [{ key: 'probe', value: `probe-${Date.now()}` }]);
          return [...seenBy.values()].includes('a') || [...seenBy.values()].includes('b');
        },
        'group to settle',
        30_000,
        500,
      );
      const n = 400;
      await bus.publish(
        topic,
        Array.from({ length: n }, (_, i) => ({ key: `host-${i}`, value: `v${i}` })),
      );
      await waitFor(
        () => Array.from({ length: n }, (_, i) => `v${i}`).every((v) => seenBy.has(v)),
        'all messages',
      );
      const whoByValue = Array.from({ length: n }, (_, i) => seenBy.get(`v${i}`));
      expect(new Set(whoByValue)).toEqual(new Set(['a', 'b']));
      expect(dup.filter((v) => v.startsWith('v'))).toEqual([]);
    });

    it('publishes one call larger than the broker message limit (split in order, nothing lost)', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-big');
      await bus.ensureTopics([{ topic, partitions: 1 }]);
      const big = 'x'.repeat(1000);
      const res = await bus.publish(
        topic,
        Array.from({ length: 3000 }, (_, i) => ({ value: `${i} ${big}` })),
      );
      expect(res.count).toBe(3000);
      const got: number[] = [];
      track(
        await bus.subscribe({
          topics: [topic],
          groupId: unique('g'),
          fromBeginning: true,
          onBatch: async (b) => void got.push(...b.map((m) => Number(m.value!.toString().split(' ')[0]))),
        }),
      );
      await waitFor(() => got.length >= 3000, '3000 large messages');
      expect(got).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    });

    it('reports offsets and creates compacted topics', async () => {
      const bus = track(makeBus());
      const topic = unique('contract-offsets');
      await bus.ensureTopics([{ topic, partitions: 2, configs: { 'cleanup.policy': 'compact' } }]);
      await bus.publish(topic, [
        { key: 'k', value: '1', partition: 1 },
        { key: 'k', value: '2', partition: 1 },
      ]);
      const offs = await bus.topicOffsets(topic);
      expect(offs.map((o) => [o.partition, o.high])).toEqual([
        [0, '0'],
        [1, '2'],
      ]);
    });
  });
}
