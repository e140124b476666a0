// npm run bench -- publish [--input FILE | --loghub DIR] [--lines N] [--rounds N]
// `virgo publish-logs` on a real broker next to `kcat -P` publishing the same file with the same
// settings (gzip, acks=all, a fixed key, a content-type header), in the same run, interleaved
// round by round (default 3 rounds of 200,000 lines) so load from other processes hits all alike:
//   - kcat -P -z gzip -X acks=all -k combo -H content-type=text/plain -l FILE (the baseline);
//   - publishLogs() in-process with --host combo (what the CLI does, without process start-up);
//   - publishLogs() with the key read from each line (the CLI's default, no --host);
//   - the CLI: virgo publish-logs FILE --host combo (process start-up included; its start-up
//     alone, on a one-line file, is reported beside it);
//   - kafkajs used directly: the same lines, key and header, gzip, acks -1, calls of 1000, 2 in
//     flight (what publish-logs did before the Bus had its own record codec).
// Lines: --input FILE (a real kern.log), else Loghub's Linux_2k (--loghub DIR), else the bundled
// demo kernel stream, repeated to N lines (default 1,000,000, so start-up costs weigh as little
// as they do on a real log). Reports medians and per-round ratios to kcat.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { KafkaBus } from '../bus/index.ts';
import { DemoLog } from '../ingest/demo-stream.ts';
import { publishLogs } from '../ingest/index.ts';
import { setLogLevel } from '../runtime/log.ts';
import { BENCH_BROKERS, median, timeCommand } from './util.ts';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : undefined;
}

export interface PublishRound {
  kcatLinesPerSec: number;
  publishLogsLinesPerSec: number;
  publishLogsHostPerLineLinesPerSec: number;
  cliLinesPerSec: number;
  rawKafkajsLinesPerSec: number;
  /** CPU seconds of this process per million lines, publishLogs with a fixed key */
  publishLogsCpuPerM: number;
  loadAverage: number;
}

/** Every publisher once, on topics of their own with 4 partitions, in the order above. */
export async function publishRound(file: string, lines: number): Promise<PublishRound> {
  const brokers = BENCH_BROKERS;
  const stamp = `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
  const topics = {
    kcat: `bench-publish-kcat-${stamp}`,
    lib: `bench-publish-lib-${stamp}`,
    libHost: `bench-publish-libhost-${stamp}`,
    cli: `bench-publish-cli-${stamp}`,
    raw: `bench-publish-raw-${stamp}`,
  };
  const bus = new KafkaBus({ brokers, clientId: 'bench-publish' });
  try {
    await bus.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: 4 })));
    const perSec = (s: number) => Math.round(lines / s);
    const kcatS = await timeCommand('kcat', [
      '-P',
      '-b',
      brokers.join(','),
      '-t',
      topics.kcat,
      '-k',
      'combo',
      '-H',
      'content-type=text/plain',
      '-z',
      'gzip',
      '-X',
      'acks=all',
      '-l',
      file,
    ]);
    let t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const lib = await publishLogs({
      bus,
      source: file,
      topic: topics.lib,
      host: 'combo',
      ensureTopic: false,
    });
    const libS = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    t0 = process.hrtime.bigint();
    const libHost = await publishLogs({ bus, source: file, topic: topics.libHost, ensureTopic: false });
    const libHostS = Number(process.hrtime.bigint() - t0) / 1e9;
    const cliS = await timeCommand(process.execPath, [
      resolve('bin/virgo.js'),
      'publish-logs',
      file,
      '--brokers',
      brokers.join(','),
      '--topic',
      topics.cli,
      '--host',
      'combo',
    ]);
    const rawS = await rawKafkajs(bus, file, topics.raw);
    if (lib.lines !== lines || libHost.lines !== lines)
      throw new Error(`published ${lib.lines}/${libHost.lines} of ${lines}`);
    const counts = await Promise.all(
      Object.values(topics).map(async (t) =>
        (await bus.topicOffsets(t)).reduce((a, o) => a + Number(o.high) - Number(o.low), 0),
      ),
    );
    if (counts.some((n) => n !== lines))
      throw new Error(`topics hold ${counts.join('/')} lines, not ${lines}`);
    return {
      kcatLinesPerSec: perSec(kcatS),
      publishLogsLinesPerSec: perSec(libS),
      publishLogsHostPerLineLinesPerSec: perSec(libHostS),
      cliLinesPerSec: perSec(cliS),
      rawKafkajsLinesPerSec: perSec(rawS),
      publishLogsCpuPerM: +(((c.user + c.system) / 1e6) * (1e6 / lines)).toFixed(2),
      loadAverage: loadavg()[0]!,
    };
  } finally {
    await bus.close();
  }
}

/** kafkajs's producer on the same lines: calls of 1000, 2 in flight, gzip, acks -1. */
async function rawKafkajs(bus: KafkaBus, file: string, topic: string): Promise<number> {
  const { CompressionTypes } = await import('kafkajs');
  const producer = bus.kafka.producer();
  await producer.connect();
  const t0 = process.hrtime.bigint();
  const data = readFileSync(file);
  const key = Buffer.from('combo');
  const headers = { 'content-type': 'text/plain' };
  let batch: { key: Buffer; value: Buffer; headers: Record<string, string> }[] = [];
  const inFlight = new Set<Promise<unknown>>();
  const send = async (messages: typeof batch) => {
    while (inFlight.size >= 2) await Promise.race(inFlight);
    const p = producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
    inFlight.add(p);
    p.finally(() => inFlight.delete(p)).catch(() => {});
  };
  for (let s = 0; s < data.length; ) {
    let e = data.indexOf(10, s);
    if (e < 0) e = data.length;
    if (e > s) batch.push({ key, value: data.subarray(s, e), headers });
    s = e + 1;
    if (batch.length === 1000) {
      await send(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await send(batch);
  await Promise.all(inFlight);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await producer.disconnect();
  return s;
}

/** `base` repeated to `n` lines in a temporary file; returns its path and how to remove it. */
export function linesFile(base: string[], n: number): { file: string; bytes: number; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'virgo-bench-publish-'));
  const file = join(dir, 'lines.log');
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = base[i % base.length]!;
  const text = `${out.join('\n')}\n`;
  writeFileSync(file, text);
  return {
    file,
    bytes: Buffer.byteLength(text),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('warn');
  const n = Number(flag(args, 'lines') ?? '1000000');
  const rounds = Number(flag(args, 'rounds') ?? '3');
  const input = flag(args, 'input');
  const loghub = flag(args, 'loghub');
  let name: string;
  let base: string[];
  if (input) {
    name = basename(input);
    base = readFileSync(resolve(input), 'utf8')
      .split('\n')
      .filter((l) => l.trim().length > 0);
  } else if (loghub) {
    name = 'Loghub Linux_2k';
    base = readFileSync(join(resolve(loghub), 'Linux_2k.log'), 'utf8')
      .split('\n')
      .filter(Boolean);
  } else {
    name = 'demo kernel stream (ingest/demo-stream.ts)';
    const demo = new DemoLog({ seed: 64000, now: () => Date.UTC(2026, 10, 30, 10) });
    base = Array.from({ length: 20_000 }, () => demo.next());
  }
  const { file, bytes, remove } = linesFile(base, n);
  const one = linesFile(base, 1);
  const runs: PublishRound[] = [];
  const startups: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const x = await publishRound(file, n);
      runs.push(x);
      startups.push(
        await timeCommand(process.execPath, [
          resolve('bin/virgo.js'),
          'publish-logs',
          one.file,
          '--brokers',
          BENCH_BROKERS.join(','),
          '--topic',
          `bench-publish-startup-${Date.now().toString(36)}`,
          '--host',
          'combo',
        ]),
      );
      console.error(
        `round ${r + 1}: publish-logs ${x.publishLogsLinesPerSec} (key per line ${x.publishLogsHostPerLineLinesPerSec}, CLI ${x.cliLinesPerSec}), kcat -P ${x.kcatLinesPerSec}, kafkajs ${x.rawKafkajsLinesPerSec} lines/s`,
      );
    }
  } finally {
    remove();
    one.remove();
  }
  const med = (f: (x: PublishRound) => number) => Math.round(median(runs.map(f)));
  const ratio = (f: (x: PublishRound) => number) => +median(runs.map(f)).toFixed(3);
  return {
    input: name,
    lines: n,
    bytes,
    rounds,
    brokers: BENCH_BROKERS,
    settings:
      'gzip, acks=all, 4 partitions, content-type header; fixed key "combo" except the key-per-line figure',
    kcatLinesPerSec: med((x) => x.kcatLinesPerSec),
    publishLogsLinesPerSec: med((x) => x.publishLogsLinesPerSec),
    publishLogsHostPerLineLinesPerSec: med((x) => x.publishLogsHostPerLineLinesPerSec),
    cliLinesPerSec: med((x) => x.cliLinesPerSec),
    rawKafkajsLinesPerSec: med((x) => x.rawKafkajsLinesPerSec),
    ratioPublishLogsToKcat: ratio((x) => x.publishLogsLinesPerSec / x.kcatLinesPerSec),
    ratioHostPerLineToKcat: ratio((x) => x.publishLogsHostPerLineLinesPerSec / x.kcatLinesPerSec),
    ratioCliToKcat: ratio((x) => x.cliLinesPerSec / x.kcatLinesPerSec),
    ratioRawKafkajsToKcat: ratio((x) => x.rawKafkajsLinesPerSec / x.kcatLinesPerSec),
    cliStartupSeconds: +median(startups).toFixed(3),
    target: { ratioPublishLogsToKcat: 0.5 },
    publishLogsCpuSecondsPerMillion: median(runs.map((x) => x.publishLogsCpuPerM)),
    runs,
  };
}
