// A subscription outlives a broker outage long enough for kafkajs to give up on its consumer.
// kafkajs restarts a crashed consumer only after errors it calls retriable; a restart that cannot
// find the group coordinator (the broker still down, or loading its offsets topic) ends in a
// non-retriable error and kafkajs leaves the consumer stopped. The Bus must start it again while
// the subscription is open, or the stage silently stops following its topic.
// On a PRIVATE broker: the shared one serves every other test and is never stopped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusError, KafkaBus } from '../../bus/index.ts';
import { collectValues } from '../helpers/bus.ts';
import { type PrivateKafka, startPrivateKafka } from '../helpers/private-kafka.ts';
import { unique, waitFor } from '../helpers/services.ts';

let kafka: PrivateKafka;
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  kafka = await startPrivateKafka();
}, 120_000);

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
  await kafka?.down();
}, 120_000);

describe('Kafka bus: a consumer kafkajs gave up on', () => {
  it('is restarted while its subscription is open, and reads what was published after the outage', async () => {
    // No retries: right after the restart the broker is still loading its offsets topic, kafkajs's
    // coordinator lookup fails at once ("Failed to find group coordinator") and it stops the consumer.
    const bus = new KafkaBus({ brokers: kafka.brokers, retries: 0, connectionTimeoutMs: 1_000 });
    const producer = new KafkaBus({ brokers: kafka.brokers });
    cleanup.push(
      () => bus.close(),
      () => producer.close(),
    );
    const topic = unique('restart');
    const group = unique('g');
    await producer.ensureTopics([{ topic, partitions: 1 }]);
    const sub = await collectValues(bus, topic, group);
    const got = sub.got;
    await sub.ready;
    await producer.publish(topic, [{ key: 'k', value: 'before' }]);
    await waitFor(() => got.includes('before'), 'the message published before the outage');

    await kafka.stop();
    await kafka.start();

    await waitFor(
      async () => {
        try {
          await producer.publish(topic, [{ key: 'k', value: 'after' }]);
          return true;
        } catch (err) {
          if (err instanceof BusError) return false;
          throw err;
        }
      },
      'the restarted broker to take a message',
      60_000,
      200,
    );
    await waitFor(() => got.includes('after'), 'the message published after the outage', 90_000, 100);
    expect(got.filter((v) => v === 'before').length).toBeGreaterThanOrEqual(1);
  }, 240_000);
});
