// npm run bench -- ingest --loghub DIR [--lines N] [--publish-lines N] [--rounds N] [--no-kafka]
//
// 1. parse + mine on one core: Loghub's Linux_2k lines repeated to >= 1M, through parseLine and
//    TemplateMiner.add (the stage's hot path), against two baselines in the same run: a bare
//    split(' ') per line (what any tokenising costs on this machine), and a classic regex parser
//    (a syslog header regex plus Drain-style regex masking), the "regex storm" we avoid.
// 2. publish to a real broker: virgo publish-logs (in-process and as the CLI) next to `kcat -P`
//    publishing the same file (gzip, acks=all, a fixed key, content-type header) in the same run.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KafkaBus } from '../bus/index.ts';
import { parseLine, publishLogs, TemplateMiner } from '../ingest/index.ts';
import { BENCH_BROKERS, median, requireDataDir, timeCommand } from './util.ts';

function flag(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
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

function ours(lines: string[]): { rate: Rate; templates: number } {
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
  return { rate: r, templates: miner.size };
}

async function publishBench(base: string[], n: number) {
  const brokers = BENCH_BROKERS;
  const dir = mkdtempSync(join(tmpdir(), 'virgo-bench-ingest-'));
  const file = join(dir, 'linux.log');
  writeFileSync(file, `${repeatLines(base, n).join('\n')}\n`);
  const bytes = readFileSync(file).length;
  const stamp = Date.now().toString(36);
  const topics = {
    lib: `bench-ingest-lib-${stamp}`,
    libHost: `bench-ingest-libhost-${stamp}`,
    cli: `bench-ingest-cli-${stamp}`,
    kcat: `bench-ingest-kcat-${stamp}`,
  };
  const bus = new KafkaBus({ brokers, clientId: 'bench-ingest' });
  try {
    await bus.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: 4 })));
    // kcat first and last, so both sides see the broker in the same state
    const kcatArgs = (topic: string) => [
      '-P',
      '-b',
      brokers.join(','),
      '-t',
      topic,
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
    ];
    const kcat1 = await timeCommand('kcat', kcatArgs(topics.kcat));
    let t0 = process.hrtime.bigint();
    const lib = await publishLogs({
      bus,
      source: file,
      topic: topics.lib,
      host: 'combo',
      ensureTopic: false,
    });
    const libSecs = Number(process.hrtime.bigint() - t0) / 1e9;
    t0 = process.hrtime.bigint();
    const libHost = await publishLogs({ bus, source: file, topic: topics.libHost, ensureTopic: false });
    const libHostSecs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cliSecs = await timeCommand(process.execPath, [
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
    const kcat2 = await timeCommand('kcat', kcatArgs(topics.kcat));
    const kcatSecs = Math.min(kcat1, kcat2);
    const counts = await Promise.all(
      Object.values(topics).map(async (t) =>
        (await bus.topicOffsets(t)).reduce((a, o) => a + Number(o.high) - Number(o.low), 0),
      ),
    );
    if (lib.lines !== n || libHost.lines !== n)
      throw new Error(`published ${lib.lines}/${libHost.lines} of ${n}`);
    const perSec = (s: number) => Math.round(n / s);
    return {
      lines: n,
      bytes,
      topicMessages: Object.fromEntries(Object.keys(topics).map((k, i) => [k, counts[i]])),
      kcatLinesPerSec: perSec(kcatSecs),
      kcatRuns: [kcat1, kcat2].map((s) => Number(s.toFixed(3))),
      publishLogsLinesPerSec: perSec(libSecs),
      publishLogsHostPerLineLinesPerSec: perSec(libHostSecs),
      cliLinesPerSec: perSec(cliSecs),
      cliSeconds: Number(cliSecs.toFixed(3)),
      ratioPublishLogsToKcat: Number((kcatSecs / libSecs).toFixed(3)),
      ratioCliToKcat: Number((kcatSecs / cliSecs).toFixed(3)),
      note: 'all gzip, acks=all, content-type header; fixed key except publishLogsHostPerLine (key parsed from each line); the CLI figure includes process start-up',
    };
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function ingestBench(args: string[]): Promise<Record<string, unknown>> {
  const dir = resolve(requireDataDir(args, 'loghub', 'bench ingest', 'Linux_2k.log'));
  const n = Number(flag(args, 'lines', '1000000'));
  const rounds = Number(flag(args, 'rounds', '3'));
  const base = readFileSync(join(dir, 'Linux_2k.log'), 'utf8').split('\n').filter(Boolean);
  const lines = repeatLines(base, n);

  const oursRuns: Rate[] = [];
  const splitRuns: Rate[] = [];
  const regexRuns: Rate[] = [];
  let templates = 0;
  for (let r = 0; r < rounds; r++) {
    // interleaved, so load from other processes hits all three alike
    splitRuns.push(splitFloor(lines));
    const o = ours(lines);
    oursRuns.push(o.rate);
    templates = o.templates;
    regexRuns.push(regexParse(lines));
  }
  const med = (rs: Rate[], k: keyof Rate) => median(rs.map((r) => r[k]));
  const parseMine = {
    lines: n,
    rounds,
    linesPerSec: med(oursRuns, 'wall'),
    linesPerCpuSec: med(oursRuns, 'cpu'),
    runs: oursRuns,
    templates,
    baselineSplit: {
      linesPerSec: med(splitRuns, 'wall'),
      linesPerCpuSec: med(splitRuns, 'cpu'),
      runs: splitRuns,
    },
    baselineRegex: {
      linesPerSec: med(regexRuns, 'wall'),
      linesPerCpuSec: med(regexRuns, 'cpu'),
      runs: regexRuns,
    },
    ratioToSplitCpu: Number((med(oursRuns, 'cpu') / med(splitRuns, 'cpu')).toFixed(3)),
    ratioToRegexCpu: Number((med(oursRuns, 'cpu') / med(regexRuns, 'cpu')).toFixed(3)),
    loadAverage: loadavg().map((x) => Number(x.toFixed(2))),
    target: 500_000,
  };
  console.error(
    `parse+mine: ${parseMine.linesPerCpuSec} lines/CPU-s, ${parseMine.linesPerSec} lines/s wall (split floor ${parseMine.baselineSplit.linesPerCpuSec}, regex parser ${parseMine.baselineRegex.linesPerCpuSec} lines/CPU-s)`,
  );
  if (args.includes('--no-kafka')) return { parseMine };
  const publish = await publishBench(base, Number(flag(args, 'publish-lines', '200000')));
  console.error(
    `publish: publish-logs ${publish.publishLogsLinesPerSec} lines/s, kcat -P ${publish.kcatLinesPerSec} lines/s`,
  );
  return { parseMine, publish };
}
