// npm run bench -- scale [--hosts N] [--hours H]: `virgo learn` scaled out on the real broker
// (docs/design.md §7.6). A seeded fleet log (test/helpers/fleet-log.ts: UFW, network and load
// lines of N hosts, H hours of event time) on 12 partitions, learnt by 1 and by 2 instances
// (exactly-once, each its own state dir), each run in a namespace of its own:
//   - lines/s: log lines over the wall time from spawning the instances to every offset committed
//     and nothing held (startup included), and the steady rate between 10 % and 90 % of the lines
//     taken (sampled from /health every 250 ms);
//   - changelog bytes per 1,000 lines: compressed host state the instances wrote to
//     virgo.learner-state (their own count, virgo_learner_state_bytes_total), per 1,000 lines;
//   - state size per host: the compacted view of the changelog (latest record per key) per host;
//   - restore time: 1 instance: a fresh one (empty state dir) taking all 12 partitions from the
//     changelog topic, then the first one again on its own state dir (its local copy is as new
//     as the topic); 2 instances: one SIGKILLed, the survivor taking its partitions.
// Restore figures are the instance's own (time inside the assignment: changelog read to the
// partition's end and hosts imported) beside the wall time from spawn (or the SIGKILL: the
// broker's session timeout, 10 s, comes first) to that assignment done. The changelog bytes are
// of a replay at full speed: a live stream commits every interval, so writes parts more often.

import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followFromStart, KafkaBus, namespaced, TOPICS, topicSpecs } from '../bus/index.ts';
import { publishLogs } from '../ingest/index.ts';
import { STATE_TOPIC } from '../learners/changelog.ts';
import type { ExactlyOnceStats } from '../learners/exactly-once.ts';
import { setLogLevel } from '../runtime/log.ts';
import { Child } from '../test/helpers/child.ts';
import { learnersCommittedAtEnd } from '../test/helpers/committed.ts';
import { fleetLog } from '../test/helpers/fleet-log.ts';
import { BENCH_BROKERS, median } from './util.ts';

const PARTITIONS = 12;

interface Health {
  ingest: { lines: number } | null;
  held: number;
  outbox: number;
  exactlyOnce: ExactlyOnceStats | null;
}

class Learn {
  child: Child;
  port = 0;
  readonly spawnedAt = Date.now();
  constructor(ns: string, dir: string, label: string) {
    this.child = Child.virgo(
      [
        'learn',
        '--brokers',
        BENCH_BROKERS.join(','),
        '--state-dir',
        dir,
        '--learners',
        'ufw,netbw,load',
        '--from-beginning',
        '--metrics-port',
        '0',
      ],
      {
        VIRGO_NAMESPACE: ns,
        VIRGO_LOG_FORMAT: 'json',
        VIRGO_LOG_LEVEL: 'info',
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
      },
      label,
    );
  }
  async ready(): Promise<number> {
    const m = await this.child.waitLine(/serving \/metrics and \/health.*"port":(\d+)/, 180_000);
    this.port = Number(m[1]);
    await this.child.waitLine(/virgo learn running/, 180_000);
    return Date.now();
  }
  async health(): Promise<Health> {
    return (await (await fetch(`http://127.0.0.1:${this.port}/health`)).json()) as Health;
  }
  eos(h: Health): ExactlyOnceStats {
    if (!h.exactlyOnce) throw new Error('virgo learn runs without exactly-once');
    return h.exactlyOnce;
  }
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Until every offset is committed and nothing held; the lines the instances took over time. */
async function done(kafka: KafkaBus, ns: string, learns: Learn[]): Promise<[number, number][]> {
  const samples: [number, number][] = [];
  await until(async () => {
    let lines = 0;
    let idle = true;
    for (const l of learns) {
      const h = await l.health();
      lines += h.ingest?.lines ?? 0;
      if (h.held > 0 || h.outbox > 0) idle = false;
    }
    samples.push([Date.now(), lines]);
    return idle && (await learnersCommittedAtEnd(kafka, ns));
  }, 'every offset committed and nothing held');
  return samples;
}

/** lines/s between 10 % and 90 % of the lines taken: the rate once started, before the tail. */
function steadyRate(samples: [number, number][], lines: number): number {
  const at = (f: number) => samples.find(([, n]) => n >= f * lines);
  const a = at(0.1);
  const b = at(0.9);
  if (!a || !b || b[0] <= a[0]) return Number.NaN;
  return Math.round((b[1] - a[1]) / ((b[0] - a[0]) / 1000));
}

/** The changelog's compacted view: compressed bytes of each host's latest records. */
async function stateSizes(kafka: KafkaBus, ns: string): Promise<{ perHost: number[]; shared: number }> {
  const latest = new Map<string, number>();
  const f = await followFromStart(namespaced(kafka, ns), {
    topics: [STATE_TOPIC],
    groupId: `bench-scale-read-${randomUUID().slice(0, 8)}`,
    timeoutMs: 120_000,
    onBatch: async (b) => {
      for (const m of b) {
        const k = m.key?.toString() ?? '';
        if (m.value === null) latest.delete(k);
        else latest.set(k, m.value.length);
      }
    },
  });
  if (!(await f.caughtUp)) throw new Error('changelog not read to its end');
  await f.sub.close();
  const hosts = new Map<string, number>();
  let shared = 0;
  for (const [k, n] of latest) {
    const host = k.slice(0, k.indexOf('/'));
    if (host.startsWith('~')) shared += n;
    else hosts.set(host, (hosts.get(host) ?? 0) + n);
  }
  return { perHost: [...hosts.values()], shared };
}

/** The first assignment after `since` with partitions in it: its restore, own and wall time. */
async function restoreAfter(l: Learn, since: number, from: number) {
  let got: ExactlyOnceStats['assignments'][number] | undefined;
  let eos: ExactlyOnceStats | undefined;
  await until(async () => {
    eos = l.eos(await l.health());
    got = eos.assignments.find((x) => x.at >= since && x.assigned.length > 0);
    return got !== undefined;
  }, 'a restoring assignment');
  return {
    partitions: got!.assigned.length,
    hosts: got!.restoredHosts.length,
    restored: eos!.restored,
    seconds: got!.seconds,
    wallSeconds: (got!.at - from) / 1000,
  };
}

async function run(kafka: KafkaBus, file: string, lines: number, instances: 1 | 2) {
  const ns = `bench-scale-${instances}-${randomUUID().slice(0, 8)}`;
  const bus = namespaced(kafka, ns);
  await bus.ensureTopics(topicSpecs(PARTITIONS));
  await publishLogs({ bus, source: file, topic: TOPICS.kernelLogs, ensureTopic: false });
  const dirs = Array.from({ length: instances }, () => mkdtempSync(join(tmpdir(), 'bench-scale-')));
  const learns = dirs.map((d, i) => new Learn(ns, d, `learn-${i}`));
  const readyAt = Math.max(...(await Promise.all(learns.map((l) => l.ready()))));
  const startupSeconds = (readyAt - learns[0]!.spawnedAt) / 1000;
  const samples = await done(kafka, ns, learns);
  const seconds = (Date.now() - learns[0]!.spawnedAt) / 1000;
  const eos = await Promise.all(learns.map(async (l) => l.eos(await l.health())));
  const stateBytes = eos.reduce((n, e) => n + e.stateBytes, 0);
  const out: Record<string, unknown> = {
    instances,
    lines,
    // from spawn (startup included) to every offset committed and nothing held
    seconds,
    linesPerSec: Math.round(lines / seconds),
    steadyLinesPerSec: steadyRate(samples, lines),
    startupSeconds,
    transactions: eos.reduce((n, e) => n + e.transactions, 0),
    changelogBytes: stateBytes,
    changelogBytesPer1000Lines: Math.round((stateBytes / lines) * 1000),
    changelogRecords: eos.reduce((n, e) => n + e.stateRecords, 0),
  };
  const sizes = await stateSizes(kafka, ns);
  out.statePerHostBytes = {
    hosts: sizes.perHost.length,
    median: median(sizes.perHost),
    max: Math.max(...sizes.perHost),
    sharedPartsBytes: sizes.shared,
  };
  if (instances === 1) {
    await learns[0]!.child.stop();
    // a fresh instance: every host from the changelog topic
    const fresh = new Learn(ns, mkdtempSync(join(tmpdir(), 'bench-scale-')), 'learn-fresh');
    await fresh.ready();
    out.restoreFromTopic = await restoreAfter(fresh, fresh.spawnedAt, fresh.spawnedAt);
    await fresh.child.stop();
    // the first instance again: its local copy is as new as the topic
    const again = new Learn(ns, dirs[0]!, 'learn-again');
    await again.ready();
    out.restoreFromLocalCopy = await restoreAfter(again, again.spawnedAt, again.spawnedAt);
    await again.child.stop();
  } else {
    const [a, b] = learns as [Learn, Learn];
    const killedAt = Date.now();
    await b.child.kill9();
    out.restoreAfterSigkill = await restoreAfter(a, killedAt, killedAt);
    await a.child.stop();
  }
  return out;
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('warn');
  const arg = (name: string, dflt: number) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const hosts = arg('hosts', 50);
  const hours = arg('hours', 10);
  const log = fleetLog({ hosts, hours, meanGapSec: 4, seed: 29 });
  const file = join(mkdtempSync(join(tmpdir(), 'bench-scale-')), 'kern.log');
  writeFileSync(file, `${log.lines.join('\n')}\n`);
  const kafka = new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench-scale' });
  try {
    const one = await run(kafka, file, log.lines.length, 1);
    const two = await run(kafka, file, log.lines.length, 2);
    return { hosts, hours, partitions: PARTITIONS, lines: log.lines.length, one, two };
  } finally {
    await kafka.close();
  }
}
