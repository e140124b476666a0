// npm run bench -- feeder [--lines N] [--rounds R] [--latency-seconds S] [--burners B]
//                         [--redis-changes N] [--parts throughput,latency,redis]
//
// 1. Throughput, the same N `key=value` lines through:
//      raw nc → nc (the baseline: what netcat alone moves over loopback),
//      nc -l (as a hand-made feeder) → our RingConsumer → ring + table,
//      our feeder (its own process, as deployed) → our RingConsumer → ring + table,
//      our feeder → consumer in one process (for reference);
//    R rounds (default 3) alternating ours and the baseline, medians, CPU µs per line per side.
// 2. Latency at 10k updates/s: feeder.update() → consumer table change event (in-process export),
//    and → Redis confirming the write (RedisExporter), p50/p99, the Redis leg (table → confirmed)
//    apart; quiet and under load (B CPU burner processes, default 1), R rounds each, beside
//    same-run floors probed on every tick: a loopback TCP hop in this process, a Redis PING round
//    trip; the slowest 1 % to Redis set against the PING of its own tick and its table leg.
// 3. Redis export rate (table changes absorbed, fields written) next to `redis-benchmark -P 64 -t hset`.
// The machine is shared: every number has its baseline from the same run; the load average is recorded.
// Profiling: `node --cpu-prof --import tsx bench/run.ts feeder …` profiles the feeder child too.
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
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
  /** 1-minute load average when the run started */
  load: number;
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
  const load = loadavg()[0]!;
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
  const r = { load, seconds: secondsSince(t0), cpu: cpuSince(c0) };
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
  const load = loadavg()[0]!;
  const self = fileURLToPath(import.meta.url);
  // The parent's node flags (--import tsx, and --cpu-prof when profiling) apply to the child too.
  const flags = process.execArgv.includes('tsx')
    ? process.execArgv
    : ['--import', 'tsx', ...process.execArgv];
  const child = spawn(process.execPath, [...flags, self, '--child-feeder', String(n)], {
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
  return { load, seconds, cpu, childCpu };
}

async function feederInProcessToConsumer(n: number): Promise<Run> {
  const load = loadavg()[0]!;
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
  const r = { load, seconds: secondsSince(t0), cpu: cpuSince(c0) };
  await consumer.close();
  await f.close();
  return r;
}

// ---- latency ----

/** Latency samples of one run, in ms. */
interface Summary {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

/**
 * Latency samples in a preallocated Float64Array: growing JS arrays would fill the young
 * generation with the measurement itself and lengthen the GC pauses being measured.
 */
class Samples {
  private a: Float64Array;
  n = 0;
  constructor(capacity: number) {
    this.a = new Float64Array(Math.max(16, capacity));
  }
  push(x: number): void {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
  values(): number[] {
    return Array.from(this.a.subarray(0, this.n));
  }
  /** the k-th sample, NaN when there is none */
  at(k: number): number {
    return k < this.n ? this.a[k]! : Number.NaN;
  }
}

/** Send times of probes in flight, first in first out, without allocating per probe. */
class Fifo {
  private readonly a: Float64Array;
  private head = 0;
  private tail = 0;
  constructor(capacity: number) {
    this.a = new Float64Array(capacity);
  }
  push(x: number): void {
    this.a[this.tail++ % this.a.length] = x;
  }
  shift(): number {
    return this.a[this.head++ % this.a.length]!;
  }
}

/**
 * Same-run floors, probed on every pacing tick of the run itself (so under the same load):
 * `loopbackHop`, a few bytes written on a loopback TCP socket of this process until its 'data'
 * callback runs (the least one feeder → consumer hop can take); `redisPing`, a PING on a raw socket
 * to Redis until its +PONG arrives (the least a confirmed Redis write can take: another process
 * must be scheduled, twice).
 */
async function startProbes(redisToo: boolean, ticks: number) {
  const hop = new Samples(ticks);
  const ping = new Samples(ticks);
  // a probe is answered long before 4096 more are sent
  const hopSent = new Fifo(4096);
  const pingSent = new Fifo(4096);
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => {
      const now = performance.now();
      for (let k = d.indexOf(10); k >= 0; k = d.indexOf(10, k + 1)) hop.push(now - hopSent.shift());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = connect({
    port: (server.address() as { port: number }).port,
    host: '127.0.0.1',
    noDelay: true,
  });
  await once(client, 'connect');
  let redisSock: Socket | undefined;
  if (redisToo) {
    const u = new URL(REDIS_URL);
    redisSock = connect({ host: u.hostname, port: Number(u.port || 6379), noDelay: true });
    await once(redisSock, 'connect');
    // Every reply is +PONG\r\n: one per newline byte, however the reads cut them.
    redisSock.on('data', (d: Buffer) => {
      const now = performance.now();
      for (let k = d.indexOf(10); k >= 0; k = d.indexOf(10, k + 1)) ping.push(now - pingSent.shift());
    });
  }
  return {
    /** the round trip of the PING sent on tick k (replies come in order), NaN when unanswered */
    pingOfTick: (k: number) => ping.at(k),
    tick() {
      hopSent.push(performance.now());
      client.write('probe\n');
      if (redisSock) {
        pingSent.push(performance.now());
        redisSock.write('PING\r\n');
      }
    },
    async close() {
      client.destroy();
      redisSock?.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      return {
        loopbackHopMs: round(summarise(hop.values())),
        ...(redisToo ? { redisPingMs: round(summarise(ping.values())) } : {}),
      };
    },
  };
}

/**
 * CPU burners: busy loops in their own session (as another user's job would be, not in this
 * process's scheduling group), the "under load" condition of the latency runs.
 */
function startBurners(n: number): () => void {
  const kids = Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore', detached: true }),
  );
  return () => {
    for (const k of kids) k.kill('SIGKILL');
  };
}

/**
 * feeder.update() → TCP → consumer → table change (the in-process export) and, with `redis`,
 * → RedisExporter confirmed by Redis. Everything in one process, so one clock.
 */
async function latency(seconds: number, rate: number, redisToo: boolean, burners: number) {
  const stopBurners = startBurners(burners);
  try {
    return await latencyRun(seconds, rate, redisToo, burners);
  } finally {
    stopBurners();
  }
}

async function latencyRun(seconds: number, rate: number, redisToo: boolean, burners: number) {
  const f = await startFeeder({ listen: { port: 0 }, snapshotDelayMs: 0, defaultHost: 'bench' });
  const consumer = new RingConsumer({ port: f.port, maxVariables: 1000 });
  await consumer.whenConnected();
  const prefix = `virgo-bench:${randomUUID().slice(0, 8)}`;
  const redis = redisToo ? await RedisExporter.create({ url: REDIS_URL, prefix }) : undefined;
  const exp = redis ? exportTable(consumer.table, [redis]) : undefined;
  const total = Math.round(seconds * rate);
  const probes = await startProbes(redisToo, Math.ceil(seconds * 1000));
  const emitted = new Float64Array(total);
  const toTable = new Samples(total);
  const toRedis = new Samples(total);
  // The Redis leg alone: the consumer's table change → Redis answering the round that carried it.
  const tableToRedis = new Samples(total);
  const tabled = new Float64Array(total);
  const confirmed = new Float64Array(total);
  // the pacing tick each update was emitted on: its PING probe went to Redis in the same tick
  const tickOf = new Int32Array(total);
  let ticks = 0;
  consumer.table.on('change', (ch) => {
    const i = Number(ch.value);
    if (ch.key.startsWith('lat') && i < total) {
      const now = performance.now();
      tabled[i] = now;
      toTable.push(now - emitted[i]!);
    }
  });
  // Confirmed: the exporter has Redis's reply to the round (HSET and PUBLISH) that carried the
  // value, so it was readable in Redis before this moment (by at most the reply's way back); no
  // reader's own round trip is counted. An update overwritten before its round left is never
  // confirmed (the newer value is): a few confirmations fewer than updates.
  redis?.on('written', (b) => {
    const now = performance.now();
    for (const e of b.entries) {
      const i = Number(e.value);
      if (e.key.startsWith('lat') && i < total) {
        confirmed[i] = now;
        toRedis.push(now - emitted[i]!);
        if (tabled[i]! > 0) tableToRedis.push(now - tabled[i]!);
      }
    }
  });
  // Warm-up, not measured: half a second at the same rate (a running pipeline is JIT-compiled and
  // connected; a cold start's first ticks would otherwise be a third of the p99 samples).
  await pace(500, rate, (j) => f.update({ key: `lat${j % 100}`, value: `warm${j}` }));
  // Baseline for the same seconds: how late this process's own event loop runs (scheduling on a
  // shared machine, GC).
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const load1m = loadavg()[0]!;
  const c0 = process.cpuUsage();
  const start = performance.now();
  await pace(
    seconds * 1000,
    rate,
    (i) => {
      tickOf[i] = ticks;
      emitted[i] = performance.now();
      f.update({ key: `lat${i % 100}`, value: String(i) });
    },
    () => {
      ticks++;
      probes.tick();
    },
  );
  const elapsed = performance.now() - start;
  const actualRate = total / (elapsed / 1000);
  const cpu = cpuSince(c0) / (elapsed / 1000);
  loopDelay.disable();
  const deadline = Date.now() + 10_000;
  while ((toTable.n < total || (redis?.stats().pending ?? 0) > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await exp?.flush();
  const redisTail = redis ? tailVsPing(emitted, tabled, confirmed, tickOf, probes.pingOfTick) : undefined;
  const floors = await probes.close();
  const result = {
    burners,
    loadAverage1m: +load1m.toFixed(2),
    updates: total,
    rate: Math.round(actualRate),
    /** CPU of this process (feeder, consumer, exporter, pacing, probes) as a fraction of one core */
    cpuCores: +cpu.toFixed(3),
    emitToTableMs: round(summarise(toTable.values())),
    ...(redis
      ? {
          emitToRedisMs: round(summarise(toRedis.values())),
          tableToRedisMs: round(summarise(tableToRedis.values())),
          redisConfirmed: toRedis.n,
          redisTail,
        }
      : {}),
    ...floors,
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

/**
 * Where the slowest 1 % of emit → Redis went: of the updates at or above the run's p99, how many
 * had the PING sent to Redis in their own tick (just before their round) take at least half of
 * their whole latency (Redis, or the machine, was slow for everyone then, not the export), and
 * how many spent at least half of it before the export had them (emit → table: this process
 * descheduled or collecting garbage; the feeder → consumer hop).
 */
function tailVsPing(
  emitted: Float64Array,
  tabled: Float64Array,
  confirmed: Float64Array,
  tickOf: Int32Array,
  pingOfTick: (k: number) => number,
) {
  const lat: number[] = [];
  for (let i = 0; i < confirmed.length; i++) if (confirmed[i]! > 0) lat.push(confirmed[i]! - emitted[i]!);
  const p99 = summarise(lat).p99;
  let samples = 0;
  let pingSlowToo = 0;
  let tableLeg = 0;
  for (let i = 0; i < confirmed.length; i++) {
    if (!(confirmed[i]! > 0)) continue;
    const l = confirmed[i]! - emitted[i]!;
    if (l < p99) continue;
    samples++;
    if (pingOfTick(tickOf[i]!) >= l / 2) pingSlowToo++;
    if (tabled[i]! - emitted[i]! >= l / 2) tableLeg++;
  }
  return {
    samplesAtOrAboveP99: samples,
    sameTickPingAtLeastHalf: pingSlowToo,
    tableLegAtLeastHalf: tableLeg,
  };
}

/**
 * Paced on the clock: every update due by now goes out, checked every millisecond (a learner
 * emits in small bursts; spinning the loop instead would steal the CPU the pipeline needs).
 */
function pace(ms: number, rate: number, emit: (i: number) => void, everyTick?: () => void): Promise<void> {
  const total = Math.round((ms / 1000) * rate);
  const start = performance.now();
  const interval = 1000 / rate;
  let i = 0;
  return new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      for (; i < due; i++) emit(i);
      everyTick?.();
      if (i >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
}

type LatencyResult = Awaited<ReturnType<typeof latencyRun>>;

/** Medians over the runs of one condition, and the ratios to the same runs' floors. */
function latencySummary(runs: LatencyResult[]) {
  const mid = (xs: number[]) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(3);
  const pick = (f: (r: LatencyResult) => Summary | undefined) => {
    const xs = runs.map(f).filter((x): x is Summary => x !== undefined);
    return xs.length === 0 ? undefined : { p50: mid(xs.map((x) => x.p50)), p99: mid(xs.map((x) => x.p99)) };
  };
  const table = pick((r) => r.emitToTableMs)!;
  const hop = pick((r) => r.loopbackHopMs)!;
  const toRedis = pick((r) => r.emitToRedisMs);
  const tableToRedis = pick((r) => r.tableToRedisMs);
  const ping = pick((r) => r.redisPingMs);
  return {
    runs: runs.length,
    loadAverage1m: runs.map((r) => r.loadAverage1m),
    medianEmitToTableMs: table,
    medianLoopbackHopMs: hop,
    p99TableVsLoopbackHop: +(table.p99 / hop.p99).toFixed(2),
    ...(toRedis && ping
      ? {
          medianEmitToRedisMs: toRedis,
          medianTableToRedisMs: tableToRedis,
          medianRedisPingMs: ping,
          p99RedisVsPing: +(toRedis.p99 / ping.p99).toFixed(2),
        }
      : {}),
    medianCpuCores: mid(runs.map((r) => r.cpuCores)),
    p99TableUnder1ms: runs.map((r) => r.emitToTableMs.p99 < 1),
    ...(toRedis
      ? {
          p99RedisUnder3ms: runs.map((r) => (r.emitToRedisMs?.p99 ?? Number.NaN) < 3),
          // per run, side by side: the target can only be met where the floor is well under it
          p99EmitToRedisPerRunMs: runs.map((r) => r.emitToRedisMs?.p99),
          p99RedisPingPerRunMs: runs.map((r) => r.redisPingMs?.p99),
          tailSamplesAtOrAboveP99: runs.reduce((a, r) => a + (r.redisTail?.samplesAtOrAboveP99 ?? 0), 0),
          tailSamplesWithSameTickPingAtLeastHalf: runs.reduce(
            (a, r) => a + (r.redisTail?.sameTickPingAtLeastHalf ?? 0),
            0,
          ),
          tailSamplesWithTableLegAtLeastHalf: runs.reduce(
            (a, r) => a + (r.redisTail?.tableLegAtLeastHalf ?? 0),
            0,
          ),
        }
      : {}),
  };
}

function round(s: Summary): Summary {
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

/** Which code was measured: the commit, and whether the checkout had changes (before/after runs). */
function codeVersion(): string {
  try {
    const opts = { cwd: fileURLToPath(new URL('.', import.meta.url)), encoding: 'utf8' as const };
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], opts).trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '..'], opts).trim() !== '';
    return dirty ? `${head}+changes` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
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
  const burners = arg(args, 'burners', 1);
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
      loadAverage1mPerRound: feederProc.map((x) => +x.load.toFixed(2)),
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
    // Quiet (only what others run: the load average says how much) and under load (CPU burners),
    // alternated round by round so both see the same stretch of the machine's day.
    const lat = { quietTable: [], quietRedis: [], loadedTable: [], loadedRedis: [] } as Record<
      'quietTable' | 'quietRedis' | 'loadedTable' | 'loadedRedis',
      LatencyResult[]
    >;
    for (let r = 0; r < (parts.has('latency') ? rounds : 0); r++) {
      lat.quietTable.push(await latency(latencySeconds, 10_000, false, 0));
      lat.loadedTable.push(await latency(latencySeconds, 10_000, false, burners));
      lat.quietRedis.push(await latency(latencySeconds, 10_000, true, 0));
      lat.loadedRedis.push(await latency(latencySeconds, 10_000, true, burners));
    }
    const latencyAt10kPerSec = parts.has('latency')
      ? {
          targetP99Ms: { table: 1, redis: 3 },
          burners,
          summary: {
            quietTableOnly: latencySummary(lat.quietTable),
            quietWithRedis: latencySummary(lat.quietRedis),
            loadedTableOnly: latencySummary(lat.loadedTable),
            loadedWithRedis: latencySummary(lat.loadedRedis),
          },
          runs: lat,
        }
      : undefined;
    const ex = parts.has('redis') ? await redisExport(redisChanges, 50_000) : undefined;
    const rb = parts.has('redis') ? await redisBenchmark(1_000_000) : Number.NaN;
    return {
      code: codeVersion(),
      // e.g. "before: main at <commit>" when an older tree is measured with this bench
      ...(process.env.VIRGO_BENCH_LABEL ? { label: process.env.VIRGO_BENCH_LABEL } : {}),
      loadAverage1m: load,
      throughput,
      latencyAt10kPerSec,
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
