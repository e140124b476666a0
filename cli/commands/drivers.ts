import { once } from 'node:events';
import {
  CONNECTION_OPTIONS,
  parseAllowList,
  parseHostPort,
  parseNameList,
  UsageError,
} from '../../runtime/config.ts';
import { enableProcessMetrics, serveMetrics } from '../../runtime/metrics.ts';
import { stateDir } from '../../runtime/paths.ts';
import { exitOnSignals, onShutdown, shutdown } from '../../runtime/shutdown.ts';
import { busFromOptions, defineCommand } from '../command.ts';

const DRIVERS = ['cpupooling', 'eventnet', 'memorypooling', 'cloudfs'] as const;
type Driver = (typeof DRIVERS)[number];
const DEVICES = ['drone', 'webcam'] as const;

function parsePorts(raw: string | undefined): Partial<Record<Driver, number>> {
  const ports: Partial<Record<Driver, number>> = {};
  if (!raw) return ports;
  for (const part of raw.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*(\d{1,5})\s*$/.exec(part);
    if (!m || !(DRIVERS as readonly string[]).includes(m[1]!) || Number(m[2]) > 65535) {
      throw new UsageError(
        `--ports: ${JSON.stringify(part)} is not driver=port (drivers: ${DRIVERS.join(', ')}; 0 picks a free port)`,
      );
    }
    ports[m[1] as Driver] = Number(m[2]);
  }
  return ports;
}

/** `key=value` or `host/key=value`: the part before the first '/' is a host when the key has one. */
function parseSet(raw: string): { host: string; key: string; value: string } {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set ${JSON.stringify(raw)}: expected key=value or host/key=value`);
  const left = raw.slice(0, eq);
  const slash = left.indexOf('/');
  return slash > 0
    ? { host: left.slice(0, slash), key: left.slice(slash + 1), value: raw.slice(eq + 1) }
    : { host: '', key: left, value: raw.slice(eq + 1) };
}

export default defineCommand({
  name: 'drivers',
  summary: 'run the pooling drivers and the drone/webcam device models on the analytics variables',
  usage: `virgo drivers up [--feeder HOST:64000 | --redis URL] [--listen-base 127.0.0.1]
                  [--ports cpupooling=10000,eventnet=20000,memorypooling=30000,cloudfs=50000]
                  [--only cpupooling,…] [--devices drone,webcam|none] [--queue HOST:60000]`,
  details: `Drivers (telnet-compatible, one request per line; "help" on any port lists its requests):
  cpupooling :10000     virgo_clone(fib,30) | fib 30   -> node=<node> rule=<prg|analytics> result=…
                        runs registered functions only; the node is chosen by cpupooling.balancer
                        (prg: random % N over --nodes; analytics: least cpupooling.predicted_exec_ms,
                        else cpupooling.least_loaded_node)
  eventnet :20000       eventnet_edgemsg#<from>#<to>#, eventnet_vertexmsg#<id>#<a0>#<a1> -> ok
  memorypooling :30000  virgo_cloud_malloc(<size>) set(<vuid>,<data>) get(<vuid>) free(<vuid>)
                        limits memorypooling.max_bytes (one block), memorypooling.pool_bytes (all)
  cloudfs :50000        virgo_cloud_open(<path>) read(<fd>,none,<count>,<pos>)
                        write(<fd>,<data>,<count>,<pos>) close(<fd>), inside --cloudfs-root only;
                        writes limited to cloudfs.write_bytes_per_s
Devices: a PXRC drone (flies a seeded course on pxrc.throttle|brake|yaw|max_speed of its own id,
publishes virgo.drone-sensors) and a UVC webcam (acts on match=True|False of its own id,
publishes virgo.webcam-frames); both reply to the VIRGO queue given with --queue.
Variables come from a feeder (the ring-buffer consumer; default 127.0.0.1:64000, reconnecting) or,
with --redis, from the hashes virgo:analytics:<host> and their change channels.
Prints one "listening …" line on stdout when ready.
examples:
  virgo drivers up --feeder 127.0.0.1:64000 --queue 127.0.0.1:60000
  virgo drivers up --redis redis://127.0.0.1:6379 --nodes /etc/virgo_cloud.conf --devices none
  echo 'virgo_clone(fib,30)' | nc -N 127.0.0.1 10000`,
  options: {
    feeder: {
      type: 'string',
      env: 'VIRGO_FEEDER',
      default: '127.0.0.1:64000',
      arg: 'HOST:PORT',
      description: 'read variables from this feeder (ignored with --redis)',
    },
    redis: CONNECTION_OPTIONS.redis,
    brokers: CONNECTION_OPTIONS.brokers,
    'redis-prefix': {
      type: 'string',
      default: 'virgo:analytics',
      arg: 'PREFIX',
      description: "the exporter's key prefix",
    },
    'listen-base': {
      type: 'string',
      env: 'VIRGO_DRIVERS_LISTEN',
      default: '127.0.0.1',
      arg: 'HOST',
      description: 'address every driver binds',
    },
    ports: {
      type: 'string',
      arg: 'NAME=PORT,…',
      description: 'ports other than 10000/20000/30000/50000 (0: any free port)',
    },
    only: { type: 'string', arg: 'NAME,…', description: 'start only these drivers (none: no driver)' },
    nodes: {
      type: 'string',
      env: 'VIRGO_CLOUD_CONF',
      arg: 'FILE',
      description: 'virgo_cloud.conf node list',
    },
    'cloudfs-root': {
      type: 'string',
      arg: 'DIR',
      description: 'cloudfs root (default $VIRGO_STATE_DIR/cloudfs)',
    },
    'eventnet-dir': {
      type: 'string',
      arg: 'DIR',
      description: 'EventNetEdges.txt / EventNetVertices.txt (default $VIRGO_STATE_DIR/eventnet)',
    },
    mempool: {
      type: 'string',
      default: 'memory',
      arg: 'memory|redis',
      description: 'where memorypooling keeps blocks',
    },
    devices: {
      type: 'string',
      default: 'drone,webcam',
      arg: 'drone,webcam|none',
      description: 'device models to run',
    },
    'drone-id': {
      type: 'string',
      default: 'pxrc-1',
      arg: 'ID',
      description: "the drone's device id (its variables' host)",
    },
    'webcam-id': { type: 'string', default: 'uvc-1', arg: 'ID', description: "the webcam's device id" },
    'course-seed': {
      type: 'number',
      default: 1,
      description: 'first obstacle course; each arrival flies the next',
    },
    queue: {
      type: 'string',
      env: 'VIRGO_QUEUE',
      arg: 'HOST:PORT',
      description: 'VIRGO queue text port for device replies',
    },
    set: {
      type: 'string',
      multiple: true,
      arg: '[HOST/]KEY=VALUE',
      description: 'start with this variable set (repeatable), e.g. cpupooling.balancer=analytics',
    },
    secret: {
      type: 'string',
      env: 'VIRGO_DRIVERS_SECRET',
      arg: 'SECRET',
      description: 'clients must first send "AUTH <secret>"',
    },
    allow: {
      type: 'string',
      env: 'VIRGO_DRIVERS_ALLOW',
      arg: 'IP,…',
      description: 'only these client addresses may connect (default: any that reaches --listen-base)',
    },
    metrics: {
      type: 'string',
      env: 'VIRGO_METRICS',
      arg: 'HOST:PORT',
      description: 'serve /metrics and /health',
    },
  },
  async run({ opts, args, io }) {
    if (args[0] !== 'up')
      throw new UsageError('usage: virgo drivers up [options] (see virgo drivers --help)');
    const drivers = await import('../../actuators/drivers/index.ts');
    const devices = await import('../../actuators/devices/index.ts');
    const { VariableTable } = await import('../../kernel-analytics/table.ts');
    const only = opts.only === undefined ? [...DRIVERS] : parseNameList('only', String(opts.only), DRIVERS);
    const wantDevices = parseNameList('devices', String(opts.devices), DEVICES);
    const ports = parsePorts(opts.ports as string | undefined);
    const sets = ((opts.set as string[] | undefined) ?? []).map(parseSet);
    let nodes: import('../../actuators/drivers/index.ts').CloudNode[] | undefined;
    if (opts.nodes) {
      try {
        nodes = drivers.readVirgoCloudConf(String(opts.nodes));
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    const deviceIds = { drone: String(opts['drone-id']), webcam: String(opts['webcam-id']) };
    const redisUrl = opts.redis as string | undefined;
    if (opts.mempool !== 'memory' && opts.mempool !== 'redis') {
      throw new UsageError(`--mempool must be memory or redis, got ${opts.mempool}`);
    }
    if (only.includes('memorypooling') && opts.mempool === 'redis' && !redisUrl) {
      throw new UsageError('--mempool redis needs --redis URL (or VIRGO_REDIS_URL)');
    }
    const queueAddr = opts.queue ? parseHostPort(String(opts.queue)) : undefined;
    const metricsAddr = opts.metrics ? parseHostPort(String(opts.metrics)) : undefined;
    const feederAddr = parseHostPort(String(opts.feeder));
    const allow = parseAllowList(opts.allow);
    // From here on resources exist: a failure must release them, or their timers keep us alive.
    try {
      return await serve();
    } catch (err) {
      await shutdown();
      throw err;
    }

    async function serve(): Promise<number> {
      const { startActuators, tableFromFeeder } = await import('../../actuators/stage.ts');
      // Where variables come from: Redis, or feeder consumers writing into one table.
      let table: InstanceType<typeof VariableTable>;
      let source: string;
      let startConsumers = () => {};
      if (redisUrl) {
        const rv = await drivers.RedisVariables.connect({
          url: redisUrl,
          prefix: String(opts['redis-prefix']),
        });
        onShutdown('redis-variables', () => rv.close());
        table = rv.table;
        source = `redis ${redisUrl.replace(/\/\/[^@/]*@/, '//***@')}`;
      } else {
        const fed = tableFromFeeder({
          host: feederAddr.host,
          port: feederAddr.port,
          deviceHosts: wantDevices.map((d) => deviceIds[d]),
          name: 'drivers',
          autoStart: false,
        });
        startConsumers = fed.start;
        onShutdown('consumers', () => fed.close());
        table = fed.table;
        source = `feeder ${feederAddr.host}:${feederAddr.port}`;
      }
      // operator overrides sit in front of the learnt variables (a resync from Redis keeps them)
      const fixed = new VariableTable({ name: 'drivers-set' });
      for (const s of sets) {
        if (fixed.set(s.key, s.value, { host: s.host }) === 'invalid') {
          throw new UsageError(
            `--set ${s.host ? `${s.host}/` : ''}${s.key}=${s.value}: not a valid variable`,
          );
        }
      }
      const variables = sets.length > 0 ? drivers.layered(fixed, table) : table;

      let memoryStore: import('../../actuators/drivers/index.ts').MemoryStore | undefined;
      if (only.includes('memorypooling') && opts.mempool === 'redis') {
        const { Redis } = await import('ioredis');
        const client = new Redis(redisUrl!, { maxRetriesPerRequest: 2 });
        client.on('error', () => {});
        onShutdown('mempool-redis', async () => {
          await client.quit().catch(() => client.disconnect());
        });
        memoryStore = new drivers.RedisMemoryStore(client);
      }

      // Devices publish frames on the bus (Kafka with --brokers, else in-process) and reply to the queue.
      let bus: import('../../bus/index.ts').Bus | undefined;
      let replies: InstanceType<typeof devices.TcpQueueSink> | undefined;
      if (wantDevices.length > 0) {
        const b = busFromOptions(opts, 'virgo-drivers');
        bus = b;
        onShutdown('bus', () => b.close());
        if (queueAddr) {
          const sink = new devices.TcpQueueSink(queueAddr.host, queueAddr.port);
          replies = sink;
          onShutdown('queue-client', () => sink.close());
        }
      }
      const host = String(opts['listen-base']);
      const actuators = await startActuators({
        variables,
        drivers: only,
        devices: wantDevices,
        ...(bus ? { bus } : {}),
        ...(replies ? { replies } : {}),
        host,
        ports,
        ...(nodes ? { nodes } : {}),
        ...(memoryStore ? { memoryStore } : {}),
        ...(opts.secret ? { secret: String(opts.secret) } : {}),
        ...(allow ? { allow } : {}),
        cloudfsRoot: (opts['cloudfs-root'] as string | undefined) ?? stateDir('cloudfs'),
        eventnetDir: (opts['eventnet-dir'] as string | undefined) ?? stateDir('eventnet'),
        deviceIds,
        courseSeed: opts['course-seed'] as number,
      });
      onShutdown('actuators', () => actuators.close());
      startConsumers();
      const running = actuators.drivers;

      if (metricsAddr) {
        enableProcessMetrics();
        const m = metricsAddr;
        const srv = await serveMetrics({
          host: m.host,
          port: m.port,
          health: () => ({ ok: true, ports: running.ports, variables: table.size, source }),
        });
        onShutdown('metrics', () => srv.close());
      }

      const listening = Object.entries(running.ports)
        .map(([n, p]) => `${n}=${host}:${p}`)
        .join(' ');
      const devs = wantDevices.map((d) => `${d}:${deviceIds[d]}`).join(',') || 'none';
      const line = `listening ${listening || 'none'} devices=${devs} variables=${source}\n`;
      if (!io.stdout.write(line)) await once(io.stdout, 'drain');
      await exitOnSignals();
      await shutdown();
      return 0;
    }
  },
});
