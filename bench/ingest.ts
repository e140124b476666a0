// npm run bench -- ingest [--input FILE] [--loghub DIR] [--lines N] [--rounds N] [--publish-lines N]
//                        [--no-kafka] [--no-drain3]
//
// 1. parse + mine on one core (parseLine + TemplateMiner.add, the stage's hot path), CPU time per
//    line, median of interleaved rounds, on:
//    - kern.log-like lines: --input FILE (a real kern.log, repeated to N lines), Loghub's Linux_2k
//      (--loghub DIR), and always the bundled demo kernel stream (ingest/demo-stream.ts, seeded);
//    - high-entropy input of as many lines: random bytes decoded as a file reader decodes them
//      (invalid UTF-8 replaced; the Kafka stage dead-letters such values, so this is the miner's
//      worst case, not the stage's), and random printable ASCII;
//    and reports the cost of a high-entropy line against a line of the first kern.log-like input.
//    Baselines in the same run: a bare split(' ') per line (the floor any tokenising pays), a
//    classic regex parser (a syslog header regex plus Drain-style regex masking), and Drain3
//    (PyPI drain3, when installed) mining the same lines in Python.
// 2. publish to a real broker: virgo publish-logs (in-process and as the CLI) next to `kcat -P`
//    publishing the same file (gzip, acks=all, a fixed key, content-type header) in the same run.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { DemoLog } from '../ingest/demo-stream.ts';
import { parseLine, TemplateMiner } from '../ingest/index.ts';
import { linesFile, publishRound } from './publish.ts';
import { median } from './util.ts';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : undefined;
}

/** Lines as the stage sees them: each its own flat string (decoded from its own message). */
function repeatLines(base: string[], n: number): string[] {
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = Buffer.from(base[i % base.length]!).toString('utf8');
  return out;
}

interface Rate {
  /** lines per wall-clock second */
  wall: number;
  /** lines per second of this process's CPU time: steadier when other work shares the cores */
  cpu: number;
}

interface Mark {
  t: bigint;
  cpu: NodeJS.CpuUsage;
}

const mark = (): Mark => ({ t: process.hrtime.bigint(), cpu: process.cpuUsage() });

function rate(n: number, m: Mark): Rate {
  const wall = Number(process.hrtime.bigint() - m.t) / 1e9;
  const c = process.cpuUsage(m.cpu);
  return { wall: Math.round(n / wall), cpu: Math.round(n / ((c.user + c.system) / 1e6)) };
}

const HEADER = /^(\w{3})\s+(\d+) (\d\d:\d\d:\d\d) (\S+) ([^:[\s]+)(?:\[(\d+)\])?: (.*)$/;
const DRAIN_MASKS: [RegExp, string][] = [
  [/(\d+\.){3}\d+(:\d+)?/g, '<*>'],
  [/0x[0-9a-fA-F]+/g, '<*>'],
  [/\d{2}:\d{2}:\d{2}/g, '<*>'],
  [/(\/[\w.-]+)+/g, '<*>'],
  [/\b\d+\b/g, '<*>'],
];

/** The regex baseline: header regex, five masking passes, split on whitespace, a template map. */
function regexParse(lines: string[]): Rate {
  const templates = new Map<string, number>();
  const t0 = mark();
  for (const l of lines) {
    const m = HEADER.exec(l);
    let msg = m ? m[7]! : l;
    for (const [re, sub] of DRAIN_MASKS) msg = msg.replace(re, sub);
    const key = msg.split(/\s+/).join(' ');
    templates.set(key, (templates.get(key) ?? 0) + 1);
  }
  return rate(lines.length, t0);
}

function splitFloor(lines: string[]): Rate {
  let tokens = 0;
  const t0 = mark();
  for (const l of lines) tokens += l.split(' ').length;
  if (tokens < 0) throw new Error('unreachable');
  return rate(lines.length, t0);
}

interface Mined {
  rate: Rate;
  templates: number;
  evicted: number;
  /** templates compared with a message per line (cache misses only) */
  comparedPerLine: number;
  heapMB: number;
}

function ours(lines: string[]): Mined {
  const miner = new TemplateMiner();
  const now = Date.now();
  const opts = { host: 'bench', now };
  let params = 0;
  const t0 = mark();
  for (const l of lines) {
    // as the stage does: the message is mined in place, inside its line
    const p = parseLine(l, opts);
    const at = p.messageAt;
    params += (at >= 0 ? miner.add(l, at, at + p.message.length) : miner.add(p.message)).params.length;
  }
  const r = rate(lines.length, t0);
  if (params < 0) throw new Error('unreachable');
  const st = miner.stats();
  return {
    rate: r,
    templates: st.templates,
    evicted: st.evicted,
    comparedPerLine: Number((st.compared / lines.length).toFixed(2)),
    heapMB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
  };
}

/** Drain3 mining the first `n` lines in Python (process CPU time of the mining alone). */
function drain3(lines: string[], n: number): { linesPerCpuSec: number; lines: number } | { notRun: string } {
  const script = new URL('drain3_baseline.py', import.meta.url).pathname;
  const r = spawnSync(process.env.PYTHON ?? 'python3', [script, '--time'], {
    input: `${lines.slice(0, n).join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (r.error) return { notRun: `python3 not runnable (${(r.error as NodeJS.ErrnoException).code})` };
  if (r.status === 3) return { notRun: 'drain3 not installed (pip install drain3)' };
  if (r.status !== 0) return { notRun: `drain3 failed: ${r.stderr.slice(0, 200)}` };
  const o = JSON.parse(r.stdout) as { lines: number; cpuSeconds: number };
  return { linesPerCpuSec: Math.round(o.lines / o.cpuSeconds), lines: o.lines };
}

/** n lines of random bytes, decoded as a file reader decodes them (U+FFFD for invalid UTF-8). */
function randomByteLines(n: number): string[] {
  const out: string[] = [];
  while (out.length < n) {
    for (const l of randomBytes(4 << 20)
      .toString('utf8')
      .split('\n')) {
      if (l.length > 0 && out.length < n) out.push(Buffer.from(l).toString('utf8'));
    }
  }
  return out;
}

/** n lines of 120 random printable ASCII characters (valid UTF-8: these pass the decoder). */
function randomAsciiLines(n: number): string[] {
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const b = randomBytes(120);
    for (let k = 0; k < b.length; k++) b[k] = 32 + (b[k]! % 95);
    out[i] = b.toString('latin1');
  }
  return out;
}

const avgChars = (lines: string[]) => lines.reduce((a, l) => a + l.length, 0) / lines.length;

/** One round of bench/publish.ts (npm run bench -- publish has the rounds and the kafkajs baseline). */
async function publishBench(base: string[], n: number) {
  const { file, bytes, remove } = linesFile(base, n);
  try {
    const r = await publishRound(file, n);
    return {
      lines: n,
      bytes,
      ...r,
      ratioPublishLogsToKcat: Number((r.publishLogsLinesPerSec / r.kcatLinesPerSec).toFixed(3)),
      ratioCliToKcat: Number((r.cliLinesPerSec / r.kcatLinesPerSec).toFixed(3)),
      note: 'all gzip, acks=all, content-type header; fixed key except publishLogsHostPerLine (key parsed from each line); the CLI figure includes process start-up',
    };
  } finally {
    remove();
  }
}

export default async function ingestBench(args: string[]): Promise<Record<string, unknown>> {
  const n = Number(flag(args, 'lines') ?? '500000');
  const rounds = Number(flag(args, 'rounds') ?? '3');
  const inputs: { name: string; base: string[] }[] = [];
  const input = flag(args, 'input');
  if (input)
    inputs.push({
      name: basename(input),
      base: readFileSync(resolve(input), 'utf8')
        .split('\n')
        .filter((l) => l.trim().length > 0),
    });
  const loghub = flag(args, 'loghub');
  if (loghub)
    inputs.push({
      name: 'Loghub Linux_2k',
      base: readFileSync(join(resolve(loghub), 'Linux_2k.log'), 'utf8')
        .split('\n')
        .filter(Boolean),
    });
  const demo = new DemoLog({ seed: 64000, now: () => Date.UTC(2026, 10, 30, 10) });
  inputs.push({
    name: 'demo kernel stream (ingest/demo-stream.ts)',
    base: Array.from({ length: 20_000 }, () => demo.next()),
  });
  // each input's lines are made just before its run and dropped after it: a heap holding every
  // input at once would tax the collector of every run
  const normal = inputs.map((x) => ({ name: x.name, make: () => repeatLines(x.base, n) }));
  const entropy = [
    { name: 'random bytes (decoded with U+FFFD)', make: () => randomByteLines(n) },
    { name: 'random printable ASCII, 120 chars', make: () => randomAsciiLines(n) },
  ];
  const primary = normal[0]!;
  const chars = new Map<string, number>();

  const runs = new Map<string, Mined[]>();
  const splitRuns: Rate[] = [];
  const regexRuns: Rate[] = [];
  const push = (k: string, m: Mined) => runs.set(k, [...(runs.get(k) ?? []), m]);
  const runOnce = (x: { name: string; make: () => string[] }, key = x.name) => {
    const lines = x.make();
    chars.set(key, avgChars(lines));
    if (x === primary && key === x.name) {
      splitRuns.push(splitFloor(lines));
      regexRuns.push(regexParse(lines));
    }
    push(key, ours(lines));
  };
  // Normal inputs first, interleaved round by round so load from other processes hits all alike;
  // then the high-entropy ones; then the first input once more: V8 recompiles the hot path for
  // the shapes random input brings, and that costs normal lines afterwards (reported apart).
  for (let r = 0; r < rounds; r++) for (const x of normal) runOnce(x);
  for (let r = 0; r < rounds; r++) for (const x of entropy) runOnce(x);
  const AFTER = `${primary.name}, after the high-entropy runs`;
  for (let r = 0; r < rounds; r++) runOnce(primary, AFTER);
  const med = (rs: Rate[], k: keyof Rate) => median(rs.map((x) => x[k]));
  const summary = (x: { name: string }) => {
    const ms = runs.get(x.name)!;
    const last = ms[ms.length - 1]!;
    const cpu = med(
      ms.map((m) => m.rate),
      'cpu',
    );
    return {
      input: x.name,
      lines: n,
      avgChars: Math.round(chars.get(x.name)!),
      linesPerCpuSec: cpu,
      linesPerSec: med(
        ms.map((m) => m.rate),
        'wall',
      ),
      usPerLine: Number((1e6 / cpu).toFixed(3)),
      mbPerCpuSec: Number(((cpu * chars.get(x.name)!) / 2 ** 20).toFixed(1)),
      templates: last.templates,
      evicted: last.evicted,
      comparedPerLine: last.comparedPerLine,
      heapMB: last.heapMB,
      runs: ms.map((m) => m.rate),
    };
  };
  const normalOut = [...normal, { name: AFTER }].map(summary);
  const entropyOut = entropy.map(summary);
  const p = normalOut[0]!;
  const ratios = entropyOut.map((e) => ({
    input: e.input,
    against: p.input,
    costPerLine: Number((p.linesPerCpuSec / e.linesPerCpuSec).toFixed(2)),
    costPerByte: Number(((p.linesPerCpuSec * p.avgChars) / (e.linesPerCpuSec * e.avgChars)).toFixed(2)),
    target: '<= 2 x the cost of a normal line',
  }));
  const d3 = args.includes('--no-drain3')
    ? { notRun: '--no-drain3' }
    : drain3(repeatLines(inputs[0]!.base, 20_000), 20_000);
  const parseMine = {
    lines: n,
    rounds,
    inputs: normalOut,
    highEntropy: entropyOut,
    highEntropyCost: ratios,
    baselineSplit: { input: primary.name, linesPerCpuSec: med(splitRuns, 'cpu'), runs: splitRuns },
    baselineRegex: { input: primary.name, linesPerCpuSec: med(regexRuns, 'cpu'), runs: regexRuns },
    baselineDrain3: { input: primary.name, ...d3 },
    ratioToSplitCpu: Number((p.linesPerCpuSec / med(splitRuns, 'cpu')).toFixed(3)),
    ratioToRegexCpu: Number((p.linesPerCpuSec / med(regexRuns, 'cpu')).toFixed(3)),
    ratioToDrain3Cpu:
      'linesPerCpuSec' in d3 ? Number((p.linesPerCpuSec / d3.linesPerCpuSec).toFixed(1)) : null,
    loadAverage: loadavg().map((x) => Number(x.toFixed(2))),
    target: { linesPerCpuSec: 500_000, highEntropyCostPerLine: 2 },
  };
  for (const x of [...normalOut, ...entropyOut])
    console.error(
      `parse+mine ${x.input}: ${x.linesPerCpuSec} lines/CPU-s (${x.usPerLine} us/line, ${x.templates} templates, ${x.evicted} evicted, ${x.comparedPerLine} compared/line)`,
    );
  for (const r of ratios)
    console.error(
      `  ${r.input}: ${r.costPerLine} x the cost of a line of ${r.against} per line, ${r.costPerByte} x per byte`,
    );
  console.error(
    `  baselines on ${primary.name}: split ${parseMine.baselineSplit.linesPerCpuSec}, regex ${parseMine.baselineRegex.linesPerCpuSec}, Drain3 ${'linesPerCpuSec' in d3 ? d3.linesPerCpuSec : d3.notRun} lines/CPU-s`,
  );
  if (args.includes('--no-kafka')) return { parseMine };
  const publishBase = inputs[0]!.base;
  const publish = await publishBench(publishBase, Number(flag(args, 'publish-lines') ?? '200000'));
  console.error(
    `publish: publish-logs ${publish.publishLogsLinesPerSec} lines/s, kcat -P ${publish.kcatLinesPerSec} lines/s`,
  );
  return { parseMine, publish };
}
