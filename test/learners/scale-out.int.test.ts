// Learner state follows its partition, exactly once, on the real broker (docs/design.md §7.6):
// a fleet log of 50 hosts on 12 partitions, learnt once by a single `virgo learn` and once by two
// instances with their own state dirs, the first SIGKILLed mid-stream (no cleanup, its
// transaction maybe open) and started again later. At the end every host's variables equal the
// single instance's (exactly for ufw, within the stated tolerance for the tfjs models, which each
// instance trains on its own hosts), the hosts restored from the changelog are the hosts that
// moved, and the analytics topic read committed holds no variable change twice and loses none:
// no host/key repeats a value in a row, every host's block count only grows and ends at the
// number of block lines it logged.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Bus, followFromStart, KafkaBus, namespaced, TOPICS, topicSpecs } from '../../bus/index.ts';
import { publishLogs } from '../../ingest/index.ts';
import { STATE_TOPIC } from '../../learners/changelog.ts';
import { type AnalyticsVariable, codecFor } from '../../schemas/index.ts';
import { Child } from '../helpers/child.ts';
import { learnersCommittedAtEnd } from '../helpers/committed.ts';
import { fleetLog } from '../helpers/fleet-log.ts';
import { testScope } from '../helpers/scope.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';

const { cleanup, tempDir, track } = testScope();

const PARTITIONS = 12;
/** tfjs models: each instance trains its own on its own hosts' windows (README "Scaling out"), so
 * a host whose last window sits near the decision boundary can get another answer from a model
 * trained on half the fleet: every tfjs variable within TOLERANCE on all but OUTLIERS of the hosts.
 * Measured: 0, 2 and 4 of 50 hosts outside it in three runs; an instance whose model restarted
 * untrained would put about half the fleet outside it, which this still fails. The exactness of
 * restored state is asserted on ufw, whose answer does not depend on who learnt it. */
const TOLERANCE = { risk: 0.2, mbps: 200, execRel: 0.25 };
const OUTLIERS = 0.2;

interface Health {
  ingest: { lines: number } | null;
  held: number;
  outbox: number;
  exactlyOnce: {
    transactions: number;
    restored: { changelog: number; cache: number };
    assignments: { at: number; assigned: number[]; revoked: number[]; restoredHosts: string[] }[];
  } | null;
}

class Learn {
  child: Child;
  port = 0;
  last: Health | undefined;
  constructor(
    readonly ns: string,
    readonly dir: string,
    readonly label: string,
  ) {
    this.child = this.spawn();
  }

  /** the same command on the same state dir, started again */
  restart(): void {
    this.child = this.spawn();
  }

  private spawn(): Child {
    return track(
      Child.virgo(
        [
          'learn',
          '--brokers',
          BROKERS.join(','),
          '--state-dir',
          this.dir,
          '--learners',
          'ufw,netbw,load',
          '--from-beginning',
          '--metrics-port',
          '0',
          '--save-every',
          '3',
        ],
        { VIRGO_NAMESPACE: this.ns, VIRGO_LOG_FORMAT: 'json', VIRGO_LOG_LEVEL: 'info' },
        this.label,
      ),
    );
  }

  async ready(): Promise<void> {
    const m = await this.child.waitLine(/serving \/metrics and \/health.*"port":(\d+)/, 120_000);
    this.port = Number(m[1]);
    await this.child.waitLine(/virgo learn running/, 120_000);
  }

  /** virgo_learner_hosts_restored_total, both sources (changelog topic, local copy) */
  async restoredMetric(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    let n = 0;
    for (const m of text.matchAll(/^virgo_learner_hosts_restored_total\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
    return n;
  }

  async health(): Promise<Health> {
    const r = await fetch(`http://127.0.0.1:${this.port}/health`);
    this.last = (await r.json()) as Health;
    return this.last;
  }
}

/** Every record of the analytics topic, read committed, per host/key in order. */
async function readAnalytics(bus: Bus): Promise<Map<string, AnalyticsVariable[]>> {
  const codec = codecFor('AnalyticsVariable');
  const seq = new Map<string, AnalyticsVariable[]>();
  const f = await followFromStart(bus, {
    topics: [TOPICS.kernelAnalytics],
    groupId: unique('reader'),
    timeoutMs: 60_000,
    onBatch: async (batch) => {
      for (const m of batch) {
        if (!m.value) continue;
        const v = codec.decode(m.value);
        const k = `${v.host}/${v.key}`;
        const l = seq.get(k) ?? [];
        l.push(v);
        seq.set(k, l);
      }
    },
  });
  expect(await f.caughtUp).toBe(true);
  await f.sub.close();
  return seq;
}

/** The partition each host's lines went to, read from the log topic itself. */
async function hostPartitions(bus: Bus, hosts: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const sub = await bus.subscribe({
    topics: [TOPICS.kernelLogs],
    groupId: unique('where'),
    fromBeginning: true,
    onBatch: async (b) => {
      for (const m of b) if (m.key) out.set(m.key.toString(), m.partition);
    },
  });
  await waitFor(() => out.size >= hosts, 'every host seen in the log topic', 60_000);
  await sub.close();
  return out;
}

async function untilDone(kafka: KafkaBus, ns: string, learns: Learn[], what: string): Promise<void> {
  await waitFor(
    async () => {
      if (!(await learnersCommittedAtEnd(kafka, ns))) return false;
      for (const l of learns) {
        const h = await l.health();
        if (h.held > 0 || h.outbox > 0) return false;
      }
      return true;
    },
    `${what}: every offset committed, nothing held`,
    240_000,
    500,
  );
}

const finals = (seq: Map<string, AnalyticsVariable[]>) =>
  new Map([...seq].map(([k, l]) => [k, l[l.length - 1]!.value]));

describe('learner state follows its partition: 12 partitions, 50 hosts, two virgo learn', () => {
  it('after a SIGKILL mid-stream and a restart every host ends as a single instance ends it, exactly once', async () => {
    const log = fleetLog({ hosts: 50, hours: 10, meanGapSec: 4, seed: 23 });
    const file = join(tempDir('fleet'), 'kern.log');
    writeFileSync(file, `${log.lines.join('\n')}\n`);
    const kafka = new KafkaBus({ brokers: BROKERS });
    cleanup.push(() => kafka.close());
    const prepare = async (ns: string) => {
      const bus = namespaced(kafka, ns);
      await bus.ensureTopics(topicSpecs(PARTITIONS));
      const r = await publishLogs({ bus, source: file, topic: TOPICS.kernelLogs, ensureTopic: false });
      expect(r.lines).toBe(log.lines.length);
      return bus;
    };

    // --- one instance: the reference ---
    const nsRef = unique('scale-ref');
    const refBus = await prepare(nsRef);
    const ref = new Learn(nsRef, tempDir('ref'), 'learn-ref');
    await ref.ready();
    await untilDone(kafka, nsRef, [ref], 'single instance');
    const refSeq = await readAnalytics(refBus);
    await ref.child.stop();

    // --- two instances, one SIGKILLed mid-stream and started again ---
    const ns = unique('scale-two');
    const bus = await prepare(ns);
    const where = await hostPartitions(bus, log.hosts.length);
    const dirA = tempDir('a');
    const a = new Learn(ns, dirA, 'learn-a');
    await a.ready();
    // every host has state in the changelog before anything moves
    const stateHosts = new Set<string>();
    const state = await followFromStart(bus, {
      topics: [STATE_TOPIC],
      groupId: unique('state'),
      onBatch: async (b) => {
        for (const m of b) {
          const host = m.key?.toString().split('/')[0] ?? '~';
          // `~<instance>/<learner>`: an instance's shared parts, not a host
          if (!host.startsWith('~')) stateHosts.add(host);
        }
      },
    });
    cleanup.push(() => state.sub.close());
    await waitFor(() => stateHosts.size === log.hosts.length, 'every host in the changelog', 120_000);
    const movesFrom = Date.now();
    const b = new Learn(ns, tempDir('b'), 'learn-b');
    await b.ready();
    await waitFor(
      async () => (await b.health()).exactlyOnce!.assignments.some((x) => x.assigned.length > 0),
      'the second instance assigned partitions',
      120_000,
    );
    const aBefore = await a.health();
    const aBeforeMetric = await a.restoredMetric();
    // mid-stream: lines are still to be read
    expect(
      await learnersCommittedAtEnd(kafka, ns),
      'the stream is not over when the first instance is killed',
    ).toBe(false);
    await a.child.kill9();
    await waitFor(
      async () => {
        const h = await b.health();
        return (
          h.exactlyOnce!.assignments.at(-1)!.assigned.length > 0 && h.exactlyOnce!.assignments.length >= 2
        );
      },
      'the survivor took the killed instance partitions',
      120_000,
    );
    a.restart();
    await a.ready();
    await untilDone(kafka, ns, [a, b], 'two instances');
    const seq = await readAnalytics(bus);
    const aAfter = await a.health();
    const bAfter = await b.health();
    const metric = aBeforeMetric + (await a.restoredMetric()) + (await b.restoredMetric());
    await a.child.stop();
    await b.child.stop();

    // --- the hosts restored are the hosts that moved ---
    const hostsOf = (parts: number[]) => log.hosts.filter((h) => parts.includes(where.get(h)!)).sort();
    let moved = 0;
    for (const h of [aBefore, bAfter, aAfter]) {
      for (const x of h.exactlyOnce!.assignments) {
        if (x.at < movesFrom) continue;
        expect([...x.restoredHosts].sort()).toEqual(hostsOf(x.assigned));
        moved += hostsOf(x.assigned).length;
      }
    }
    const restored = [aBefore, bAfter, aAfter].reduce(
      (n, h) => n + h.exactlyOnce!.restored.changelog + h.exactlyOnce!.restored.cache,
      0,
    );
    // A's first process restored nothing (it started alone on an empty changelog): its count is
    // in aBefore; the survivor's and the restarted one's are theirs
    expect(moved).toBeGreaterThanOrEqual(log.hosts.length);
    expect(restored).toBe(moved);
    // the Prometheus counter operators see says the same
    expect(metric).toBe(moved);

    // --- exactly once: no change twice, none lost, no line counted twice ---
    const blocks = new Map<string, number>();
    for (const l of log.lines) {
      if (!l.includes('[UFW BLOCK]')) continue;
      const h = l.split(/\s+/)[3]!;
      blocks.set(h, (blocks.get(h) ?? 0) + 1);
    }
    for (const [k, l] of [...seq, ...refSeq]) {
      if (k.startsWith('cluster/')) continue; // each instance ranks its own nodes (README)
      for (let i = 1; i < l.length; i++)
        expect(l[i]!.value, `${k}: the same value twice in a row (a change repeated)`).not.toBe(
          l[i - 1]!.value,
        );
      if (k.endsWith('/ufw.history.blocks')) {
        const n = l.map((v) => Number(v.value));
        for (let i = 1; i < n.length; i++) expect(n[i]!, `${k} went back`).toBeGreaterThan(n[i - 1]!);
      }
    }
    const got = finals(seq);
    const want = finals(refSeq);
    for (const h of log.hosts) expect(got.get(`${h}/ufw.history.blocks`)).toBe(String(blocks.get(h)));

    // --- every host's variables equal the single instance's ---
    const keys = [...want.keys()].filter((k) => !k.startsWith('cluster/')).sort();
    expect([...got.keys()].filter((k) => !k.startsWith('cluster/')).sort()).toEqual(keys);
    const off: string[] = [];
    const dev = { risk: 0, mbps: 0, execRel: 0 };
    for (const k of keys) {
      const d = Math.abs(Number(got.get(k)) - Number(want.get(k)));
      if (k.endsWith('/netbw.congestion_risk')) dev.risk = Math.max(dev.risk, d);
      if (k.endsWith('/MaxNetworkBandwidth')) dev.mbps = Math.max(dev.mbps, d);
      if (k.endsWith('/cpupooling.predicted_exec_ms'))
        dev.execRel = Math.max(dev.execRel, d / Number(want.get(k)));
    }
    console.info(
      JSON.stringify({
        scaleOut: {
          lines: log.lines.length,
          moved,
          restored: [aBefore, bAfter, aAfter].map((h) => h.exactlyOnce!.restored),
          largestDeviation: dev,
          tolerance: TOLERANCE,
          changes: { single: [...refSeq.values()].flat().length, two: [...seq.values()].flat().length },
        },
      }),
    );
    const tfjsOff = new Map<string, string[]>();
    for (const k of keys) {
      const x = got.get(k)!;
      const y = want.get(k)!;
      const suffix = k.slice(k.indexOf('/') + 1);
      let within = true;
      if (k.includes('/ufw.')) {
        if (x !== y) off.push(`${k}: ${x} != ${y}`);
        continue;
      }
      if (suffix === 'netbw.congestion_risk') within = Math.abs(Number(x) - Number(y)) <= TOLERANCE.risk;
      else if (suffix === 'MaxNetworkBandwidth') within = Math.abs(Number(x) - Number(y)) <= TOLERANCE.mbps;
      else if (suffix === 'cpupooling.predicted_exec_ms')
        within = Math.abs(Number(x) - Number(y)) <= TOLERANCE.execRel * Number(y);
      if (!within) tfjsOff.set(suffix, [...(tfjsOff.get(suffix) ?? []), `${k}: ${x} vs ${y}`]);
    }
    for (const [suffix, l] of tfjsOff)
      if (l.length > OUTLIERS * log.hosts.length) off.push(`${suffix}: ${l.length} hosts off`, ...l);
    console.info(JSON.stringify({ scaleOutTfjsOutsideTolerance: Object.fromEntries(tfjsOff) }));
    expect(off, off.join('\n')).toEqual([]);
  }, 900_000);
});
