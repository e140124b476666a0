// The Bus on kafkajs's own record codec: what runs when the installed kafkajs is not the version
// bus/kafka-fastpath.ts fits (or VIRGO_KAFKAJS_CODEC=kafkajs). Same contract as the fast path.
// The codec is chosen once per process, when the first KafkaBus is made: this file runs in its
// own worker (vitest forks one per file), so setting the variable here reaches no other test.
import { expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { installFastPath } from '../../bus/kafka-fastpath.ts';
import { BROKERS } from '../helpers/services.ts';
import { busContract } from './lib/contract.ts';
import { followsPastMarkers } from './lib/follow-markers.ts';

process.env.VIRGO_KAFKAJS_CODEC = 'kafkajs';

it('runs on kafkajs own codec', () => {
  expect(installFastPath()).toBe(false);
});

it('followFromStart reads to the end of partitions that end with a transaction marker', async () => {
  const bus = new KafkaBus({ brokers: BROKERS, clientId: 'virgo-test' });
  try {
    await followsPastMarkers(bus);
  } finally {
    await bus.close();
  }
}, 60_000);

busContract(
  'Kafka, kafkajs codec (real broker)',
  () => new KafkaBus({ brokers: BROKERS, clientId: 'virgo-test' }),
);
