// End to end, with real third-party clients at every edge: kcat publishes real kernel lines,
// `nc` reads the feeder, `redis-cli` the export, the conf file is read back, a device reply lands
// in the persisted queue, `virgo replay` puts it on Kafka and `kcat -C` reads it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { KafkaBus, namespaced, TOPICS, topicSpecs } from '../../bus/index.ts';
import { type Pipeline, startPipeline } from '../../cli/pipeline.ts';
import { openSegmentLog } from '../../queue-bridge/index.ts';
import { codecFor } from '../../schemas/index.ts';
import { cleanupAfterEach } from '../helpers/cleanup.ts';
import { UFW_SAMPLES } from '../helpers/fixtures.ts';
import { kcatConsume, kcatProduce, kcatProduceFile, kcatRecords } from '../helpers/kcat.ts';
import { BROKERS, REDIS_URL, run, unique, waitFor } from '../helpers/services.ts';

/** The most frequent SRC= per host in the file: the oracle for ufw.top_src_ip. */
function topSrcByHost(text: string): Map<string, string> {
  const counts = new Map<string, Map<string, number>>();
  for (const line of text.split('\n')) {
    const host = line.split(/\s+/)[3];
    const src = /SRC=([0-9.]+)/.exec(line)?.[1];
    if (!host || !src) continue;
    const m = counts.get(host) ?? new Map<string, number>();
    m.set(src, (m.get(src) ?? 0) + 1);
    counts.set(host, m);
  }
  const out = new Map<string, string>();
  for (const [host, m] of counts) {
    const sorted = [...m].sort((a, b) => b[1] - a[1]);
    // only hosts with a clear winner make a sharp assertion
    if (sorted.length === 1 || sorted[0]![1] > sorted[1]![1]) out.set(host, sorted[0]![0]);
  }
  return out;
}

/** `nc` to the feeder, asking for one host; resolves once `want` has been printed. */
function ncUntil(port: number, host: string, want: string): { seen: Promise<string[]>; proc: ChildProcess } {
  const proc = spawn('nc', ['127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'ignore'] });
  proc.stdin!.write(`KERNEL_ANALYTICS_STREAMING_START\nHOST ${host}\n`);
  const lines: string[] = [];
  const seen = new Promise<string[]>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      lines.push(l);
      if (l === want) resolve(lines);
    });
    proc.on('exit', () => reject(new Error(`nc exited before "${want}"; got ${lines.join(' | ')}`)));
  });
  return { seen, proc };
}

const ANY_PORTS = {
  feederPort: 0,
  queuePort: 0,
  zmq: false as const,
  metrics: false as const,
  driverPorts: { cpupooling: 0, eventnet: 0, memorypooling: 0, cloudfs: 0 },
};

describe('the whole pipeline, end to end', () => {
  const cleanup = cleanupAfterEach();

  const expected = topSrcByHost(readFileSync(UFW_SAMPLES, 'utf8'));
  const [host, top] = [...expected].sort((a, b) => a[0].localeCompare(b[0]))[0]!;

  async function checkQueueAndReplay(stateDir: string, ns: string): Promise<void> {
    // a device reply is in the persisted queue …
    const dir = join(stateDir, 'kingcobra');
    const log = await openSegmentLog(dir, { readOnly: true });
    const records: { id: string; kind: string; payload: string }[] = [];
    for await (const r of log.read()) records.push(r.message);
    await log.close();
    const replies = records.filter((r) => r.kind === 'REPLY');
    expect(replies.length).toBeGreaterThan(0);
    // … `virgo replay` puts it on Kafka and kcat reads it back, in order
    const topic = `${ns}.${TOPICS.kingcobraRequests}`;
    const r = await run(process.execPath, [
      'bin/virgo.js',
      'replay',
      '--queue',
      dir,
      '--brokers',
      BROKERS.join(','),
      '--topic',
      topic,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const k = await kcatConsume(topic, '%k\n');
    expect(k.code).toBe(0);
    expect(k.stdout.trim().split('\n')).toEqual(records.map((x) => x.id));
  }

  it('distributed: kcat -P → Kafka → learners → nc on the feeder, redis-cli, conf file → queue → replay → kcat -C', async () => {
    const ns = unique('e2e');
    const stateDir = mkdtempSync(join(tmpdir(), 'virgo-e2e-'));
    cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const redisPrefix = `${ns}:analytics`;
    const p: Pipeline = await startPipeline({
      brokers: BROKERS,
      namespace: ns,
      redisUrl: REDIS_URL,
      redisPrefix,
      input: 'none',
      stateDir,
      ...ANY_PORTS,
    });
    cleanup.push(() => p.close());

    const k = await kcatProduceFile(`${ns}.${TOPICS.kernelLogs}`, UFW_SAMPLES);
    expect(k.code, k.stderr).toBe(0);

    const nc = ncUntil(p.feeder.port, host, `ufw.top_src_ip=${top}`);
    cleanup.push(() => void nc.proc.kill());
    await nc.seen;

    await waitFor(async () => {
      const r = await run('redis-cli', ['-u', REDIS_URL, 'HGET', `${redisPrefix}:${host}`, 'ufw.top_src_ip']);
      return r.stdout.trim() === top;
    }, `redis-cli HGET ${redisPrefix}:${host}`);

    // one conf file per host, as the kernel module of that machine reads it
    const confPath = join(stateDir, 'conf', `${host}.conf`);
    await waitFor(() => /(^|,)ufw\.top_src_ip=/.test(readFileSync(confPath, 'utf8')), 'the conf file');
    const confTop = /(?:^|,)ufw\.top_src_ip=([^,\n]+)/.exec(readFileSync(confPath, 'utf8'))![1]!;
    expect([...expected.values(), ...topSrcCandidates(UFW_SAMPLES)]).toContain(confTop);

    await waitFor(() => p.queue.stats().kingcobra.replied > 0, 'a device reply in the queue');
    await p.close();
    await checkQueueAndReplay(stateDir, ns);
  });

  it('embedded: the same flow with no Kafka and no Redis in the pipeline', async () => {
    const ns = unique('e2e-embedded');
    const stateDir = mkdtempSync(join(tmpdir(), 'virgo-e2e-'));
    cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const p = await startPipeline({ input: UFW_SAMPLES, stateDir, ...ANY_PORTS });
    cleanup.push(() => p.close());
    expect(p.mode).toBe('embedded');

    const nc = ncUntil(p.feeder.port, host, `ufw.top_src_ip=${top}`);
    cleanup.push(() => void nc.proc.kill());
    await nc.seen;
    const confPath = join(stateDir, 'conf', `${host}.conf`);
    await waitFor(() => /(^|,)ufw\.top_src_ip=/.test(readFileSync(confPath, 'utf8')), 'the conf file');
    await waitFor(() => p.queue.stats().kingcobra.replied > 0, 'a device reply in the queue');
    await p.close();
    await checkQueueAndReplay(stateDir, ns);
  });

  it('two `virgo learn` processes in one group split the partitions and emit every host once', async () => {
    const ns = unique('e2e-group');
    const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'virgo-learn-')));
    cleanup.push(() => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });
    const admin = new KafkaBus({ brokers: BROKERS });
    cleanup.push(() => admin.close());
    await namespaced(admin, ns).ensureTopics(topicSpecs(4));

    const printed: string[][] = [[], []];
    const procs = dirs.map((d, i) => {
      const c = spawn(
        process.execPath,
        [
          'bin/virgo.js',
          'learn',
          '--brokers',
          BROKERS.join(','),
          '--state-dir',
          d,
          '--learners',
          'ufw',
          '--print',
          '--from-beginning',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VIRGO_NAMESPACE: ns } },
      );
      createInterface({ input: c.stdout! }).on('line', (l) => printed[i]!.push(l));
      return c;
    });
    cleanup.push(async () => {
      for (const c of procs) c.kill('SIGTERM');
      await Promise.all(
        procs.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))),
      );
    });

    // Both members in the group before any line, so the split is Kafka's and not a race.
    const group = `${ns}.virgo-learners`;
    const kadmin = admin.kafka.admin();
    await kadmin.connect();
    cleanup.push(() => kadmin.disconnect());
    await waitFor(
      async () => {
        const d = await kadmin.describeGroups([group]);
        const g = d.groups[0];
        return g?.state === 'Stable' && g.members.length === 2;
      },
      'both learners in the group',
      60_000,
      250,
    );

    const hosts = Array.from({ length: 12 }, (_, i) => `host-${i}`);
    const lines = hosts.flatMap((h, i) =>
      Array.from(
        { length: 3 },
        () =>
          `${h}:Nov 23 19:37:32 ${h} kernel: [ 1.000000] [UFW BLOCK] IN=eth0 OUT= SRC=10.0.${i}.9 DST=10.1.0.1 LEN=40 TTL=41 PROTO=TCP SPT=4242 DPT=22 SYN URGP=0`,
      ),
    );
    const k = await kcatProduce(`${ns}.${TOPICS.kernelLogs}`, `${lines.join('\n')}\n`, ['-K', ':']);
    expect(k.code, k.stderr).toBe(0);

    const analyticsTopic = `${ns}.${TOPICS.kernelAnalytics}`;
    const codec = codecFor('AnalyticsVariable');
    const readAll = async () => (await kcatRecords(analyticsTopic)).map((r) => codec.decode(r.value));
    const vars = await waitFor(
      async () => {
        const all = await readAll();
        const tops = all.filter((v) => v.key === 'ufw.top_src_ip');
        return hosts.every((h) => tops.some((v) => v.host === h)) ? tops : undefined;
      },
      'ufw.top_src_ip for every host',
      60_000,
      500,
    );
    // every host's variable exactly once, with the right value
    for (const [i, h] of hosts.entries()) {
      const mine = vars.filter((v) => v.host === h);
      expect(mine.map((v) => v.value)).toEqual([`10.0.${i}.9`]);
    }
    // and both processes did part of the work, no host by both
    const hostsOf = (i: number) =>
      new Set(printed[i]!.filter((l) => l.includes('ufw.top_src_ip')).map((l) => l.split('/')[0]!));
    const [a, b] = [hostsOf(0), hostsOf(1)];
    expect(a.size).toBeGreaterThan(0);
    expect(b.size).toBeGreaterThan(0);
    expect([...a].filter((h) => b.has(h))).toEqual([]);
  });
});

/** Every SRC in the file: the conf file keeps the latest value per key across hosts. */
function topSrcCandidates(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/SRC=([0-9.]+)/g)].map((m) => m[1]!);
}
