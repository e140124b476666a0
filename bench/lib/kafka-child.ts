// A child process of bench/bus.ts: kafkajs's record codec is installed or not once per process
// (bus/kafka-fastpath.ts), so the baselines that must run on kafkajs's own codec run here.
//   node --import tsx bench/lib/kafka-child.ts raw|bus COUNT VALUE_BYTES BATCH IN_FLIGHT
// raw: kafkajs used directly (producer.send of at most 5000 messages, 4 in flight: a call is one
// record batch per partition and 10,000 x 100 B pass the broker's 1 MiB limit; consumer.run with
// eachBatch);
// bus: our Bus with VIRGO_KAFKAJS_CODEC=kafkajs set by the parent (the Bus as it was before its
// own codec). Prints {produceRate, consumeRate} as JSON.
import { randomUUID } from 'node:crypto';
import { KafkaBus } from '../../bus/index.ts';
import { setLogLevel } from '../../runtime/log.ts';
import { BENCH_BROKERS } from '../util.ts';
import { busRates, payload } from './bus-rates.ts';

setLogLevel('warn');
const [mode, countArg, valueArg, batchArg, inFlightArg] = process.argv.slice(2);
const count = Number(countArg);
const valueBytes = Number(valueArg);
const batch = Number(batchArg);
const inFlight = Number(inFlightArg);

async function raw(): Promise<{ produceRate: number; consumeRate: number }> {
  const bus = new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench-raw' });
  const topic = `bench-raw-${randomUUID().slice(0, 8)}`;
  await bus.ensureTopics([{ topic, partitions: 1 }]);
  const producer = bus.kafka.producer();
  await producer.connect();
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const start = next;
      next = Math.min(count, next + Math.min(batch, 5000));
      const messages = [];
      for (let i = start; i < next; i++) messages.push({ value: payload(i, valueBytes) });
      await producer.send({ topic, acks: -1, messages });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const produceS = Number(process.hrtime.bigint() - t0) / 1e9;
  await producer.disconnect();
  const consumer = bus.kafka.consumer({
    groupId: `bench-raw-${randomUUID().slice(0, 8)}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const t1 = process.hrtime.bigint();
  await consumer.run({
    eachBatch: async ({ batch: b }) => {
      seen += b.messages.length;
      if (seen >= count) done();
    },
  });
  await finished;
  const consumeS = Number(process.hrtime.bigint() - t1) / 1e9;
  await consumer.disconnect();
  await bus.close();
  return { produceRate: count / produceS, consumeRate: count / consumeS };
}

const result =
  mode === 'raw'
    ? await raw()
    : await busRates(new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench-kjs' }), count, {
        valueBytes,
        batch,
        inFlight,
      });
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
