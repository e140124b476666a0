// The kernel actuator on a real kernel, inside a network namespace of the test's own (the host is
// never touched): tc rates read back with `tc -j qdisc show`, bans with their timeout with
// `nft -j list set`, a per-namespace sysctl changed and restored. Variables come from a real
// VariableTable; pins from a real PinStore.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KernelActuator } from '../../../actuators/kernel/actuator.ts';
import { AuditLog, type AuditRecord } from '../../../actuators/kernel/audit.ts';
import { CommandRunner } from '../../../actuators/kernel/commands.ts';
import { PolicyError, parsePolicy } from '../../../actuators/kernel/policy.ts';
import { VariableTable } from '../../../kernel-analytics/table.ts';
import { PinStore } from '../../../learners/pins.ts';
import { anomalySysctlRule, banRule, HOST, policyJson, TABLE, tcRule } from '../../helpers/kernel-policy.ts';
import {
  createNetns,
  type Netns,
  nftSet,
  nftTableExists,
  rootQdisc,
  sysctlValue,
} from '../../helpers/netns.ts';
import { waitFor } from '../../helpers/services.ts';

let ns: Netns;
let dir: string;
const started: KernelActuator[] = [];

beforeEach(async () => {
  ns = await createNetns();
  dir = mkdtempSync(join(tmpdir(), 'virgo-actuate-'));
});

afterEach(async () => {
  // Closing restores; the namespace goes whatever happened.
  for (const a of started.splice(0)) await a.close().catch(() => {});
  await ns.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Harness {
  a: KernelActuator;
  table: VariableTable;
  lines: string[];
  audit: AuditLog | undefined;
  auditPath: string;
}

async function startActuator(
  policy: string,
  o: {
    apply?: boolean;
    table?: VariableTable;
    pins?: PinStore;
    receivedAt?: (key: string, host: string) => number | undefined;
  } = {},
): Promise<Harness> {
  const table = o.table ?? new VariableTable({ name: 'actuate-test' });
  const lines: string[] = [];
  const auditPath = join(dir, 'audit.jsonl');
  const audit = o.apply ? AuditLog.open(auditPath) : undefined;
  try {
    const a = await KernelActuator.start({
      policy: parsePolicy(policy, 'policy.json'),
      variables: table,
      receivedAt: o.receivedAt ?? ((k, h) => table.entry(k, h)?.ts),
      apply: o.apply ?? false,
      runner: new CommandRunner({ netns: ns.name }),
      ...(audit ? { audit } : {}),
      ...(o.pins ? { pins: o.pins } : {}),
      report: (l) => lines.push(l),
    });
    started.push(a);
    return { a, table, lines, audit, auditPath };
  } catch (err) {
    audit?.close();
    throw err;
  }
}

function auditRecords(path: string): AuditRecord[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditRecord);
}

const set = (t: VariableTable, key: string, value: string) => t.set(key, value, { host: HOST });

/** A table with what drives all three rules: a cap of 100, a ban of 203.0.113.7, an anomaly. */
function allFour(): VariableTable {
  const table = new VariableTable();
  set(table, 'MaxNetworkBandwidth', '100');
  set(table, 'ufw.top_src_ip', '203.0.113.7');
  set(table, 'ufw.block_rate', '75.5');
  set(table, 'kernel.anomaly', 'true');
  return table;
}

describe('kernel actuator, applying, in a network namespace', () => {
  it('caps the rate with tbf, bans with a timeout, raises a per-namespace sysctl; close() restores all three', async () => {
    const hostSomaxconn = Number((await ns.host(['sysctl', '-n', 'net.core.somaxconn'])).trim());
    const original = await sysctlValue(ns, 'net.core.somaxconn');
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue', handle: '0:' });
    const table = allFour();
    const h = await startActuator(
      policyJson({ dev: ns.dev, rules: [tcRule(ns.dev), banRule(), anomalySysctlRule()] }),
      { apply: true, table },
    );
    await h.a.idle();

    const q = await rootQdisc(ns, ns.dev);
    expect(q?.kind).toBe('tbf');
    expect(q?.options?.rate).toBe(100e6 / 8);
    const bans = await nftSet(ns, TABLE, 'ufw_ban_v4');
    expect(bans).toHaveLength(1);
    expect(bans![0]!.val).toBe('203.0.113.7');
    expect(bans![0]!.timeout).toBe(600);
    expect(bans![0]!.expires).toBeGreaterThan(500);
    expect(bans![0]!.expires).toBeLessThanOrEqual(600);
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(8192);
    // per namespace: the host's value did not move
    expect(Number((await ns.host(['sysctl', '-n', 'net.core.somaxconn'])).trim())).toBe(hostSomaxconn);

    // a new value moves the cap; the anomaly clearing puts the original back
    set(table, 'MaxNetworkBandwidth', '250');
    set(table, 'kernel.anomaly', 'false');
    await h.a.idle();
    expect((await rootQdisc(ns, ns.dev))?.options?.rate).toBe(250e6 / 8);
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(original);

    // every change in the audit log before it ran: variable, value, why, old, new, time
    const recs = auditRecords(h.auditPath);
    const actions = recs.filter((r) => r.type === 'action');
    expect(actions.map((r) => [r.rule, r.variable, r.value])).toEqual([
      ['bandwidth-cap', 'edge-1/MaxNetworkBandwidth', '100'],
      ['ban-top-source', 'edge-1/ufw.top_src_ip', '203.0.113.7'],
      ['ban-top-source', 'edge-1/ufw.top_src_ip', '203.0.113.7'],
      ['backlog-under-anomaly', 'edge-1/kernel.anomaly', 'true'],
      ['bandwidth-cap', 'edge-1/MaxNetworkBandwidth', '250'],
      ['backlog-under-anomaly', 'edge-1/kernel.anomaly', 'false'],
    ]);
    const first = actions[0]!;
    expect(first).toMatchObject({
      target: { kind: 'tc', dev: ns.dev },
      old: { kind: 'default', qdisc: 'noqueue' },
      new: { kind: 'tbf', rateBytes: 12.5e6 },
      argv: [
        'ip',
        'netns',
        'exec',
        ns.name,
        'tc',
        'qdisc',
        'replace',
        'dev',
        ns.dev,
        'root',
        'tbf',
        'rate',
        '100mbit',
        'burst',
        '125000',
        'latency',
        '50ms',
      ],
    });
    expect(first.why).toMatch(/edge-1\/MaxNetworkBandwidth=100/);
    expect(Date.parse(first.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(actions[3]).toMatchObject({
      old: { kind: 'sysctl', value: original },
      new: { kind: 'sysctl', value: 8192 },
    });
    expect(recs.filter((r) => r.type === 'result').every((r) => r.ok)).toBe(true);

    const outcomes = await h.a.close('test over');
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue', handle: '0:' });
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(original);
    expect(await nftTableExists(ns, TABLE)).toBe(false);
    const end = auditRecords(h.auditPath).at(-1)!;
    expect(end).toMatchObject({ type: 'end', reason: 'test over' });
  });

  it('refuses to start on a target it could not restore, naming the policy line', async () => {
    await ns.exec(['nft', 'add', 'table', 'inet', TABLE]);
    const policy = policyJson({ dev: 'nosuch0', rules: [tcRule('nosuch0'), banRule()] });
    const err = await startActuator(policy, { apply: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyError);
    const lines = policy.split('\n');
    const devLine = lines.findIndex((l) => l.includes('"interface": "nosuch0"')) + 1;
    const tableLine = lines.findIndex((l) => l.includes(`"table": "${TABLE}"`)) + 1;
    const msg = (err as PolicyError).message;
    expect(msg).toContain(`policy.json:${devLine}: cannot read tc:nosuch0`);
    expect(msg).toContain(`policy.json:${tableLine}: nftables table inet ${TABLE} exists already`);
    // refused before anything: the operator's table is untouched
    expect(await nftTableExists(ns, TABLE)).toBe(true);
  });
});

describe('kernel actuator, dry run', () => {
  it('prints the exact argv of each change and of each restore, and changes nothing', async () => {
    const original = await sysctlValue(ns, 'net.core.somaxconn');
    const table = allFour();
    const h = await startActuator(
      policyJson({ dev: ns.dev, rules: [tcRule(ns.dev), banRule(), anomalySysctlRule()] }),
      { table },
    );
    await h.a.idle();
    const printed = h.lines
      .flatMap((l) => l.split('\n'))
      .filter((l) => l.startsWith('  argv '))
      .map((l) => JSON.parse(l.slice('  argv '.length)) as string[]);
    expect(printed).toHaveLength(4);
    expect(printed[0]).toEqual([
      'ip',
      'netns',
      'exec',
      ns.name,
      'tc',
      'qdisc',
      'replace',
      'dev',
      ns.dev,
      'root',
      'tbf',
      'rate',
      '100mbit',
      'burst',
      '125000',
      'latency',
      '50ms',
    ]);
    expect(printed[3]).toEqual(['ip', 'netns', 'exec', ns.name, 'sysctl', '-w', 'net.core.somaxconn=8192']);
    // nothing changed
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue' });
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(original);
    expect(await nftTableExists(ns, TABLE)).toBe(false);

    // and what it printed is exactly what applying runs: run the printed argv by hand
    const { execFileSync } = await import('node:child_process');
    for (const argv of printed) execFileSync(argv[0]!, argv.slice(1));
    expect((await rootQdisc(ns, ns.dev))?.options?.rate).toBe(100e6 / 8);
    expect((await nftSet(ns, TABLE, 'ufw_ban_v4'))?.map((e) => e.val)).toEqual(['203.0.113.7']);
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(8192);

    // the printed restores undo it
    await h.a.close();
    const restores = h.lines
      .filter((l) => l.startsWith('would restore'))
      .map((l) => JSON.parse(l.split('\n')[2]!.slice('  argv '.length)) as string[]);
    expect(restores).toHaveLength(3);
    for (const argv of restores) execFileSync(argv[0]!, argv.slice(1));
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue', handle: '0:' });
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(original);
    expect(await nftTableExists(ns, TABLE)).toBe(false);
  });
});

describe('what never drives an action', () => {
  it('a pinned variable: skipped while pinned, acted on once unpinned', async () => {
    const pins = new PinStore();
    const pin = {
      host: HOST,
      key: 'MaxNetworkBandwidth',
      value: '100',
      ts: Date.now(),
      by: 'ops@test',
      announced: true,
    };
    pins.setSource('file', new Map([[`${HOST}/MaxNetworkBandwidth`, pin]]));
    const table = new VariableTable();
    set(table, 'MaxNetworkBandwidth', '100');
    const h = await startActuator(policyJson({ dev: ns.dev, rules: [tcRule(ns.dev)] }), {
      apply: true,
      table,
      pins,
    });
    await h.a.idle();
    expect(h.lines).toContain(
      'skip bandwidth-cap: pinned: edge-1/MaxNetworkBandwidth is pinned to 100 by ops@test',
    );
    set(table, 'MaxNetworkBandwidth', '120'); // a learner's value while pinned: still nothing
    await h.a.idle();
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue' });
    expect(h.a.stats.skipped.pinned).toBe(2);
    expect(h.a.stats.actions).toBe(0);

    pins.setSource('file', new Map());
    h.a.reconsider();
    await h.a.idle();
    expect((await rootQdisc(ns, ns.dev))?.options?.rate).toBe(120e6 / 8);
  });

  it('a stale variable: a value received longer ago than its ttl does nothing; a fresh update acts', async () => {
    const table = new VariableTable();
    set(table, 'MaxNetworkBandwidth', '100');
    const tenMinutesAgo = Date.now() - 600_000;
    const h = await startActuator(policyJson({ dev: ns.dev, rules: [tcRule(ns.dev, { ttlSeconds: 60 })] }), {
      apply: true,
      table,
      receivedAt: () => tenMinutesAgo,
    });
    await h.a.idle();
    expect(
      h.lines.some((l) =>
        /^skip bandwidth-cap: stale: edge-1\/MaxNetworkBandwidth=100 is 60\d s old, ttl 60 s$/.test(l),
      ),
    ).toBe(true);
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue' });
    set(table, 'MaxNetworkBandwidth', '110'); // an update now
    await h.a.idle();
    expect((await rootQdisc(ns, ns.dev))?.options?.rate).toBe(110e6 / 8);
  });

  it('values outside what the policy allows: never-ban ranges, loopback, non-addresses, a rate under threshold', async () => {
    const table = new VariableTable();
    set(table, 'ufw.block_rate', '75');
    const h = await startActuator(policyJson({ dev: ns.dev, rules: [banRule()] }), { apply: true, table });
    for (const ip of ['10.1.2.3', '127.0.0.1', '::1', '203.0.113.5; reboot', '203.0.113.300']) {
      set(table, 'ufw.top_src_ip', ip);
      await h.a.idle();
    }
    expect(h.a.stats.skipped['never-ban']).toBe(3);
    expect(h.a.stats.skipped['invalid-value']).toBe(2);
    set(table, 'ufw.top_src_ip', '198.51.100.4');
    set(table, 'ufw.block_rate', '12');
    await h.a.idle();
    expect(h.lines).toContain('skip ban-top-source: condition: edge-1/ufw.block_rate=12 is not above 60');
    expect(await nftTableExists(ns, TABLE)).toBe(false);
    // over the threshold again: banned
    set(table, 'ufw.block_rate', '61');
    await h.a.idle();
    expect((await nftSet(ns, TABLE, 'ufw_ban_v4'))?.map((e) => e.val)).toEqual(['198.51.100.4']);
  });
});

describe('rate limits and bounds', () => {
  it('a large move is made in steps of at most maxStep, at least minIntervalSeconds apart (monotonic clock)', async () => {
    const table = new VariableTable();
    set(table, 'MaxNetworkBandwidth', '100');
    const h = await startActuator(
      policyJson({ dev: ns.dev, rules: [tcRule(ns.dev, { maxStep: 300, minIntervalSeconds: 1 })] }),
      { apply: true, table },
    );
    const seen: { mbit: number; at: number }[] = [];
    const t0 = performance.now();
    await waitFor(
      async () => {
        const r = (await rootQdisc(ns, ns.dev))?.options?.rate;
        const mbit = r === undefined ? undefined : (r * 8) / 1e6;
        if (mbit !== undefined && seen.at(-1)?.mbit !== mbit) seen.push({ mbit, at: performance.now() - t0 });
        return mbit === 100;
      },
      'the cap to reach 100 Mbit/s in steps',
      30_000,
    );
    // unshaped counts as the allowed maximum (1000): 700, 400, 100
    expect(seen.map((s) => s.mbit)).toEqual([700, 400, 100]);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(900);
    expect(seen[2]!.at - seen[1]!.at).toBeGreaterThanOrEqual(900);
    const steps = auditRecords(h.auditPath).filter((r) => r.type === 'action');
    expect(steps).toHaveLength(3);
    expect(steps[0]!.why).toContain('stepped 1000 → 700 (max 300 per 1 s) toward 100');
  });

  it('within the minimum interval a new value waits; values beyond the bounds are clamped', async () => {
    const table = new VariableTable();
    set(table, 'MaxNetworkBandwidth', '3'); // under minMbit 10
    const h = await startActuator(
      policyJson({ dev: ns.dev, rules: [tcRule(ns.dev, { minIntervalSeconds: 3600 })] }),
      { apply: true, table },
    );
    await h.a.idle();
    expect((await rootQdisc(ns, ns.dev))?.options?.rate).toBe(10e6 / 8);
    expect(auditRecords(h.auditPath).find((r) => r.type === 'action')!.why).toContain(
      '3 Mbit/s clamped to 10 (allowed 10-1000)',
    );
    set(table, 'MaxNetworkBandwidth', '500');
    await h.a.idle();
    expect(
      h.lines.some((l) => l.startsWith('skip bandwidth-cap: rate-limited: next change of vt0 allowed in')),
    ).toBe(true);
    expect((await rootQdisc(ns, ns.dev))?.options?.rate).toBe(10e6 / 8);
  });

  it('a numeric sysctl mapping is clamped to the policy bounds; bans stop at maxElements', async () => {
    const table = new VariableTable();
    set(table, 'cpupooling.predicted_exec_ms', '500');
    set(table, 'ufw.block_rate', '100');
    const rules = [
      {
        name: 'backlog-from-load',
        variable: 'cpupooling.predicted_exec_ms',
        ttlSeconds: 300,
        minIntervalSeconds: 0,
        maxStep: 100000,
        sysctl: { key: 'net.core.somaxconn', scale: 100 },
      },
      banRule(),
    ];
    const h = await startActuator(policyJson({ dev: ns.dev, rules, nft: { maxElements: 2 } }), {
      apply: true,
      table,
    });
    await h.a.idle();
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(16384);
    for (const ip of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) {
      set(table, 'ufw.top_src_ip', ip);
      await h.a.idle();
    }
    expect((await nftSet(ns, TABLE, 'ufw_ban_v4'))?.map((e) => e.val).sort()).toEqual([
      '198.51.100.1',
      '198.51.100.2',
    ]);
    expect(h.a.stats.skipped['set-full']).toBe(1);
  });
});
