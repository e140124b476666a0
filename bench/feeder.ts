// npm run bench -- feeder [--lines N] [--latency-seconds S] [--redis-changes N]
//
// 1. Throughput, the same N `key=value` lines through:
//      raw nc → nc (the baseline: what netcat alone moves over loopback),
//      nc -l (as a hand-made feeder) → our RingConsumer → ring + table,
//      our feeder (its own process, as deployed) → our RingConsumer → ring + table,
//      our feeder → consumer in one process (for reference).
// 2. Latency at 10k updates/s: feeder.update() → consumer table change event (in-process export),
//    and → Redis confirming the write (RedisExporter), p50/p99.
// 3. Redis export rate (table changes absorbed, fields written) next to `redis-benchmark -P 64 -t hset`.
// The machine is shared: every number has its baseline from the same run; the load average is recorded.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  exportTable,
  type Feeder,
  RedisExporter,
  RingConsumer,
  startFeeder,
  VariableTable,
} from '../kernel-analytics/index.ts';
import { setLogLevel } from '../runtime/log.ts';
import { summarise } from './util.ts';

const REDIS_URL = process.env.VIRGO_BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const KEYS = 500;
// The same key strings every time, as a decoder that interns keys would hand them over.
const KEY_NAMES = Array.from({ length: KEYS }, (_, i) => `kernel_analytics${i}`);
const keyName = (i: number) => KEY_NAMES[i % KEYS]!;

function linesText(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`${keyName(i)}=${i}`);
  return `${parts.join('\n')}\n`;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const secondsSince = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Baseline: nc → nc over loopback, the same bytes. */
async function rawNc(file: string): Promise<number> {
  const port = await freePort();
  const listener = spawn('sh', ['-c', `exec nc -l 127.0.0.1 ${port} > /dev/null`], { stdio: 'ignore' });
  const closed = once(listener, 'close');
  // Time from the successful send's start: ncSend retries until the listener is up.
  let t0 = process.hrtime.bigint();
  for (let attempt = 0; ; attempt++) {
    t0 = process.hrtime.bigint();
    const p = spawn('sh', ['-c', `exec nc -N 127.0.0.1 ${port} < ${file}`], { stdio: 'ignore' });
    const [code] = (await once(p, 'close')) as [number];
    if (code === 0) break;
    if (attempt > 200) throw new Error('nc baseline could not connect');
    await new Promise((r) => setTimeout(r, 10));
  }
  await closed;
  return secondsSince(t0);
}

/** `nc -l` serving the file as a feeder; our consumer reads it all into ring and table. */
interface Run {
  seconds: number;
  /** CPU seconds of this process (user + system) during the run */
  cpu: number;
  /** CPU seconds of the feeder child, when there is one */
  childCpu?: number;
}

const cpuSince = (c0: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1e6;
};

async function ncToConsumer(file: string, n: number): Promise<Run> {
  const port = await freePort();
  const nc = spawn('sh', ['-c', `exec nc -N -l 127.0.0.1 ${port} < ${file}`], { stdio: 'ignore' });
  const consumer = new RingConsumer({ port, backoff: { initialMs: 5, maxMs: 20 }, autoStart: false });
  let t0 = 0n;
  let c0 = process.cpuUsage();
  consumer.on('connect', () => {
    t0 = process.hrtime.bigint();
    c0 = process.cpuUsage();
  });
  const done = new Promise<void>((resolve) => {
    const check = () => (consumer.ring.written >= n ? resolve() : setTimeout(check, 1));
    check();
  });
  consumer.start();
  await done;
  const r = { seconds: secondsSince(t0), cpu: cpuSince(c0) };
  await consumer.close();
  nc.kill();
  return r;
}

// ---- the feeder in its own process ----

async function childFeeder(n: number): Promise<void> {
  setLogLevel('warn');
  const f = await startFeeder({ listen: { port: 0 }, maxClientBuffer: 256 << 20, snapshotDelayMs: 0 });
  f.update({ key: 'ready', value: '1' });
  process.stdout.write(`PORT ${f.port}\n`);
  const rl = createInterface({ input: process.stdin });
  let c0 = process.cpuUsage();
  rl.on('line', (line) => {
    if (line === 'GO') {
      c0 = process.cpuUsage();
      void produce(f, n).then(() => f.update({ key: 'done', value: '1' }));
    } else if (line === 'EXIT') {
      process.stdout.write(`CPU ${cpuSince(c0)}\n`);
      process.stderr.write(`child waits ${waits}\n`);
      void f.close().then(() => process.exit(0));
    }
  });
}

/** N updates as fast as the reader takes them: batches per loop turn, pausing while >8 MB queue. */
let waits = 0;

async function produce(f: Feeder, n: number): Promise<void> {
  const BATCH = 20_000;
  for (let i = 0; i < n; ) {
    const end = Math.min(n, i + BATCH);
    for (; i < end; i++) f.update({ key: keyName(i), value: String(i) });
    await new Promise((r) => setImmediate(r));
    while (f.stats().queuedBytes > 8 << 20) {
      waits++;
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

async function feederProcessToConsumer(n: number): Promise<Run> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', self, '--child-feeder', String(n)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  // One line listener for the child's whole life (a for-await loop would close the reader).
  const rl = createInterface({ input: child.stdout });
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  rl.on('line', (l) => {
    lines.push(l);
    wake?.();
  });
  const nextMatch = async (re: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const l = lines.shift();
      const m = l === undefined ? null : re.exec(l);
      if (m) return m;
      if (l === undefined) await new Promise<void>((r) => (wake = r));
    }
  };
  const port = Number((await nextMatch(/^PORT (\d+)$/))[1]);
  const consumer = new RingConsumer({ port, ringSize: 500, maxVariables: KEYS + 10 });
  await new Promise<void>((resolve) => {
    const check = () => (consumer.table.get('ready') === '1' ? resolve() : setTimeout(check, 5));
    check();
  });
  // Polled, not a change listener: a listener would make every change allocate an event.
  const finished = new Promise<void>((resolve) => {
    const check = () => (consumer.table.get('done') === '1' ? resolve() : setTimeout(check, 1));
    check();
  });
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  child.stdin.write('GO\n');
  await finished;
  const seconds = secondsSince(t0);
  const cpu = cpuSince(c0);
  const got = consumer.stats();
  if (got.pairs < n) throw new Error(`consumer got ${got.pairs} of ${n} pairs`);
  child.stdin.write('EXIT\n');
  const childCpu = Number((await nextMatch(/^CPU ([\d.]+)$/))[1]);
  await once(child, 'close');
  await consumer.close();
  return { seconds, cpu, childCpu };
}

async function feederInProcessToConsumer(n: number): Promise<Run> {
  const f = await startFeeder({ listen: { port: 0 }, maxClientBuffer: 256 << 20, snapshotDelayMs: 0 });
  f.update({ key: 'ready', value: '1' });
  const consumer = new RingConsumer({ port: f.port, maxVariables: KEYS + 10 });
  await new Promise<void>((resolve) => {
    const check = () => (consumer.table.get('ready') === '1' ? resolve() : setTimeout(check, 5));
    check();
  });
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const finished = new Promise<void>((resolve) => {
    const check = () => (consumer.ring.written >= n + 1 ? resolve() : setTimeout(check, 1));
    check();
  });
  await produce(f, n);
  await finished;
  const r = { seconds: secondsSince(t0), cpu: cpuSince(c0) };
  await consumer.close();
  await f.close();
  return r;
}

// ---- latency ----

/**
 * feeder.update() → TCP → consumer → table change (the in-process export) and, with `redis`,
 * → RedisExporter confirmed by Redis. Everything in one process, so one clock.
 */
async function latency(seconds: number, rate: number, redisToo: boolean) {
  const f = await startFeeder({ listen: { port: 0 }, snapshotDelayMs: 0, defaultHost: 'bench' });
  const consumer = new RingConsumer({ port: f.port, maxVariables: 1000 });
  await consumer.whenConnected();
  const prefix = `virgo-bench:${randomUUID().slice(0, 8)}`;
  const redis = redisToo ? await RedisExporter.create({ url: REDIS_URL, prefix }) : undefined;
  const exp = redis ? exportTable(consumer.table, [redis]) : undefined;
  const total = Math.round(seconds * rate);
  const emitted = new Float64Array(total);
  const toTable: number[] = [];
  const toRedis: number[] = [];
  consumer.table.on('change', (ch) => {
    const i = Number(ch.value);
    if (ch.key.startsWith('lat') && i < total) toTable.push(performance.now() - emitted[i]!);
  });
  redis?.on('written', (b) => {
    const now = performance.now();
    for (const e of b.entries) {
      const i = Number(e.value);
      if (e.key.startsWith('lat') && i < total) toRedis.push(now - emitted[i]!);
    }
  });
  // Baseline for the same seconds: how late this process's own event loop runs (scheduling on a
  // shared machine, GC). Our latency cannot be better than that.
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  // Paced on the clock: every update due by now goes out, checked every millisecond (a learner
  // emits in small bursts; spinning the loop instead would steal the CPU the pipeline needs).
  const start = performance.now();
  const interval = 1000 / rate;
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      for (; i < due; i++) {
        emitted[i] = performance.now();
        f.update({ key: `lat${i % 100}`, value: String(i) });
      }
      if (i >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const actualRate = total / ((performance.now() - start) / 1000);
  loopDelay.disable();
  const deadline = Date.now() + 10_000;
  while ((toTable.length < total || (redis?.stats().pending ?? 0) > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await exp?.flush();
  const result = {
    updates: total,
    rate: Math.round(actualRate),
    emitToTableMs: round(summarise(toTable)),
    // Redis coalesces per key while a write is in flight: fewer confirmations than updates.
    ...(redis ? { emitToRedisMs: round(summarise(toRedis)), redisConfirmed: toRedis.length } : {}),
    eventLoopDelayMs: {
      p50: +(loopDelay.percentile(50) / 1e6).toFixed(3),
      p99: +(loopDelay.percentile(99) / 1e6).toFixed(3),
      max: +(loopDelay.max / 1e6).toFixed(3),
    },
  };
  await exp?.close();
  await consumer.close();
  await f.close();
  if (redis) await cleanupRedis(prefix);
  return result;
}

function round(s: { p50: number; p99: number; max: number; n: number }) {
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { p50: r(s.p50), p99: r(s.p99), max: r(s.max), n: s.n };
}

async function cleanupRedis(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(REDIS_URL);
  const keys = await r.keys(`${prefix}:*`);
  if (keys.length > 0) await r.del(...keys);
  await r.quit();
}

// ---- Redis export rate ----

async function redisExport(changes: number, distinct: number) {
  const prefix = `virgo-bench:${randomUUID().slice(0, 8)}`;
  const table = new VariableTable({ maxVariables: distinct });
  const redis = await RedisExporter.create({ url: REDIS_URL, prefix });
  const exp = exportTable(table, [redis]);
  const BATCH = 5_000;
  const keys = Array.from({ length: distinct }, (_, i) => `var${i}`);
  // Three rounds on the same table and connection (the first one warms up the JIT); median.
  const rates: number[] = [];
  const fieldRates: number[] = [];
  for (let r = 0; r < 3; r++) {
    const w0 = redis.stats().written;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < changes; ) {
      const end = Math.min(changes, i + BATCH);
      for (; i < end; i++) table.setValidated(keys[i % distinct]!, String(i + r * changes), 'bench');
      await new Promise((res) => setImmediate(res));
    }
    await exp.flush();
    while (redis.stats().pending > 0) await exp.flush();
    const s = secondsSince(t0);
    rates.push(changes / s);
    fieldRates.push((redis.stats().written - w0) / s);
  }
  const mid = (xs: number[]) => Math.round([...xs].sort((a, b) => a - b)[1]!);
  const st = redis.stats();
  await exp.close();
  await cleanupRedis(prefix);
  return {
    changes,
    distinctKeys: distinct,
    changesPerSec: mid(rates),
    fieldsWrittenPerSec: mid(fieldRates),
    samplesChangesPerSec: rates.map(Math.round),
    fieldsWritten: st.written,
    errors: st.errors,
  };
}

async function redisBenchmark(n: number): Promise<number> {
  const u = new URL(REDIS_URL);
  const p = spawn(
    'redis-benchmark',
    ['-h', u.hostname, '-p', u.port || '6379', '-P', '64', '-t', 'hset', '-n', String(n), '--csv', '-q'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await once(p, 'close');
  const m = /"HSET","([\d.]+)"/.exec(out);
  if (!m) throw new Error(`cannot read redis-benchmark output: ${out.slice(0, 300)}`);
  return Number(m[1]);
}

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('warn');
  const n = arg(args, 'lines', 2_000_000);
  const latencySeconds = arg(args, 'latency-seconds', 3);
  const redisChanges = arg(args, 'redis-changes', 500_000);
  const rounds = arg(args, 'rounds', 3);
  const partsIdx = args.indexOf('--parts');
  const parts = new Set((partsIdx >= 0 ? (args[partsIdx + 1] ?? '') : 'throughput,latency,redis').split(','));
  const dir = mkdtempSync(join(tmpdir(), 'virgo-bench-feeder-'));
  const file = join(dir, 'lines.txt');
  const text = linesText(n);
  writeFileSync(file, text);
  const bytes = Buffer.byteLength(text);
  const load = loadavg()[0];
  try {
    // Alternate ours and the baseline, three rounds, and take medians: the machine is shared.
    const raw: number[] = [];
    const ncOurs: Run[] = [];
    const feederProc: Run[] = [];
    const feederSame: Run[] = [];
    for (let r = 0; r < (parts.has('throughput') ? rounds : 0); r++) {
      raw.push(n / (await rawNc(file)));
      ncOurs.push(await ncToConsumer(file, n));
      feederProc.push(await feederProcessToConsumer(n));
      feederSame.push(await feederInProcessToConsumer(n));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const rate = (runs: Run[]) => Math.round(med(runs.map((x) => n / x.seconds)));
    // CPU cost per line: robust to other jobs on the machine, unlike wall-clock rates.
    const usPerLine = (xs: number[]) => +((med(xs) / n) * 1e6).toFixed(3);
    const rawRate = Math.round(med(raw));
    const throughput = {
      lines: n,
      bytes,
      rawNcPipeLinesPerSec: rawRate,
      ncToOurConsumerLinesPerSec: rate(ncOurs),
      ourFeederProcessToConsumerLinesPerSec: rate(feederProc),
      ourFeederSameProcessToConsumerLinesPerSec: rate(feederSame),
      cpuMicrosPerLine: {
        consumer: usPerLine(ncOurs.map((x) => x.cpu)),
        consumerWithOurFeeder: usPerLine(feederProc.map((x) => x.cpu)),
        feeder: usPerLine(feederProc.map((x) => x.childCpu ?? Number.NaN)),
        feederPlusConsumerOneProcess: usPerLine(feederSame.map((x) => x.cpu)),
      },
      samplesLinesPerSec: {
        raw: raw.map(Math.round),
        ncToConsumer: ncOurs.map((x) => Math.round(n / x.seconds)),
        feederProcess: feederProc.map((x) => Math.round(n / x.seconds)),
        feederSameProcess: feederSame.map((x) => Math.round(n / x.seconds)),
      },
      ratioFeederToConsumerVsRawNc: +(rate(feederProc) / rawRate).toFixed(3),
      ratioNcToConsumerVsRawNc: +(rate(ncOurs) / rawRate).toFixed(3),
      targetLinesPerSec: 2_000_000,
    };
    const lat = parts.has('latency')
      ? {
          tableOnly: await latency(latencySeconds, 10_000, false),
          withRedis: await latency(latencySeconds, 10_000, true),
        }
      : undefined;
    const ex = parts.has('redis') ? await redisExport(redisChanges, 50_000) : undefined;
    const rb = parts.has('redis') ? await redisBenchmark(1_000_000) : Number.NaN;
    return {
      loadAverage1m: load,
      throughput,
      latencyAt10kPerSec: lat && { ...lat, targetP99Ms: 1 },
      redis: ex && {
        ours: ex,
        redisBenchmarkP64HsetPerSec: Math.round(rb),
        ratioFieldsVsRedisBenchmark: +(ex.fieldsWrittenPerSec / rb).toFixed(3),
        ratioChangesVsRedisBenchmark: +(ex.changesPerSec / rb).toFixed(3),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--child-feeder')) {
  const n = Number(process.argv[process.argv.indexOf('--child-feeder') + 1]);
  await childFeeder(n);
}
