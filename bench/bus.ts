// npm run bench -- bus [count]: produce + consume N small messages through our Bus on the real
// broker, next to kcat (librdkafka) producing and consuming the same count on the same broker,
// in the same run. Reports messages/s and our/kcat ratios.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaBus } from '../bus/index.ts';
import { setLogLevel } from '../runtime/log.ts';
import { BENCH_BROKERS, timeCommand } from './util.ts';

const VALUE_BYTES = 100;
const BATCH = 10_000;
const IN_FLIGHT = 4;

function payload(i: number): string {
  const head = `msg ${i} `;
  return head + 'x'.repeat(Math.max(0, VALUE_BYTES - head.length));
}

async function ours(count: number): Promise<{ produceRate: number; consumeRate: number }> {
  const bus = new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench' });
  const topic = `bench-bus-${randomUUID().slice(0, 8)}`;
  await bus.ensureTopics([{ topic, partitions: 1 }]);
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const start = next;
      next = Math.min(count, next + BATCH);
      const msgs = [];
      for (let i = start; i < next; i++) msgs.push({ value: payload(i) });
      await bus.publish(topic, msgs, { acks: 1 });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const produceS = Number(process.hrtime.bigint() - t0) / 1e9;

  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const t1 = process.hrtime.bigint();
  const sub = await bus.subscribe({
    topics: [topic],
    groupId: `bench-${randomUUID().slice(0, 8)}`,
    fromBeginning: true,
    onBatch: async (b) => {
      seen += b.length;
      if (seen >= count) done();
    },
  });
  await finished;
  const consumeS = Number(process.hrtime.bigint() - t1) / 1e9;
  await sub.close();
  await bus.close();
  return { produceRate: count / produceS, consumeRate: count / consumeS };
}

/** kafkajs used directly (same batches, same acks): separates the library's cost from the Bus's. */
async function rawKafkajs(count: number): Promise<{ produceRate: number }> {
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
      next = Math.min(count, next + BATCH / 2);
      const messages = [];
      for (let i = start; i < next; i++) messages.push({ value: payload(i) });
      await producer.send({ topic, acks: 1, messages });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await producer.disconnect();
  await bus.close();
  return { produceRate: count / s };
}

async function kcat(count: number): Promise<{ produceRate: number; consumeRate: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-bus-'));
  const file = join(dir, 'lines');
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(payload(i));
  writeFileSync(file, `${lines.join('\n')}\n`);
  const topic = `bench-kcat-${randomUUID().slice(0, 8)}`;
  const b = BENCH_BROKERS.join(',');
  // Same settings as ours: one partition, acks=1, created up front.
  const bus = new KafkaBus({ brokers: BENCH_BROKERS });
  await bus.ensureTopics([{ topic, partitions: 1 }]);
  await bus.close();
  const produceS = await timeCommand('kcat', ['-P', '-b', b, '-t', topic, '-X', 'acks=1', '-l', file]);
  const consumeS = await timeCommand('kcat', [
    '-C',
    '-b',
    b,
    '-t',
    topic,
    '-o',
    'beginning',
    '-c',
    String(count),
    '-e',
    '-q',
    '-f',
    '%o\n',
  ]);
  rmSync(dir, { recursive: true, force: true });
  return { produceRate: count / produceS, consumeRate: count / consumeS };
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('warn');
  const count = Number(args[0] ?? 1_000_000);
  const rounds = Number(args[1] ?? 1);
  const runs: {
    ours: Awaited<ReturnType<typeof ours>>;
    kcat: Awaited<ReturnType<typeof kcat>>;
    kafkajs: Awaited<ReturnType<typeof rawKafkajs>>;
  }[] = [];
  for (let r = 0; r < rounds; r++) {
    // Interleave so both see the same machine load.
    const k = await kcat(count);
    const o = await ours(count);
    const raw = await rawKafkajs(count);
    runs.push({ ours: o, kcat: k, kafkajs: raw });
  }
  const med = (f: (x: (typeof runs)[number]) => number) => {
    const xs = runs.map(f).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  const summary = {
    oursProducePerS: Math.round(med((x) => x.ours.produceRate)),
    oursConsumePerS: Math.round(med((x) => x.ours.consumeRate)),
    kcatProducePerS: Math.round(med((x) => x.kcat.produceRate)),
    kcatConsumePerS: Math.round(med((x) => x.kcat.consumeRate)),
    rawKafkajsProducePerS: Math.round(med((x) => x.kafkajs.produceRate)),
  };
  return {
    count,
    valueBytes: VALUE_BYTES,
    brokers: BENCH_BROKERS,
    client: 'kafkajs (Bus) vs kcat/librdkafka',
    ...summary,
    produceRatio: +(summary.oursProducePerS / summary.kcatProducePerS).toFixed(3),
    consumeRatio: +(summary.oursConsumePerS / summary.kcatConsumePerS).toFixed(3),
    produceVsRawKafkajs: +(summary.oursProducePerS / summary.rawKafkajsProducePerS).toFixed(3),
    runs,
  };
}
