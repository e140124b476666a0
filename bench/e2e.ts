// npm run bench -- e2e [lines] [--lines N] [--rounds R] [--hosts H] [--step-ms MS]
//                      [--rss-limit-mb MB] [--warmup-lines N] [--live-s S] [--live-rate N]
//                      [--profile DIR] [--learners a,b] [--guarantee exactly-once|at-least-once]
// Kernel lines published to the real broker with `virgo publish-logs` (a child process), then, in
// the same round, kcat reading that topic to its end (the baseline) and the whole pipeline in this
// process (ingest → every learner → analytics topic → feeder → ring consumer → table) reading it:
// lines/s from the group join to the last line's variables in the table, and its ratio to kcat.
// Each round has its own topic (published again), so both read the same bytes cold from the
// start. Default 3 rounds of 300,000 lines; the 10M-line run is `--lines 10000000 --rounds 1`.
// Memory: RSS sampled every second while the pipeline runs; past `--warmup-lines` (default a
// tenth of the lines, at most 1M) it must stay under `--rss-limit-mb` (default 300) or the run
// FAILS (exit 1, `failed` in the JSON). Latency per hop: after the last round's backlog, lines are
// published live (`--live-rate` lines/s for `--live-s` seconds, stamped now) and each hop's
// histogram is taken over that phase (runtime/latency.ts, bench/README.md says what each hop is).
// `--profile DIR` writes a CPU profile of each round's pipeline phase (node:inspector).
// The memory target is measured with the pipeline's heap budget, as deployed:
// `NODE_OPTIONS="--max-old-space-size=160 --max-semi-space-size=4" npm run bench -- e2e …` (README, "Memory"); the JSON
// records the limit in force (`heapLimitMiB`).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { type Bus, KafkaBus, namespaced, TOPICS, topicSpecs } from '../bus/index.ts';
import { type Pipeline, startPipeline } from '../cli/pipeline.ts';
import { DemoLog } from '../ingest/demo-stream.ts';
import { loadBackend } from '../learners/backend.ts';
import { GUARANTEES, type Guarantee } from '../learners/stage.ts';
import { hopLatencies, LatencyHistogram, resetHopLatencies } from '../runtime/latency.ts';
import { setLogLevel } from '../runtime/log.ts';
import { type AnalyticsVariable, codecFor } from '../schemas/index.ts';
import { PhaseProfiler, RssSampler, runChild, writeDemoLog } from './lib/e2e-support.ts';
import { BENCH_BROKERS, median } from './util.ts';

const BIN = new URL('../bin/virgo.js', import.meta.url).pathname;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : undefined;
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Round {
  round: number;
  publishLogsLinesPerS: number;
  kcatConsumeLinesPerS: number;
  kcatCpuS: number;
  pipelineStartS: number;
  pipelineLinesPerS: number;
  /** lines per CPU-second of this process (the pipeline's every stage, on one thread mostly) */
  pipelineLinesPerCpuS: number;
  ratioToKcat: number;
  variablesPublished: number;
  /** the consumer's table never matched the feeder's: what differed (the run fails) */
  consumerTableLost?: string;
  tableSize: number;
  deadLettered: number | undefined;
  rss: Record<string, unknown>;
  loadAverage: number[];
  profile?: string;
}

/** Publishes `file` with the CLI into namespace `ns`; lines/s including its start-up. */
async function publish(file: string, ns: string, lines: number): Promise<number> {
  const r = await runChild(
    process.execPath,
    [BIN, 'publish-logs', file, '--brokers', BENCH_BROKERS.join(',')],
    {
      ...process.env,
      VIRGO_NAMESPACE: ns,
      VIRGO_LOG_LEVEL: 'warn',
    },
  );
  return Math.round(lines / r.wallS);
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('warn');
  const positional = args[0] !== undefined && !args[0].startsWith('--') ? Number(args[0]) : undefined;
  const lines = Number(flag(args, 'lines') ?? positional ?? 300_000);
  const rounds = Number(flag(args, 'rounds') ?? (lines >= 2_000_000 ? 1 : 3));
  const hosts = Number(flag(args, 'hosts') ?? 16);
  const stepMs = Number(flag(args, 'step-ms') ?? 10);
  const limitMiB = Number(flag(args, 'rss-limit-mb') ?? 300);
  const warmupLines = Number(flag(args, 'warmup-lines') ?? Math.min(1_000_000, Math.round(lines / 10)));
  const liveS = Number(flag(args, 'live-s') ?? 15);
  const liveRate = Number(flag(args, 'live-rate') ?? 5_000);
  const profileDir = flag(args, 'profile');
  const learners = flag(args, 'learners')?.split(',');
  const guarantee = (flag(args, 'guarantee') ?? 'exactly-once') as Guarantee;
  if (!GUARANTEES.includes(guarantee)) throw new Error(`--guarantee must be one of ${GUARANTEES.join('|')}`);
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const dir = mkdtempSync(join(tmpdir(), 'bench-e2e-'));
  const file = join(dir, 'kern.log');
  const span = writeDemoLog(file, lines, { hosts, stepMs });
  console.error(
    `e2e: ${lines} lines, ${hosts} hosts, ${((span.end - span.start) / 3.6e6).toFixed(1)} h of event time`,
  );

  const results: Round[] = [];
  let live: Record<string, unknown> | undefined;
  let failed: string | undefined;
  try {
    for (let r = 1; r <= rounds; r++) {
      const ns = `bench-e2e-${randomUUID().slice(0, 8)}`;
      const kafka = new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench-e2e' });
      await namespaced(kafka, ns).ensureTopics(topicSpecs(4));
      await kafka.close();
      const publishLogsLinesPerS = await publish(file, ns, lines);

      // Baseline: kcat reading the same topic to its end, same broker, same round.
      const kcat = await runChild('kcat', [
        '-C',
        '-b',
        BENCH_BROKERS.join(','),
        '-t',
        `${ns}.${TOPICS.kernelLogs}`,
        '-o',
        'beginning',
        '-e',
        '-q',
        '-f',
        '%o\n',
      ]);

      const last = r === rounds;
      const out = await pipelineRound({
        ns,
        lines,
        stateDir: join(dir, `state-${r}`),
        limitMiB,
        warmupLines,
        ...(learners ? { learners } : {}),
        guarantee,
        ...(profileDir ? { profile: join(profileDir, `e2e-round${r}-${Date.now()}.cpuprofile`) } : {}),
        ...(last && liveS > 0 ? { live: { seconds: liveS, rate: liveRate, hosts } } : {}),
      });
      const kcatRate = lines / kcat.wallS;
      const round: Round = {
        round: r,
        publishLogsLinesPerS,
        kcatConsumeLinesPerS: Math.round(kcatRate),
        kcatCpuS: +kcat.cpuS.toFixed(2),
        ...out.round,
        ratioToKcat: +(out.round.pipelineLinesPerS / kcatRate).toFixed(3),
      };
      results.push(round);
      if (out.live) live = out.live;
      console.error(
        `round ${r}: pipeline ${round.pipelineLinesPerS} lines/s (${round.pipelineLinesPerCpuS}/CPU-s), kcat ${round.kcatConsumeLinesPerS} lines/s, ratio ${round.ratioToKcat}, RSS max ${String(round.rss.max)} MiB after warm-up ${String(round.rss.maxAfterWarmUp)} MiB, load ${round.loadAverage[0]}`,
      );
      if (out.breach && !failed)
        failed = `RSS ${out.breach.rssMiB} MiB > ${limitMiB} MiB after warm-up (round ${r}, ${out.breach.lines} lines read, ${out.breach.t} s)`;
      if (round.consumerTableLost && !failed) failed = `round ${r}: ${round.consumerTableLost}`;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const med = (f: (x: Round) => number) => median(results.map(f));
  return {
    ...(failed ? { failed } : {}),
    lines,
    rounds,
    hosts,
    eventTimeHours: +((span.end - span.start) / 3.6e6).toFixed(1),
    learners: learners ?? 'all',
    guarantee,
    brokers: BENCH_BROKERS,
    // V8's old-space limit of this process (NODE_OPTIONS=--max-old-space-size, bench/README.md):
    // without one, V8 lets garbage grow to ~3x the live heap before a full collection
    heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
    nodeOptions: process.env.NODE_OPTIONS ?? '',
    ratioToKcat: med((x) => x.ratioToKcat),
    pipelineLinesPerS: med((x) => x.pipelineLinesPerS),
    pipelineLinesPerCpuS: med((x) => x.pipelineLinesPerCpuS),
    kcatConsumeLinesPerS: med((x) => x.kcatConsumeLinesPerS),
    publishLogsLinesPerS: med((x) => x.publishLogsLinesPerS),
    target: { ratioToKcat: 0.5, rssMiBAfterWarmUp: limitMiB },
    runs: results,
    ...(live ? { live } : {}),
    note: 'rate from the group join (pipelineStartS excluded) to the last variable in the ring consumer table; kcat -C -e on the same topic in the same round; RSS of this process (the pipeline; publisher and kcat are child processes)',
  };
}

interface RoundOptions {
  ns: string;
  lines: number;
  stateDir: string;
  limitMiB: number;
  warmupLines: number;
  learners?: string[];
  guarantee: Guarantee;
  profile?: string;
  live?: { seconds: number; rate: number; hosts: number };
}

async function pipelineRound(o: RoundOptions): Promise<{
  round: Omit<Round, 'round' | 'publishLogsLinesPerS' | 'kcatConsumeLinesPerS' | 'kcatCpuS' | 'ratioToKcat'>;
  breach: { rssMiB: number; lines: number; t: number } | undefined;
  live?: Record<string, unknown>;
}> {
  const profiler = o.profile ? new PhaseProfiler() : undefined;
  let p: Pipeline | undefined;
  const linesRead = () => p?.learn.stats().ingest?.lines ?? 0;
  // the tfjs wasm backend's linear memory, read from its Emscripten module once the pipeline has
  // chosen a backend (HEAPU8 is replaced when the memory grows, so it is read at each sample)
  let wasmModule: { HEAPU8?: Uint8Array } | undefined;
  const rss = new RssSampler(
    linesRead,
    () => linesRead() >= o.warmupLines,
    o.limitMiB,
    () => wasmModule?.HEAPU8?.buffer.byteLength,
  );
  await profiler?.start();
  const t1 = process.hrtime.bigint();
  p = await startPipeline({
    brokers: BENCH_BROKERS,
    namespace: o.ns,
    input: 'none',
    stateDir: o.stateDir,
    feederPort: 0,
    queuePort: 0,
    zmq: false,
    metrics: false,
    devices: [],
    drivers: [],
    ...(o.learners ? { learners: o.learners } : {}),
    guarantee: o.guarantee,
  });
  const pipe = p;
  const backend = await loadBackend();
  if (backend.name === 'wasm')
    wasmModule = (backend.tf.backend() as unknown as { wasm?: typeof wasmModule }).wasm;
  const startS = Number(process.hrtime.bigint() - t1) / 1e9;
  const c2 = process.cpuUsage();
  await waitUntil(() => linesRead() >= o.lines, 3_600_000, 'every line through ingest');
  // then until the learners' last variables have reached the consumer's table
  await waitUntil(() => pipe.learn.stats().outbox === 0, 60_000, 'the learner outbox to drain');
  const want = pipe.learn.stats().published;
  await waitUntil(
    () => pipe.feeder.stats().updates.changed + pipe.feeder.stats().updates.unchanged >= want,
    60_000,
    'the feeder to see every variable',
  );
  const fedS = Number(process.hrtime.bigint() - t1) / 1e9;
  const fedCpu = process.cpuUsage(c2);
  // A consumer table that never matches the feeder's fails the run (a value was lost between
  // them), saying which; the rate is then taken to the feeder's last variable.
  let lost: string | undefined;
  await waitUntil(() => settled(pipe), 60_000, "the ring consumer's table to hold the feeder's values").catch(
    (err: Error) => {
      lost = `${err.message}: ${unsettled(pipe)}`;
    },
  );
  const exportedS = lost ? fedS : Number(process.hrtime.bigint() - t1) / 1e9;
  const cpu = lost ? fedCpu : process.cpuUsage(c2);
  if (o.profile) await profiler?.stop(o.profile);
  rss.stop();
  const ingest = pipe.learn.stats().ingest;
  const round = {
    pipelineStartS: +startS.toFixed(2),
    pipelineLinesPerS: Math.round(o.lines / (exportedS - startS)),
    pipelineLinesPerCpuS: Math.round(o.lines / ((cpu.user + cpu.system) / 1e6)),
    ...(lost ? { consumerTableLost: lost } : {}),
    variablesPublished: want,
    tableSize: pipe.table.size,
    deadLettered: ingest?.deadLettered,
    rss: rss.summary(),
    rssCurve: rss.samples,
    loadAverage: loadavg().map((x) => +x.toFixed(2)),
    ...(o.profile ? { profile: o.profile } : {}),
  };
  let live: Record<string, unknown> | undefined;
  try {
    if (o.live) live = await liveLatency(pipe, o.ns, o.live);
  } finally {
    await pipe.close();
  }
  return { round, breach: rss.breach, ...(live ? { live } : {}) };
}

/** What differs between the feeder's table and the consumer's (a failed run says it). */
function unsettled(p: Pipeline): string {
  const diff: string[] = [];
  let n = 0;
  for (const e of p.feeder.table.entries()) {
    const got = p.table.get(e.key, e.host);
    if (got === e.value) continue;
    n++;
    if (diff.length < 5) diff.push(`${e.host}/${e.key} feeder=${e.value} consumer=${String(got)}`);
  }
  return `${n} of ${p.feeder.table.size} values differ (${diff.join('; ')})`;
}

/** The ring consumer's table holds every value of the feeder's (what the feeder read, it served). */
function settled(p: Pipeline): boolean {
  for (const e of p.feeder.table.entries()) if (p.table.get(e.key, e.host) !== e.value) return false;
  return true;
}

/**
 * Lines published live (stamped now, `rate` lines/s for `seconds`) through a `virgo publish-logs -`
 * child, with every hop's histogram taken over this phase only: the stage's hops from
 * runtime/latency.ts, and per variable, from the analytics record (its emission stamp and Kafka
 * timestamp, read by a subscriber of our own) to the feeder's table and the consumer's table.
 */
async function liveLatency(
  p: Pipeline,
  ns: string,
  o: { seconds: number; rate: number; hosts: number },
): Promise<Record<string, unknown>> {
  const kafka = new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench-e2e-live' });
  const bus: Bus = namespaced(kafka, ns);
  const codec = codecFor('AnalyticsVariable');
  // per host/key=value, the emission stamp and the Kafka timestamp of each record, in order
  const emitted = new Map<string, { ts: number; kafkaTs: number }[]>();
  const atFeeder = new Map<string, number[]>();
  const atTable = new Map<string, number[]>();
  const push = <T>(m: Map<string, T[]>, k: string, v: T) => {
    const a = m.get(k);
    if (a) a.push(v);
    else m.set(k, [v]);
  };
  let measuring = false;
  const sub = await bus.subscribe({
    topics: [TOPICS.kernelAnalytics],
    groupId: `bench-live-${randomUUID().slice(0, 8)}`,
    fromBeginning: false,
    onBatch: async (batch) => {
      for (const m of batch) {
        if (!m.value) continue;
        const v = codec.decode(m.value) as AnalyticsVariable;
        push(emitted, `${v.host}/${v.key}=${v.value}`, { ts: v.ts, kafkaTs: m.timestamp });
      }
    },
  });
  await sub.ready;
  const onFeeder = (c: { host: string; key: string; value: string }) => {
    if (measuring) push(atFeeder, `${c.host}/${c.key}=${c.value}`, Date.now());
  };
  const onTable = (c: { host: string; key: string; value: string }) => {
    if (measuring) push(atTable, `${c.host}/${c.key}=${c.value}`, Date.now());
  };
  p.feeder.table.on('change', onFeeder);
  p.table.on('change', onTable);

  const child = spawn(
    process.execPath,
    [BIN, 'publish-logs', '-', '--brokers', BENCH_BROKERS.join(','), '--linger-ms', '5'],
    {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, VIRGO_NAMESPACE: ns, VIRGO_LOG_LEVEL: 'warn' },
    },
  );
  let childErr = '';
  child.stderr.on('data', (d: Buffer) => {
    childErr += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.on('close', r));
  const gen = new DemoLog({ seed: 99, hosts: Array.from({ length: o.hosts }, (_, i) => `edge-${i}`) });
  // the publisher's start-up and first batches are not measured
  const warm = Math.min(2, o.seconds / 4);
  const before = p.learn.stats().ingest?.lines ?? 0;
  const tickMs = 10;
  const perTick = Math.max(1, Math.round((o.rate * tickMs) / 1000));
  const t0 = Date.now();
  let sent = 0;
  // CPU of this process over the measured phase: the pipeline, plus this loop generating the lines
  // and the subscriber above (small beside it, the same for any pipeline code)
  let cpu0 = process.cpuUsage();
  let lines0 = before;
  let state0 = 0;
  const stateBytes = () => p.learn.stats().exactlyOnce?.stateBytes ?? 0;
  while (Date.now() - t0 < (o.seconds + warm) * 1000) {
    if (!measuring && Date.now() - t0 >= warm * 1000) {
      resetHopLatencies();
      measuring = true;
      cpu0 = process.cpuUsage();
      lines0 = p.learn.stats().ingest?.lines ?? 0;
      state0 = stateBytes();
    }
    const due = Math.floor(((Date.now() - t0) / tickMs) * perTick) - sent;
    if (due > 0) {
      const chunk: string[] = [];
      for (let i = 0; i < due; i++) chunk.push(gen.next());
      sent += due;
      if (!child.stdin.write(`${chunk.join('\n')}\n`))
        await new Promise<void>((r) => child.stdin.once('drain', () => r()));
    }
    await new Promise((r) => setTimeout(r, tickMs));
  }
  child.stdin.end();
  const code = await exited;
  if (code !== 0) throw new Error(`live publish-logs exited ${code}: ${childErr.slice(-500)}`);
  await waitUntil(() => (p.learn.stats().ingest?.lines ?? 0) >= before + sent, 120_000, 'the live lines');
  await waitUntil(() => p.learn.stats().outbox === 0, 60_000, 'the outbox');
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const linesMeasured = (p.learn.stats().ingest?.lines ?? 0) - lines0;
  const stateBytesMeasured = stateBytes() - state0;
  await new Promise((r) => setTimeout(r, 1000));
  measuring = false;
  const stage = hopLatencies();
  p.feeder.table.off('change', onFeeder);
  p.table.off('change', onTable);
  await sub.close();
  await kafka.close();

  // Per variable: emitted (the gate's stamp, processing time live) → analytics record written
  // (its Kafka timestamp) → the feeder's table → the ring consumer's table.
  const toKafka = new LatencyHistogram();
  const toFeeder = new LatencyHistogram();
  const toTable = new LatencyHistogram();
  const emitToTable = new LatencyHistogram();
  for (const [id, feeds] of atFeeder) {
    const ems = emitted.get(id) ?? [];
    const tabs = atTable.get(id) ?? [];
    // the n-th change of a value at the feeder is the n-th record of it since measuring began
    const ems0 = ems.slice(Math.max(0, ems.length - feeds.length));
    feeds.forEach((tf, i) => {
      const e = ems0[i];
      if (!e) return;
      toKafka.record(e.kafkaTs - e.ts);
      toFeeder.record(tf - e.kafkaTs);
      const tt = tabs[i];
      if (tt !== undefined) {
        toTable.record(tt - tf);
        emitToTable.record(tt - e.ts);
      }
    });
  }
  return {
    seconds: o.seconds,
    rateLinesPerS: o.rate,
    linesSent: sent,
    // past the warm-up to the last line handled and the outbox empty
    cpuS: +cpuS.toFixed(2),
    linesPerCpuS: Math.round(linesMeasured / cpuS),
    // compressed bytes written to the learner-state changelog per line (exactly once)
    changelogBytesPerLine: +(stateBytesMeasured / Math.max(1, linesMeasured)).toFixed(1),
    hops: {
      'publish→stage': stage['publish→stage'],
      'stage→learners': stage['stage→learners'],
      learners: stage.learners,
      'learners→analytics': stage['learners→analytics'],
      'emission→analytics record': toKafka.summary(),
      'analytics→feeder table': toFeeder.summary(),
      'feeder→consumer table': toTable.summary(),
      'emission→consumer table': emitToTable.summary(),
    },
    unit: 'ms',
  };
}
