// A transactional publisher outlives its broker: a transaction cut off by the broker dying (SIGKILL)
// fails (its abort cannot reach the broker either), and once the broker is back the next
// transactions commit. kafkajs alone keeps the failed abort as the producer's state for good
// (every later transaction() throws: kafkajs issues #1355, #1416), which left exactly-once learners
// delivering nothing after an outage. Real services: a private Kafka broker stopped and restarted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BusMessage, KafkaBus, namespaced } from '../../bus/index.ts';
import { type PrivateKafka, startPrivateKafka } from '../helpers/private-kafka.ts';
import { unique, waitFor } from '../helpers/services.ts';

let kafka: PrivateKafka;
beforeAll(async () => {
  kafka = await startPrivateKafka();
}, 180_000);
afterAll(async () => {
  await kafka?.down();
}, 60_000);

describe('Kafka transactions across a broker outage (private broker)', () => {
  it('a transaction cut off by the outage fails; after it, transactions commit again', async () => {
    const bus = namespaced(new KafkaBus({ brokers: kafka.brokers }), unique('ns'));
    try {
      await bus.ensureTopics([{ topic: 'out', partitions: 1 }]);
      const pub = await bus.transactional!({ transactionalId: unique('tx') });
      await pub.run(async (t) => t.publish('out', [{ value: 'before' }]));

      const cut = await pub
        .run(async (t) => {
          // its records written, then the broker goes: the commit and the abort cannot reach it
          await t.publish('out', [{ value: 'cut-off' }]);
          await kafka.kill();
        })
        .then(
          () => undefined,
          (err: Error) => err,
        );
      expect(cut, 'a transaction whose broker went away must fail').toBeInstanceOf(Error);

      await kafka.start();
      // Each attempt a value of its own: one whose commit reached the broker but not its answer
      // would show twice otherwise.
      let attempt = 0;
      const failures: string[] = [];
      await waitFor(
        () =>
          pub
            .run(async (t) => t.publish('out', [{ value: `after-${attempt++}` }]))
            .then(
              () => true,
              (err: Error) => {
                failures.push(err.message.slice(0, 200));
                return undefined;
              },
            ),
        'a transaction that commits after the broker came back',
        90_000,
        500,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nlast failures:\n${failures.slice(-3).join('\n')}`);
      });

      // What read-committed readers see: the first and a later transaction, never the cut-off one.
      const got: BusMessage[] = [];
      const sub = await bus.subscribe({
        topics: ['out'],
        groupId: unique('reader'),
        fromBeginning: true,
        onBatch: async (b) => void got.push(...b),
      });
      try {
        await waitFor(
          () => got.some((m) => m.value?.toString().startsWith('after-')),
          'the committed records',
          60_000,
        );
      } finally {
        await sub.close();
      }
      const values = got.map((m) => m.value?.toString());
      expect(values[0]).toBe('before');
      expect(values).not.toContain('cut-off');
      await pub.close();
    } finally {
      await bus.close();
    }
  }, 300_000);
});
