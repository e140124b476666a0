// `virgo actuate` as an operator runs it, on a real kernel inside the test's own network namespace
// (--netns), variables from the real Redis export format (a unique prefix): the dry run, refusal
// with the policy's line, rollback on SIGTERM, and rollback after SIGKILL by --rollback and by a
// restart, read from the audit log; a pin made with `virgo pin` stops it.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../../actuators/kernel/audit.ts';
import { anomalySysctlRule, banRule, HOST, policyJson, TABLE, tcRule } from '../../helpers/kernel-policy.ts';
import {
  createNetns,
  type Netns,
  nftSet,
  nftTableExists,
  rootQdisc,
  sysctlValue,
} from '../../helpers/netns.ts';
import { REDIS_URL, spawnVirgo, unique, virgo, waitFor } from '../../helpers/services.ts';

let redis: Redis;
let ns: Netns;
let dir: string;
let prefix: string;
let policyFile: string;
let original: number;
const children: ChildProcess[] = [];

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  await redis.quit();
});

beforeEach(async () => {
  ns = await createNetns();
  dir = mkdtempSync(join(tmpdir(), 'virgo-actuate-cli-'));
  prefix = unique('virgo:actuate-test');
  policyFile = join(dir, 'policy.json');
  writeFileSync(
    policyFile,
    policyJson({ dev: ns.dev, rules: [tcRule(ns.dev), banRule(), anomalySysctlRule()] }),
  );
  original = await sysctlValue(ns, 'net.core.somaxconn');
  // what the Redis exporter writes for edge-1
  await redis.hset(`${prefix}:${HOST}`, {
    MaxNetworkBandwidth: '100',
    'ufw.top_src_ip': '203.0.113.7',
    'ufw.block_rate': '75.5',
    'kernel.anomaly': 'true',
  });
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await ns.close();
  await redis.del(`${prefix}:${HOST}`);
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  proc: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function actuate(extra: string[]): Running {
  const proc = spawnVirgo([
    'actuate',
    '--policy',
    policyFile,
    '--netns',
    ns.name,
    '--redis',
    REDIS_URL,
    '--redis-prefix',
    prefix,
    '--state-dir',
    dir,
    '--log-level',
    'warn',
    ...extra,
  ]);
  children.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, out: () => out, err: () => err, exited };
}

const auditPath = () => join(dir, 'actuate', 'audit.jsonl');
function audit(): AuditRecord[] {
  return readFileSync(auditPath(), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditRecord);
}

async function allChanged(): Promise<boolean> {
  const q = await rootQdisc(ns, ns.dev);
  const bans = await nftSet(ns, TABLE, 'ufw_ban_v4');
  return (
    q?.kind === 'tbf' &&
    q.options?.rate === 100e6 / 8 &&
    (await sysctlValue(ns, 'net.core.somaxconn')) === 8192 &&
    bans?.[0]?.val === '203.0.113.7'
  );
}

async function expectOriginals(): Promise<void> {
  expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue', handle: '0:' });
  expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(original);
  expect(await nftTableExists(ns, TABLE)).toBe(false);
}

describe('virgo actuate', () => {
  it('dry run (the default): prints the commands as argv, changes nothing, writes no audit log', async () => {
    const r = actuate([]);
    await waitFor(() => (r.out().match(/^ {2}argv /gm) ?? []).length >= 4, 'four printed commands', 30_000);
    expect(r.out()).toMatch(
      /^dry run \(nothing changes; --apply to act\): policy .*, variables of host edge-1 from redis /,
    );
    expect(r.out()).toContain(
      `  argv ["ip","netns","exec","${ns.name}","tc","qdisc","replace","dev","${ns.dev}","root","tbf","rate","100mbit","burst","125000","latency","50ms"]`,
    );
    expect(r.out()).toContain(`  $ ip netns exec ${ns.name} sysctl -w net.core.somaxconn=8192`);
    await expectOriginals();
    r.proc.kill('SIGINT');
    expect((await r.exited).code).toBe(0);
    expect(r.out()).toContain('would restore sysctl:net.core.somaxconn to');
    expect(existsSync(auditPath())).toBe(false);
    await expectOriginals();
  });

  it('refuses a policy that names something outside the allowlist, with the line, before touching anything', async () => {
    const text = policyJson({ dev: ns.dev, rules: [tcRule(ns.dev)] }).replace(
      '"sysctls": {',
      '"sysctls": {\n      "kernel.sysrq": { "min": 0, "max": 1 },',
    );
    writeFileSync(policyFile, text);
    const line = text.split('\n').findIndex((l) => l.includes('kernel.sysrq')) + 1;
    const r = await virgo([
      'actuate',
      '--policy',
      policyFile,
      '--netns',
      ns.name,
      '--apply',
      '--state-dir',
      dir,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `${policyFile}:${line}: sysctl kernel.sysrq is outside the actuator's allowlist`,
    );
    expect(existsSync(auditPath())).toBe(false);
    await expectOriginals();
  });

  it('--apply acts, audits, and restores everything on SIGTERM', async () => {
    const r = actuate(['--apply']);
    await waitFor(allChanged, 'the three settings changed in the namespace', 30_000);
    r.proc.kill('SIGTERM');
    expect((await r.exited).code).toBe(0);
    await expectOriginals();
    const recs = audit();
    expect(recs[0]).toMatchObject({ type: 'start', netns: ns.name, host: HOST, policy: policyFile });
    expect(recs.filter((x) => x.type === 'action')).toHaveLength(4);
    expect(recs.filter((x) => x.type === 'rollback').every((x) => x.ok)).toBe(true);
    expect(recs.at(-1)).toMatchObject({ type: 'end', reason: 'rolled back on SIGTERM' });
  });

  it('after SIGKILL the settings stay; `virgo actuate --rollback` restores them from the audit log, in the namespace the run used', async () => {
    const r = actuate(['--apply']);
    await waitFor(allChanged, 'the three settings changed in the namespace', 30_000);
    r.proc.kill('SIGKILL');
    expect((await r.exited).signal).toBe('SIGKILL');
    expect(await allChanged()).toBe(true);
    expect(audit().some((x) => x.type === 'end')).toBe(false);

    // no --netns, no --policy: the audit log says where and what
    const rb = await virgo(['actuate', '--rollback', '--state-dir', dir]);
    expect(rb.stderr).toBe('');
    expect(rb.code).toBe(0);
    expect(rb.stdout).toContain(`unfinished run found in ${auditPath()}`);
    expect(rb.stdout).toContain(`network namespace ${ns.name}), 3 setting(s) to restore`);
    await expectOriginals();
    expect(audit().at(-1)).toMatchObject({ type: 'end' });
    expect((audit().at(-1) as { reason: string }).reason).toMatch(
      /^rolled back by pid \d+ after an unfinished run$/,
    );

    // a second rollback finds nothing to do
    const again = await virgo(['actuate', '--rollback', '--state-dir', dir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to roll back');
  });

  it('after SIGKILL a restart with --apply restores the unfinished run first, then acts again', async () => {
    const first = actuate(['--apply']);
    await waitFor(allChanged, 'the first run to change the settings', 30_000);
    first.proc.kill('SIGKILL');
    await first.exited;

    const second = actuate(['--apply']);
    await waitFor(
      () => second.out().includes('unfinished run found'),
      'the restart to find the unfinished run',
      30_000,
    );
    await waitFor(allChanged, 'the restart to act again', 30_000);
    second.proc.kill('SIGINT');
    expect((await second.exited).code).toBe(0);
    await expectOriginals();
    const recs = audit();
    const sessions = recs.filter((x) => x.type === 'start').map((x) => x.session);
    expect(sessions).toHaveLength(2);
    for (const s of sessions) expect(recs.some((x) => x.type === 'end' && x.session === s)).toBe(true);
    // the first session's restores came before the second session's first action
    const firstEnd = recs.findIndex((x) => x.type === 'end' && x.session === sessions[0]);
    const secondAction = recs.findIndex((x) => x.type === 'action' && x.session === sessions[1]);
    expect(firstEnd).toBeLessThan(secondAction);
  });

  it('a variable pinned with `virgo pin` drives nothing until `virgo unpin`', async () => {
    const pin = await virgo(['pin', `${HOST}/MaxNetworkBandwidth=100`, '--state-dir', dir]);
    expect(pin.code).toBe(0);
    writeFileSync(policyFile, policyJson({ dev: ns.dev, rules: [tcRule(ns.dev)] }));
    const r = actuate(['--apply']);
    await waitFor(
      () => r.out().includes('skip bandwidth-cap: pinned: edge-1/MaxNetworkBandwidth is pinned to 100'),
      'the pinned skip',
      30_000,
    );
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue' });
    expect((await virgo(['unpin', `${HOST}/MaxNetworkBandwidth`, '--state-dir', dir])).code).toBe(0);
    await waitFor(
      async () => (await rootQdisc(ns, ns.dev))?.options?.rate === 100e6 / 8,
      'the cap once unpinned',
      30_000,
    );
    r.proc.kill('SIGTERM');
    expect((await r.exited).code).toBe(0);
    await expectOriginals();
  });
});
