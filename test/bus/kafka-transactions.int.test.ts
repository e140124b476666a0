// Transactions on the real broker (Kafka 4.x): what a transaction publishes and the consumer
// offsets it commits are visible together or not at all to read-committed readers; a second
// producer with the same transactional id fences the first; a consumer committing in
// transactions says what to commit and whether it is safe to; `startAt` starts a partition where
// asked; a member's rejoin waits for its barrier, so no new owner starts before it is resolved.
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Bus,
  BusError,
  type BusMessage,
  KafkaBus,
  namespaced,
  type Subscription,
  type TransactionalPublisher,
} from '../../bus/index.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';

const open: { close(): Promise<void> }[] = [];
const track = <T extends { close(): Promise<void> }>(x: T): T => {
  open.push(x);
  return x;
};
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close().catch(() => {});
});

async function readAll(
  bus: Bus,
  topic: string,
  until: (got: BusMessage[]) => boolean,
): Promise<BusMessage[]> {
  const got: BusMessage[] = [];
  const sub = await bus.subscribe({
    topics: [topic],
    groupId: unique('reader'),
    fromBeginning: true,
    onBatch: async (b) => void got.push(...b),
  });
  try {
    await waitFor(() => until(got), `records of ${topic}`, 60_000);
  } finally {
    await sub.close();
  }
  return got;
}

describe('Kafka bus transactions (real broker)', () => {
  it('publishes and commits offsets together; an aborted transaction leaves neither', async () => {
    const bus = track(namespaced(new KafkaBus({ brokers: BROKERS }), unique('ns')));
    const input = 'in';
    const output = 'out';
    const group = 'g';
    await bus.ensureTopics([
      { topic: input, partitions: 2 },
      { topic: output, partitions: 2 },
    ]);
    await bus.publish(
      input,
      Array.from({ length: 10 }, (_, i) => ({ value: `m${i}`, partition: i % 2 })),
    );
    const handled: string[] = [];
    const sub = track(
      await bus.subscribe({
        topics: [input],
        groupId: group,
        fromBeginning: true,
        commits: 'transactions',
        // keep partition 1's last message for later: commit no further than it
        commitOffset: (_t, partition, next) => (partition === 1 ? '4' : next),
        onBatch: async (b) => void handled.push(...b.map((m) => m.value!.toString())),
      }),
    );
    await sub.ready;
    await waitFor(() => handled.length === 10, 'ten handled');
    await waitFor(() => sub.membership!().safe, 'a safe membership');
    // A batch's positions move once its onBatch has returned: a moment after the last is handled.
    const at = () => JSON.stringify(sub.positions!().sort((a, b) => a.partition - b.partition));
    await waitFor(
      () =>
        at() ===
        JSON.stringify([
          { topic: input, partition: 0, offset: '5' },
          { topic: input, partition: 1, offset: '4' },
        ]),
      'the positions after the last batch',
      10_000,
    ).catch(() => undefined);
    const positions = sub.positions!().sort((a, b) => a.partition - b.partition);
    expect(positions).toEqual([
      { topic: input, partition: 0, offset: '5' },
      { topic: input, partition: 1, offset: '4' },
    ]);
    const tp = track(await bus.transactional!({ transactionalId: unique('tx') }));
    // aborted: the fill throws after publishing and committing
    await expect(
      tp.run(async (t) => {
        await t.publish(output, [{ key: 'k', value: 'aborted' }]);
        await t.commitOffsets(group, positions);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow(/changed my mind/);
    expect((await tp.committedOffsets(group, input)).map((o) => o.offset)).toEqual(['-1', '-1']);
    const outcome = await tp.run(async (t) => {
      await t.publish(output, [
        { key: 'k', value: 'committed', partition: 0 },
        { key: 'k2', value: 'committed too', partition: 1 },
      ]);
      await t.commitOffsets(group, positions);
    });
    expect(outcome.written.map((w) => `${w.topic}/${w.partition}`).sort()).toEqual([
      `${output}/0`,
      `${output}/1`,
    ]);
    const committed = (await tp.committedOffsets(group, input)).sort((a, b) => a.partition - b.partition);
    expect(committed.map((o) => o.offset)).toEqual(['5', '4']);
    const got = await readAll(bus, output, (g) => g.length >= 2);
    expect(got.map((m) => m.value!.toString()).sort()).toEqual(['committed', 'committed too']);
    // the bus committed nothing by itself: closing leaves the transaction's offsets
    await sub.close();
    expect((await tp.committedOffsets(group, input)).map((o) => o.offset).sort()).toEqual(['4', '5']);
  });

  it('a second producer with the same transactional id fences the first', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('fence');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    const id = unique('tx');
    const a: TransactionalPublisher = track(await bus.transactional({ transactionalId: id }));
    await a.run((t) => t.publish(topic, [{ value: 'a1' }]));
    const b = track(await bus.transactional({ transactionalId: id }));
    await b.run((t) => t.publish(topic, [{ value: 'b1' }]));
    const err = await a.run((t) => t.publish(topic, [{ value: 'a2' }])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusError);
    expect((err as BusError).code).toBe('fenced');
    // A fenced producer stays fenced: it does not start over under the id (that would fence b).
    const again = await a.run((t) => t.publish(topic, [{ value: 'a3' }])).catch((e: unknown) => e);
    expect((again as BusError).code).toBe('fenced');
    await b.run((t) => t.publish(topic, [{ value: 'b2' }]));
    const got = await readAll(bus, topic, (g) => g.length >= 3);
    expect(got.map((m) => m.value!.toString())).toEqual(['a1', 'b1', 'b2']);
  });

  it('starts a partition at startAt instead of the committed offset', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('startat');
    await bus.ensureTopics([{ topic, partitions: 2 }]);
    await bus.publish(
      topic,
      Array.from({ length: 6 }, (_, i) => ({ value: `m${i}`, partition: i % 2 })),
    );
    const got: string[] = [];
    track(
      await bus.subscribe({
        topics: [topic],
        groupId: unique('g'),
        fromBeginning: true,
        startAt: (_t, partition) => (partition === 0 ? '2' : undefined),
        onBatch: async (b) => void got.push(...b.map((m) => m.value!.toString())),
      }),
    );
    await waitFor(() => got.length >= 4, 'four');
    // partition 0 holds m0 m2 m4: from offset 2 only m4; partition 1 whole
    expect(got.sort()).toEqual(['m1', 'm3', 'm4', 'm5']);
  });

  it("a member's rejoin waits for its barrier: the newcomer is assigned only after it", async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    expect(bus.joinBarrier).toBe(true);
    const topic = unique('barrier');
    const group = unique('g');
    await bus.ensureTopics([{ topic, partitions: 4 }]);
    const events: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let barrierCalls = 0;
    // the first join goes through; the rejoin the newcomer causes is held
    let armed = false;
    const first: Subscription = track(
      await bus.subscribe({
        topics: [topic],
        groupId: group,
        commits: 'transactions',
        onBatch: async () => {},
        beforeRejoin: async () => {
          if (!armed) return;
          barrierCalls++;
          events.push('barrier entered');
          await held;
          events.push('barrier released');
        },
      }),
    );
    await first.ready;
    await waitFor(() => first.membership!().safe, 'the first member settled');
    armed = true;
    // subscribing returns once the newcomer joined: not while the barrier holds the rebalance
    const joining = bus.subscribe({
      topics: [topic],
      groupId: group,
      onBatch: async () => {},
      onAssign: () => void events.push('newcomer assigned'),
    });
    await waitFor(() => events.includes('barrier entered'), 'the first member rejoining', 30_000);
    expect(first.membership!().safe).toBe(false);
    // nobody is assigned while the barrier holds
    await new Promise((r) => setTimeout(r, 1_000));
    expect(events).toEqual(['barrier entered']);
    release();
    const second = track(await joining);
    await second.ready;
    await waitFor(() => first.membership!().safe, 'the first member in the new generation', 30_000);
    expect(events.indexOf('barrier released')).toBeLessThan(events.indexOf('newcomer assigned'));
    expect(barrierCalls).toBeGreaterThanOrEqual(1);
  });
});
