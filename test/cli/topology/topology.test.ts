// The virgo topology: the stage graph and start order derived for each mode, and an option
// declared once (by its stage) reaching that stage in all three: `virgo up`, `virgo up --split`
// and `virgo drivers up`.
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ActuatorsConfig,
  actuatorsArgs,
  actuatorsConfig,
  DRIVERS_UP_OPTIONS,
  parseDriversReady,
} from '../../../cli/topology/actuators-config.ts';
import {
  inProcessOrder,
  PIPELINE,
  type PipelineStage,
  pipelineOptions,
  SHARED_OPTIONS,
  splitChildren,
  splitOrder,
  stageOptions,
  startInProcess,
  startPipeline,
} from '../../../cli/topology/index.ts';
import { type OptionDefs, parseOptions } from '../../../runtime/config.ts';

/** `virgo up ARGV` as the command parses it, into the pipeline's options. */
function upOptions(argv: string[], stages: readonly PipelineStage[] = PIPELINE) {
  const defs: OptionDefs = { ...SHARED_OPTIONS, ...stageOptions(stages) };
  const { values } = parseOptions(defs, argv, {});
  return pipelineOptions(values, { brokers: ['127.0.0.1:9092'], stateDir: '/var/lib/virgo' }, stages);
}

/** A child's arguments as `virgo drivers up` parses them, into the actuators' configuration. */
function asDriversUp(args: string[], env: NodeJS.ProcessEnv = {}): ActuatorsConfig {
  expect(args.slice(0, 2)).toEqual(['drivers', 'up']);
  const { values } = parseOptions(DRIVERS_UP_OPTIONS, args.slice(2), env);
  return actuatorsConfig(values, (sub) => join('/nowhere', sub), env);
}

const names = (s: readonly { name: string }[]) => s.map((x) => x.name);

describe('the stage graph and start order', () => {
  it('virgo up: listeners bind first; the consumer (whose table the actuators read) before them; metrics last', () => {
    expect(names(inProcessOrder(upOptions([])))).toEqual([
      'feeder',
      'queue',
      'consumer',
      'actuators',
      'learn',
      'source',
      'metrics',
    ]);
    expect(names(inProcessOrder(upOptions(['--metrics', 'none'])))).not.toContain('metrics');
  });

  it('virgo up --split: the listening processes first, each stage after those it connects to', () => {
    const order = splitOrder(upOptions([]));
    expect(names(order)).toEqual(['feeder', 'queue', 'actuators', 'learn', 'source', 'consumer']);
    const firstConnector = order.findIndex((s) => !s.listens);
    expect(order.slice(firstConnector).every((s) => !s.listens)).toBe(true);
    for (const [i, s] of order.entries()) {
      for (const dep of s.after ?? []) expect(names(order.slice(0, i))).toContain(dep);
    }
  });

  it('virgo up --split: each process gets the endpoints its peers printed; the learner reads from the beginning', () => {
    const o = upOptions(['--listen-host', '0.0.0.0', '--input', '/var/log/kern.log']);
    const children = splitChildren(o);
    const endpoints: Record<string, string> = {};
    const argv: Record<string, string[]> = {};
    const ready: Record<string, string> = {
      feeder: 'listening tcp=0.0.0.0:41000',
      queue: 'listening tcp=0.0.0.0:41001 zmq=tcp://127.0.0.1:41002 dir=/var/lib/virgo/kingcobra records=0',
      actuators: 'listening cpupooling=0.0.0.0:41003 eventnet=0.0.0.0:41004 devices=none variables=feeder x',
    };
    for (const c of children) {
      const spec = c.spec(endpoints)!;
      argv[c.name] = spec.argv.slice(2) as string[];
      if (c.listens) {
        expect(spec.ready?.('some other line')).toBeUndefined();
        Object.assign(endpoints, spec.ready!(ready[c.name]!));
      }
    }
    expect(endpoints).toEqual({
      feeder: '0.0.0.0:41000',
      queue: '0.0.0.0:41001',
      zmq: 'tcp://127.0.0.1:41002',
      cpupooling: '0.0.0.0:41003',
      eventnet: '0.0.0.0:41004',
    });
    expect(argv.consumer).toEqual([
      'consume',
      '--feeder',
      '127.0.0.1:41000',
      '--conf-dir',
      '/var/lib/virgo/conf',
    ]);
    const drivers = asDriversUp(argv.actuators!.slice(0, argv.actuators!.indexOf('--brokers')));
    expect(drivers.feeder).toEqual({ host: '127.0.0.1', port: 41000 });
    expect(drivers.queue).toEqual({ host: '127.0.0.1', port: 41001 });
    expect(drivers.listenHost).toBe('0.0.0.0');
    expect(drivers.cloudfsRoot).toBe('/var/lib/virgo/cloudfs');
    expect(argv.learn).toContain('--from-beginning');
    expect(argv.source).toEqual([
      'publish-logs',
      '/var/log/kern.log',
      '--brokers',
      '127.0.0.1:9092',
      '--follow',
      '--state-dir',
      '/var/lib/virgo',
    ]);
    expect(
      splitChildren(upOptions(['--input', 'none']))
        .find((c) => c.name === 'source')!
        .spec({}),
    ).toBe(undefined);
  });

  it('conf files: one per host by default; --conf FILE holds one host (--conf-host, default this machine), in both modes', () => {
    const byDefault = upOptions([]);
    expect(byDefault.confDir).toBeUndefined(); // the stage uses STATE_DIR/conf
    expect(byDefault.confFile).toBeUndefined();
    const o = upOptions([
      '--conf',
      '/etc/virgo_kernel_analytics.conf',
      '--conf-host',
      'edge-1',
      '--conf-dir',
      '/srv/c',
    ]);
    expect(o.confFile).toEqual({ path: '/etc/virgo_kernel_analytics.conf', host: 'edge-1' });
    expect(o.confDir).toBe('/srv/c');
    const consume = splitChildren(o).find((c) => c.name === 'consumer')!;
    expect(consume.spec({ feeder: '127.0.0.1:41000' })!.argv.slice(2)).toEqual([
      'consume',
      '--feeder',
      '127.0.0.1:41000',
      '--conf-dir',
      '/srv/c',
      '--conf',
      '/etc/virgo_kernel_analytics.conf',
      '--conf-host',
      'edge-1',
    ]);
    expect(upOptions(['--conf', '/tmp/x.conf']).confFile?.host).toBe(hostname());
    expect(() => upOptions(['--conf', '/tmp/x.conf', '--conf-host', 'a/b'])).toThrow(
      /--conf-host: host "a\/b"/,
    );
  });

  it('every virgo up flag is declared by one stage only', () => {
    const twice: PipelineStage = { name: 'x', options: { zmq: { type: 'string', description: 'again' } } };
    expect(() => stageOptions([...PIPELINE, twice])).toThrow(/--zmq declared twice/);
  });
});

describe('an option declared once reaches its stage in all three modes', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tempState = () => {
    const d = mkdtempSync(join(tmpdir(), 'virgo-topology-'));
    dirs.push(d);
    return d;
  };

  it('--devices none and --drivers eventnet: virgo up, virgo up --split, virgo drivers up', async () => {
    const argv = ['--devices', 'none', '--drivers', 'eventnet', '--any-ports', '--metrics', 'none'];
    // --split: the actuators' process runs `virgo drivers up` with them
    const child = splitChildren(upOptions(argv)).find((c) => c.name === 'actuators')!;
    const args = child.spec({ feeder: '127.0.0.1:1', queue: '127.0.0.1:2' })!.argv.slice(2) as string[];
    const split = asDriversUp(args.slice(0, args.indexOf('--brokers')));
    expect(split.devices).toEqual([]);
    expect(split.drivers).toEqual(['eventnet']);
    expect(split.ports).toEqual({ cpupooling: 0, eventnet: 0, memorypooling: 0, cloudfs: 0 });
    // virgo drivers up, by hand, with the same flag
    expect(asDriversUp(['drivers', 'up', '--devices', 'none']).devices).toEqual([]);
    // virgo up, one process (embedded)
    const o = { ...upOptions(argv), brokers: [], stateDir: tempState(), input: 'none' };
    const p = await startPipeline(o);
    try {
      expect(p.actuators.drone()).toBeUndefined();
      expect(p.actuators.webcam).toBeUndefined();
      expect(Object.keys(p.actuators.drivers.ports)).toEqual(['eventnet']);
      expect(p.endpoints.eventnet).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(p.endpoints.cpupooling).toBeUndefined();
    } finally {
      await p.close();
    }
  });

  it('a new stage is one declaration: its flag parses, reaches its start in one process and its command line under --split', async () => {
    const seen: string[] = [];
    const dashboard: PipelineStage<{ title: string }> = {
      name: 'dashboard',
      listens: true,
      after: ['feeder'],
      options: { title: { type: 'string', default: 'virgo', description: 'page title' } },
      configure: (flags, o) => Object.assign(o, { title: String(flags.title) }),
      start: async (ctx) => {
        const title = (ctx.o as { title?: string }).title ?? '';
        seen.push(title);
        return { handle: { title }, endpoints: { dashboard: 'here' }, close: async () => {} };
      },
      child: (o) => ({ args: ['dashboard', '--title', (o as { title?: string }).title ?? ''] }),
    };
    const stages = [...PIPELINE, dashboard];
    const o = upOptions(['--title', 'edge-7'], stages);
    expect(names(inProcessOrder(o, stages))).toContain('dashboard');
    const spec = splitChildren(o, stages)
      .find((c) => c.name === 'dashboard')!
      .spec({});
    expect(spec!.argv.slice(2)).toEqual(['dashboard', '--title', 'edge-7']);
    // alone in one process (embedded bus): only the stage itself starts
    const t = await startInProcess({ ...o, brokers: [], stateDir: tempState() }, [dashboard]);
    try {
      expect(seen).toEqual(['edge-7']);
      expect(t.handle(dashboard)).toEqual({ title: 'edge-7' });
      expect(t.endpoints).toEqual({ dashboard: 'here' });
      expect(t.health()).toMatchObject({ ok: true, mode: 'embedded' });
    } finally {
      await t.close();
    }
  });

  it('virgo up --split: each child gets its secret in its environment, never in its arguments', () => {
    const o = { ...upOptions([]), secrets: { queue: 'q-s3cret', drivers: 'd-s3cret' } };
    const endpoints: Record<string, string> = { feeder: '127.0.0.1:41000', queue: '127.0.0.1:41001' };
    const env: Record<string, NodeJS.ProcessEnv> = {};
    for (const c of splitChildren(o)) {
      const spec = c.spec(endpoints);
      if (!spec) continue;
      expect(spec.argv.join(' ')).not.toMatch(/s3cret/);
      env[c.name] = spec.env ?? {};
    }
    expect(env.queue).toMatchObject({ VIRGO_QUEUE_SECRET: 'q-s3cret' });
    // the actuators serve the drivers' secret and send the queue's with device replies
    expect(env.actuators).toMatchObject({ VIRGO_DRIVERS_SECRET: 'd-s3cret', VIRGO_QUEUE_SECRET: 'q-s3cret' });
  });

  it('virgo drivers up reads back exactly the configuration --split writes (every field, the secrets by environment)', () => {
    const c: ActuatorsConfig = {
      drivers: ['cpupooling', 'cloudfs'],
      devices: ['webcam'],
      listenHost: '10.0.0.5',
      ports: { cpupooling: 11000, cloudfs: 0 },
      deviceIds: { drone: 'pxrc-9', webcam: 'uvc-9' },
      courseSeed: 42,
      cloudfsRoot: '/srv/cloudfs',
      eventnetDir: '/srv/eventnet',
      nodesFile: '/etc/virgo_cloud.conf',
      mempool: 'redis',
      secret: 's3cret',
      queueSecret: 'q-s3cret',
      handshakeTimeoutMs: 2_500,
      allow: ['127.0.0.1', '10.0.0.7'],
      sets: [
        { host: '', key: 'cpupooling.balancer', value: 'analytics' },
        { host: 'edge-1', key: 'k', value: 'a=b' },
      ],
      feeder: { host: '10.0.0.2', port: 64001 },
      redis: { url: 'redis://10.0.0.3:6379', prefix: 'p:analytics' },
      queue: { host: '10.0.0.4', port: 60002 },
    };
    const { args, env } = actuatorsArgs(c);
    expect(args.join(' ')).not.toContain('s3cret');
    expect(asDriversUp(args, env)).toEqual(c);
    // the shared secret stands in for a missing service secret, the service's own wins
    const { secret: _s, queueSecret: _q, ...open } = c;
    expect(asDriversUp(args, { VIRGO_SECRET: 'shared' })).toEqual({
      ...open,
      secret: 'shared',
      queueSecret: 'shared',
    });
    expect(asDriversUp(args, { VIRGO_SECRET: 'shared', VIRGO_DRIVERS_SECRET: 'own' })).toMatchObject({
      secret: 'own',
      queueSecret: 'shared',
    });
    expect(() => asDriversUp([...args, '--secret', 'in-ps'])).toThrow(
      /--secret is not accepted.*--secret-file/,
    );
  });

  it("drivers up's ready line gives the drivers' endpoints", () => {
    expect(
      parseDriversReady(
        'listening cpupooling=127.0.0.1:10000 cloudfs=127.0.0.1:50000 devices=none variables=x',
      ),
    ).toEqual({ cpupooling: '127.0.0.1:10000', cloudfs: '127.0.0.1:50000' });
    expect(parseDriversReady('listening none devices=drone:pxrc-1 variables=x')).toEqual({});
    expect(parseDriversReady('{"msg":"listening"}')).toBeUndefined();
  });
});
