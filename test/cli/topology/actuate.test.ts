// The kernel actuator as a stage of `virgo up`: off by default, on with --actuate, after the
// feeder in both modes; in one process it reads the feeder's host-aware table, so a variable
// published to virgo.kernel-analytics reaches the kernel (inside the test's own namespace) and
// closing the pipeline restores it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONTENT_TYPES, HEADERS, TOPICS } from '../../../bus/index.ts';
import { actuateStage } from '../../../cli/topology/actuate.ts';
import { feederStage } from '../../../cli/topology/feeder.ts';
import {
  inProcessOrder,
  PIPELINE,
  pipelineOptions,
  SHARED_OPTIONS,
  splitChildren,
  stageOptions,
  startInProcess,
} from '../../../cli/topology/index.ts';
import { type OptionDefs, parseOptions, UsageError } from '../../../runtime/config.ts';
import { codecFor } from '../../../schemas/index.ts';
import { anomalySysctlRule, HOST, policyJson, tcRule } from '../../helpers/kernel-policy.ts';
import { createNetns, type Netns, rootQdisc, sysctlValue } from '../../helpers/netns.ts';
import { spawnVirgo, waitFor } from '../../helpers/services.ts';

function upOptions(argv: string[]) {
  const defs: OptionDefs = { ...SHARED_OPTIONS, ...stageOptions(PIPELINE) };
  const { values } = parseOptions(defs, argv, {});
  return pipelineOptions(values, { brokers: ['127.0.0.1:9092'], stateDir: '/var/lib/virgo' });
}

describe('the actuate stage in the topology', () => {
  it('is off by default; --actuate runs it after the feeder, in one process and as `virgo actuate` under --split', () => {
    expect(inProcessOrder(upOptions([])).map((s) => s.name)).not.toContain('actuate');
    const o = upOptions(['--actuate', '/etc/virgo/policy.json', '--actuate-apply', '--actuate-netns', 'lab']);
    const order = inProcessOrder(o).map((s) => s.name);
    expect(order.indexOf('actuate')).toBeGreaterThan(order.indexOf('feeder'));
    const child = splitChildren(o).find((c) => c.name === 'actuate')!;
    const spec = child.spec({ feeder: '0.0.0.0:41000' })!;
    expect(spec.argv.slice(2)).toEqual([
      'actuate',
      '--policy',
      '/etc/virgo/policy.json',
      '--feeder',
      '127.0.0.1:41000',
      '--state-dir',
      '/var/lib/virgo',
      '--audit',
      '/var/lib/virgo/actuate/audit.jsonl',
      '--netns',
      'lab',
      '--apply',
    ]);
    expect(() => upOptions(['--actuate-apply'])).toThrow(UsageError);
  });
});

describe('virgo up --actuate, in one process', () => {
  let ns: Netns;
  let dir: string;
  beforeEach(async () => {
    ns = await createNetns();
    dir = mkdtempSync(join(tmpdir(), 'virgo-actuate-up-'));
  });
  afterEach(async () => {
    await ns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a variable published to virgo.kernel-analytics sets the kernel; closing the pipeline restores it', async () => {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, policyJson({ dev: ns.dev, rules: [tcRule(ns.dev), anomalySysctlRule()] }));
    const original = await sysctlValue(ns, 'net.core.somaxconn');
    const t = await startInProcess(
      {
        stateDir: dir,
        listenHost: '127.0.0.1',
        feederPort: 0,
        metrics: false,
        actuate: { policy, apply: true, netns: ns.name },
      },
      [feederStage, actuateStage],
    );
    try {
      const codec = codecFor('AnalyticsVariable');
      const variable = (key: string, value: string, type: 'int' | 'bool') => ({
        key: `${HOST}/${key}`,
        value: codec.encode({
          host: HOST,
          key,
          value,
          why: 'test',
          learner: 'netbw',
          model: 'test',
          confidence: 1,
          ts: Date.now(),
          type,
          unit: null,
        }),
        headers: { [HEADERS.contentType]: CONTENT_TYPES.avro, [HEADERS.schema]: codec.fingerprintHex },
      });
      await t.bus.publish(TOPICS.kernelAnalytics, [
        variable('MaxNetworkBandwidth', '200', 'int'),
        variable('kernel.anomaly', 'true', 'bool'),
      ]);
      await waitFor(
        async () =>
          (await rootQdisc(ns, ns.dev))?.options?.rate === 200e6 / 8 &&
          (await sysctlValue(ns, 'net.core.somaxconn')) === 8192,
        'the published variables to reach the kernel',
        30_000,
      );
      await t.handle(actuateStage)!.actuator.idle();
      expect(t.health()).toMatchObject({ actuate: { apply: true, actions: 2, failed: 0 } });
    } finally {
      await t.close();
    }
    expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue', handle: '0:' });
    expect(await sysctlValue(ns, 'net.core.somaxconn')).toBe(original);
  });
});

describe('virgo actuate --feeder (what `virgo up --split` runs)', () => {
  let ns: Netns;
  let dir: string;
  beforeEach(async () => {
    ns = await createNetns();
    dir = mkdtempSync(join(tmpdir(), 'virgo-actuate-feeder-'));
  });
  afterEach(async () => {
    await ns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks a feeder for the policy host (HOST edge-1) and decides on the key=value lines it sends', async () => {
    // a hand-typed feeder, as `nc -l` would be: it records what the consumer asks, then sends a line
    const asked: string[] = [];
    const clients: Socket[] = [];
    const feeder = createServer((sock) => {
      clients.push(sock);
      sock.on('data', (d) => asked.push(...d.toString().split('\n').filter(Boolean)));
      sock.write('MaxNetworkBandwidth=150\n');
    });
    await new Promise<void>((r) => feeder.listen(0, '127.0.0.1', r));
    const port = (feeder.address() as { port: number }).port;
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, policyJson({ dev: ns.dev, rules: [tcRule(ns.dev)] }));
    const proc = spawnVirgo([
      'actuate',
      '--policy',
      policy,
      '--netns',
      ns.name,
      '--feeder',
      `127.0.0.1:${port}`,
      '--state-dir',
      dir,
    ]);
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    try {
      await waitFor(() => out.includes('"rate","150mbit"'), 'the dry run of the fed value', 30_000);
      expect(asked).toContain(`HOST ${HOST}`);
      expect(out).toContain(`variables of host ${HOST} from feeder 127.0.0.1:${port} (HOST ${HOST})`);
      expect(await rootQdisc(ns, ns.dev)).toMatchObject({ kind: 'noqueue' });
      proc.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      for (const c of clients) c.destroy();
      await new Promise((r) => feeder.close(r));
    }
  });
});
