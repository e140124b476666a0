// npm run bench -- bus [count] [rounds]: produce + consume `count` 100-byte messages (default 1M,
// 3 rounds) through our Bus on the real broker, and in the same run, interleaved round by round
// so load from other processes hits all alike:
//   - kcat (librdkafka) producing (-P, acks=all) and consuming (-C) as many on a topic of its own;
//   - kafkajs used directly (the same calls of 10,000, 4 in flight, acks=-1; eachBatch consumer);
//   - our Bus on kafkajs's own record codec (VIRGO_KAFKAJS_CODEC=kafkajs): the Bus before its codec.
// Both kafkajs baselines run in a child process (the codec is chosen once per process).
// Also the in-process bus (embedded mode): publish calls of 1 and of 1000 messages to a
// subscribed group, end to end.
// Reports medians of the rounds, our/kcat ratios against the targets (produce >= 0.3, consume
// >= 0.5 x kcat) and every round.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaBus, MemoryBus } from '../bus/index.ts';
import { setLogLevel } from '../runtime/log.ts';
import { busRates, payload, type Rates } from './lib/bus-rates.ts';
import { BENCH_BROKERS, median, timeCommand } from './util.ts';

const VALUE_BYTES = 100;
const BATCH = 10_000;
const IN_FLIGHT = 4;

async function kcat(count: number, file: string): Promise<{ produceRate: number; consumeRate: number }> {
  const topic = `bench-kcat-${randomUUID().slice(0, 8)}`;
  const b = BENCH_BROKERS.join(',');
  const bus = new KafkaBus({ brokers: BENCH_BROKERS });
  await bus.ensureTopics([{ topic, partitions: 1 }]); // as ours: one partition, created up front
  await bus.close();
  const produceS = await timeCommand('kcat', ['-P', '-b', b, '-t', topic, '-X', 'acks=all', '-l', file]);
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
  return { produceRate: count / produceS, consumeRate: count / consumeS };
}

function child(mode: 'raw' | 'bus', count: number): Promise<{ produceRate: number; consumeRate: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        new URL('lib/kafka-child.ts', import.meta.url).pathname,
        mode,
        String(count),
        String(VALUE_BYTES),
        String(BATCH),
        String(IN_FLIGHT),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, VIRGO_KAFKAJS_CODEC: 'kafkajs' } },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop()!))
        : reject(new Error(`${mode} exited ${code}`)),
    );
  });
}

/** The in-process bus: `count` messages in calls of `batch` to a subscribed group, end to end. */
async function memory(count: number, batch: number): Promise<number> {
  const bus = new MemoryBus();
  await bus.ensureTopics([{ topic: 't', partitions: 1 }]);
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const sub = await bus.subscribe({
    topics: ['t'],
    groupId: 'g',
    fromBeginning: true,
    onBatch: async (b) => {
      seen += b.length;
      if (seen >= count) done();
    },
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i += batch) {
    const msgs = [];
    for (let j = i; j < Math.min(count, i + batch); j++)
      msgs.push({ key: 'host', value: payload(j, VALUE_BYTES) });
    await bus.publish('t', msgs);
    // let the consumer keep up, as a stage between its reads does
    if ((i / batch) % 8 === 7) await new Promise((r) => setImmediate(r));
  }
  await finished;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await sub.close();
  await bus.close();
  return count / s;
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('warn');
  const count = Number(args[0] ?? 1_000_000);
  const rounds = Number(args[1] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'bench-bus-'));
  const file = join(dir, 'lines');
  writeFileSync(file, `${Array.from({ length: count }, (_, i) => payload(i, VALUE_BYTES)).join('\n')}\n`);
  const runs: {
    kcat: { produceRate: number; consumeRate: number };
    ours: Rates;
    kafkajs: { produceRate: number; consumeRate: number };
    busOnKafkajsCodec: { produceRate: number; consumeRate: number };
    loadAverage: number;
  }[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const k = await kcat(count, file);
      const o = await busRates(new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench' }), count, {
        valueBytes: VALUE_BYTES,
        batch: BATCH,
        inFlight: IN_FLIGHT,
      });
      const raw = await child('raw', count);
      const old = await child('bus', count);
      runs.push({ kcat: k, ours: o, kafkajs: raw, busOnKafkajsCodec: old, loadAverage: loadavg()[0]! });
      console.error(
        `round ${r + 1}: ours ${Math.round(o.produceRate)}/${Math.round(o.consumeRate)}, kcat ${Math.round(k.produceRate)}/${Math.round(k.consumeRate)}, kafkajs ${Math.round(raw.produceRate)}/${Math.round(raw.consumeRate)}, Bus on kafkajs codec ${Math.round(old.produceRate)}/${Math.round(old.consumeRate)} msg/s (produce/consume)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const med = (f: (x: (typeof runs)[number]) => number) => Math.round(median(runs.map(f)));
  // ratios per round (same load on both sides), then their median
  const ratio = (f: (x: (typeof runs)[number]) => number) => +median(runs.map(f)).toFixed(3);
  const memoryBus = {
    calls1PerS: Math.round(await memory(Math.min(count, 200_000), 1)),
    calls1000PerS: Math.round(await memory(count, 1000)),
  };
  return {
    count,
    valueBytes: VALUE_BYTES,
    rounds,
    brokers: BENCH_BROKERS,
    settings: `1 partition, acks=all everywhere; ours and kafkajs: calls of ${BATCH}, ${IN_FLIGHT} in flight; consume times include joining a new group (kcat -C reads without a group)`,
    oursProducePerS: med((x) => x.ours.produceRate),
    oursConsumePerS: med((x) => x.ours.consumeRate),
    oursConsumeSteadyPerS: med((x) => x.ours.consumeSteadyRate),
    oursFirstBatchMs: med((x) => x.ours.firstBatchMs),
    kcatProducePerS: med((x) => x.kcat.produceRate),
    kcatConsumePerS: med((x) => x.kcat.consumeRate),
    rawKafkajsProducePerS: med((x) => x.kafkajs.produceRate),
    rawKafkajsConsumePerS: med((x) => x.kafkajs.consumeRate),
    busOnKafkajsCodecProducePerS: med((x) => x.busOnKafkajsCodec.produceRate),
    busOnKafkajsCodecConsumePerS: med((x) => x.busOnKafkajsCodec.consumeRate),
    produceRatio: ratio((x) => x.ours.produceRate / x.kcat.produceRate),
    consumeRatio: ratio((x) => x.ours.consumeRate / x.kcat.consumeRate),
    produceVsRawKafkajs: ratio((x) => x.ours.produceRate / x.kafkajs.produceRate),
    consumeVsRawKafkajs: ratio((x) => x.ours.consumeRate / x.kafkajs.consumeRate),
    busOnKafkajsCodecProduceRatio: ratio((x) => x.busOnKafkajsCodec.produceRate / x.kcat.produceRate),
    busOnKafkajsCodecConsumeRatio: ratio((x) => x.busOnKafkajsCodec.consumeRate / x.kcat.consumeRate),
    targets: { produceRatio: 0.3, consumeRatio: 0.5 },
    oursCpuSecondsPerMillion: {
      produce: median(runs.map((x) => x.ours.produceCpuPerM)),
      consume: median(runs.map((x) => x.ours.consumeCpuPerM)),
    },
    memoryBus,
    runs,
  };
}
