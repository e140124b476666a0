// The reliability suite's long runs (npm run soak): the same faults as test/reliability, again
// and again under a steady stream, and the feeder under 1,000 clients for minutes. Results go to
// test/reliability/results/latest/soak.json (git-ignored; `npm run reliability:record -- --soak`
// records a run as the committed soak.json). Scale with VIRGO_SOAK_CYCLES (broker faults, default 6),
// VIRGO_SOAK_KILLS (process kills, default 8) and VIRGO_SOAK_SECONDS (load, default 120).
import { connect, type Socket } from 'node:net';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BusError, KafkaBus, namespaced, TOPICS } from '../../bus/index.ts';
import { type Pipeline, startPipeline } from '../../cli/pipeline.ts';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { codecFor } from '../../schemas/index.ts';
import { Child } from '../helpers/child.ts';
import { kcatRecords } from '../helpers/kcat.ts';
import { LineConn } from '../helpers/line-client.ts';
import { startPrivateKafka } from '../helpers/private-kafka.ts';
import { testScope } from '../helpers/scope.ts';
import { unique, waitFor } from '../helpers/services.ts';
import { type HostAnswer, hostAnswer, ufwMessages } from '../reliability/lib/lines.ts';
import { storedRequests } from '../reliability/lib/queue-log.ts';
import { Report } from '../reliability/lib/summary.ts';

const CYCLES = Number(process.env.VIRGO_SOAK_CYCLES ?? 6);
const KILLS = Number(process.env.VIRGO_SOAK_KILLS ?? 8);
const SECONDS = Number(process.env.VIRGO_SOAK_SECONDS ?? 120);
const report = new Report(import.meta.url, 'soak.json');
const { cleanup, tempDir } = testScope(120_000);

const has = (p: Pipeline, a: HostAnswer) =>
  p.feeder.table.get('ufw.top_src_ip', a.host) === a.ip &&
  p.feeder.table.get('ufw.top_dst_port', a.host) === String(a.port);

describe('soak: the reliability faults, repeated', () => {
  it(`broker: ${CYCLES} stops and SIGKILLs of Kafka under a steady stream`, async () => {
    const kafka = await startPrivateKafka();
    cleanup.push(() => kafka.down());
    const ns = unique('soak-broker');
    const p = await startPipeline({
      brokers: kafka.brokers,
      namespace: ns,
      input: 'none',
      stateDir: tempDir('broker'),
      learners: ['ufw'],
      drivers: [],
      devices: [],
      partitions: 2,
      feederPort: 0,
      queuePort: 0,
      zmq: false,
      metrics: false,
    });
    cleanup.push(() => p.close());
    const producer = namespaced(new KafkaBus({ brokers: kafka.brokers, retries: 1 }), ns);
    cleanup.push(() => producer.close());
    const acked: HostAnswer[] = [];
    let stop = false;
    let n = 0;
    // the stream: one host at a time, retried until acknowledged, through every outage
    const stream = (async () => {
      while (!stop) {
        const a = hostAnswer('soak', n++);
        await waitFor(
          async () => {
            try {
              await producer.publish(TOPICS.kernelLogs, ufwMessages([a]));
              return true;
            } catch (err) {
              if (!(err instanceof BusError)) throw err;
              return false;
            }
          },
          'the broker to take the next host',
          180_000,
          100,
        );
        acked.push(a);
      }
    })();
    const recovery: Record<'stop' | 'kill', number[]> = { stop: [], kill: [] };
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const before = acked.length;
      await waitFor(() => acked.length >= before + 5, 'the stream to move', 180_000);
      const how = cycle % 2 === 0 ? 'stop' : 'kill';
      if (how === 'stop') await kafka.stop();
      else await kafka.kill();
      await kafka.start();
      const upAt = Date.now();
      const mark = acked.length;
      // recovered: a host acknowledged after the restart has its variables
      await waitFor(() => acked.length > mark + 1 && has(p, acked[mark + 1]!), 'recovery', 180_000, 50);
      recovery[how].push(Date.now() - upAt);
    }
    stop = true;
    await stream;
    await waitFor(() => acked.every((a) => has(p, a)), 'every acknowledged host', 180_000, 100);
    const codec = codecFor('AnalyticsVariable');
    const out = (await kcatRecords(`${ns}.${TOPICS.kernelAnalytics}`, kafka.brokers))
      .filter((r) => r.value.length > 0)
      .map((r) => codec.decode(r.value))
      .filter((v) => v.key === 'ufw.top_src_ip');
    const lost = acked.filter((a) => !out.some((v) => v.host === a.host && v.value === a.ip)).length;
    const duplicates = out.length - new Set(out.map((v) => v.host)).size;
    for (const how of ['stop', 'kill'] as const) {
      report.fault({
        fault: `soak: kafka broker ${how === 'stop' ? 'stopped (SIGTERM)' : 'SIGKILLed'} and restarted, repeatedly`,
        injected: recovery[how].length,
        survived: lost === 0,
        recordsLost: lost,
        duplicatesSeen: duplicates,
        recoveryMs: Math.max(...recovery[how]),
        counts: { hostsAcked: acked.length, medianRecoveryMs: median(recovery[how]) },
      });
    }
    expect(lost).toBe(0);
  }, 3_600_000);

  it(`processes: virgo queue serve SIGKILLed ${KILLS} times under load`, async () => {
    const dir = tempDir('queue');
    const acked = new Set<string>();
    const recovery: number[] = [];
    for (let k = 0; k <= KILLS; k++) {
      const t = Date.now();
      const c = Child.virgo(['queue', 'serve', '--dir', dir, '--listen', '127.0.0.1:0', '--zmq', 'off']);
      cleanup.push(() => c.kill9());
      const port = Number((await c.waitLine(/^listening tcp=127\.0\.0\.1:(\d+)/))[1]);
      if (k > 0) recovery.push(Date.now() - t);
      const writers = [0, 1, 2, 3].map(async (w) => {
        const conn = await LineConn.open(port);
        for (let i = 0; ; i++) {
          const p = `k${k}-w${w}-${i}`;
          const r = await conn.request(p, 30_000).catch(() => undefined);
          if (r === undefined) return;
          if (r.startsWith('REPLY#')) acked.add(p);
        }
      });
      const before = acked.size;
      await waitFor(() => acked.size >= before + 200, 'requests under load', 60_000);
      if (k === KILLS) await c.stop();
      else await c.kill9();
      await Promise.all(writers);
    }
    const stored = await storedRequests(dir);
    const lost = [...acked].filter((p) => !stored.has(p)).length;
    const duplicates = [...stored.values()].reduce((a, c) => a + c - 1, 0);
    report.fault({
      fault: 'soak: SIGKILL virgo queue serve, repeatedly',
      injected: KILLS,
      survived: lost === 0 && duplicates === 0,
      recordsLost: lost,
      duplicatesSeen: duplicates,
      recoveryMs: Math.max(...recovery),
      counts: { acknowledged: acked.size, stored: stored.size, medianRecoveryMs: median(recovery) },
    });
    expect(lost).toBe(0);
    expect(duplicates).toBe(0);
  }, 3_600_000);

  it(`feeder: 1,000 clients for ${SECONDS} s, memory flat, every client keeps up`, async () => {
    const feeder = await startFeeder({ listen: { host: '127.0.0.1', port: 0 }, maxClients: 1_100 });
    cleanup.push(() => feeder.close());
    const clients: { sock: Socket; last: string }[] = [];
    for (let i = 0; i < 1_000; i++) {
      const sock = connect({ port: feeder.port, host: '127.0.0.1' });
      const c = { sock, last: '' };
      let rest = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => {
        const parts = (rest + d).split('\n');
        rest = parts.pop() ?? '';
        if (parts.length > 0) c.last = parts[parts.length - 1]!;
      });
      sock.on('error', () => {});
      clients.push(c);
      cleanup.push(() => sock.destroy());
    }
    await waitFor(() => feeder.stats().clients === 1_000, 'every client connected', 60_000);
    const samples: number[] = [];
    const end = Date.now() + SECONDS * 1000;
    let round = 0;
    let nextSample = Date.now();
    while (Date.now() < end) {
      for (let k = 0; k < 50; k++) feeder.update({ key: `soak.k${k}`, value: `${round}-${k}` });
      round++;
      await tick();
      if (Date.now() >= nextSample) {
        await waitFor(() => feeder.stats().queuedBytes < 1_000_000, 'the clients to drain', 60_000, 10);
        samples.push(process.memoryUsage().rss);
        nextSample = Date.now() + 1_000;
      }
    }
    feeder.update({ key: 'soak.done', value: 'yes' });
    await waitFor(
      () => clients.every((c) => c.last === 'soak.done=yes'),
      'the last update everywhere',
      60_000,
    );
    const s = feeder.stats();
    // after a warm-up third, the RSS must not keep climbing
    const warm = samples.slice(Math.floor(samples.length / 3));
    const growthMB = (Math.max(...warm) - warm[0]!) / 1024 / 1024;
    report.load({
      target: `soak: feeder, 1,000 clients for ${SECONDS} s`,
      clients: 1_000,
      slowReaders: 0,
      servedFast: clients.filter((c) => c.last === 'soak.done=yes').length,
      slowDropped: s.drops['slow-reader'] ?? 0,
      maxQueuedBytes: s.maxQueuedBytes,
      queuedBound: 1_000 * s.maxClientBuffer,
      rssGrowthMB: Math.round(growthMB),
      ms: SECONDS * 1000,
      counts: { rounds: round, updates: round * 50, linesSent: s.linesSent },
    });
    expect(s.drops['slow-reader'] ?? 0).toBe(0);
    expect(growthMB).toBeLessThan(100);
  }, 3_600_000);
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}
