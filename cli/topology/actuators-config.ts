// The actuators stage's configuration and its two spellings: `virgo drivers up`'s flags
// (DRIVERS_UP_OPTIONS, read by actuatorsConfig) and the same flags written back for a child
// process (actuatorsArgs), so that actuatorsConfig(parse(actuatorsArgs(c))) is c again.
import { DEFAULT_DEVICE_IDS, DEVICE_NAMES, type DeviceName } from '../../actuators/devices/ids.ts';
import { DEFAULT_PORTS, DRIVER_NAMES, type DriverName } from '../../actuators/drivers/ports.ts';
import { FEEDER_PORT } from '../../kernel-analytics/ports.ts';
import {
  CONNECTION_OPTIONS,
  type OptionDefs,
  type OptionValues,
  parseAllowList,
  parseHostPort,
  parseNameList,
  UsageError,
} from '../../runtime/config.ts';
import {
  HANDSHAKE_TIMEOUT_OPTION,
  handshakeTimeoutMs,
  refuseSecretFlag,
  resolveSecret,
  SECRET_ENV,
  SECRET_FILE_OPTION,
  SECRET_FLAG_REFUSED,
} from '../../runtime/secret.ts';
import type { Endpoints } from '../../runtime/topology.ts';

/** `virgo drivers up`'s options: the actuators stage's whole configuration as flags. */
export const DRIVERS_UP_OPTIONS = {
  feeder: {
    type: 'string',
    env: 'VIRGO_FEEDER',
    default: `127.0.0.1:${FEEDER_PORT}`,
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
    description: `ports other than ${Object.values(DEFAULT_PORTS).join('/')} (0: any free port)`,
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
    default: DEVICE_NAMES.join(','),
    arg: 'drone,webcam|none',
    description: 'device models to run',
  },
  'drone-id': {
    type: 'string',
    default: DEFAULT_DEVICE_IDS.drone,
    arg: 'ID',
    description: "the drone's device id (its variables' host)",
  },
  'webcam-id': {
    type: 'string',
    default: DEFAULT_DEVICE_IDS.webcam,
    arg: 'ID',
    description: "the webcam's device id",
  },
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
  'secret-file': SECRET_FILE_OPTION,
  secret: SECRET_FLAG_REFUSED,
  'handshake-timeout': HANDSHAKE_TIMEOUT_OPTION,
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
    description: 'serve the dashboard (/), /metrics and /health',
  },
} as const satisfies OptionDefs;

export interface VariableSet {
  host: string;
  key: string;
  value: string;
}

export interface ActuatorsConfig {
  drivers: readonly DriverName[];
  devices: readonly DeviceName[];
  listenHost: string;
  /** per driver; absent: its well-known port; 0: any free one */
  ports: Partial<Record<DriverName, number>>;
  deviceIds: Record<DeviceName, string>;
  courseSeed: number;
  cloudfsRoot: string;
  eventnetDir: string;
  /** virgo_cloud.conf node list for cpupooling */
  nodesFile?: string;
  mempool: 'memory' | 'redis';
  /** clients of the drivers must first send `AUTH <secret>`; forwarded virgo_clone calls send it */
  secret?: string;
  /** what device replies send to the queue (--queue) first */
  queueSecret?: string;
  /** with a secret: time a connection has to authenticate */
  handshakeTimeoutMs: number;
  allow?: string[];
  /** operator overrides in front of the learnt variables */
  sets: VariableSet[];
  /** where the variables come from when no consumer runs in this process: a feeder … */
  feeder: { host: string; port: number };
  /** … or the Redis export's hashes (and Redis for --mempool redis) */
  redis?: { url: string; prefix: string };
  /** device replies, when no queue runs in this process */
  queue?: { host: string; port: number };
}

function parsePorts(raw: string | undefined): Partial<Record<DriverName, number>> {
  const ports: Partial<Record<DriverName, number>> = {};
  if (!raw) return ports;
  for (const part of raw.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*(\d{1,5})\s*$/.exec(part);
    if (!m || !(DRIVER_NAMES as readonly string[]).includes(m[1]!) || Number(m[2]) > 65535) {
      throw new UsageError(
        `--ports: ${JSON.stringify(part)} is not driver=port (drivers: ${DRIVER_NAMES.join(', ')}; 0 picks a free port)`,
      );
    }
    ports[m[1] as DriverName] = Number(m[2]);
  }
  return ports;
}

/** `key=value` or `host/key=value`: the part before the first '/' is a host when the key has one. */
function parseSet(raw: string): VariableSet {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set ${JSON.stringify(raw)}: expected key=value or host/key=value`);
  const left = raw.slice(0, eq);
  const slash = left.indexOf('/');
  return slash > 0
    ? { host: left.slice(0, slash), key: left.slice(slash + 1), value: raw.slice(eq + 1) }
    : { host: '', key: left, value: raw.slice(eq + 1) };
}

/** `virgo drivers up`'s flags into the configuration; bad flags are UsageErrors. */
export function actuatorsConfig(
  opts: OptionValues<typeof DRIVERS_UP_OPTIONS>,
  defaultDir: (sub: string) => string,
  env: NodeJS.ProcessEnv = process.env,
): ActuatorsConfig {
  refuseSecretFlag(opts.secret, 'drivers');
  const secret = resolveSecret('drivers', opts['secret-file'], env);
  const queueSecret = opts.queue ? resolveSecret('queue', opts['secret-file'], env) : undefined;
  const drivers =
    opts.only === undefined ? [...DRIVER_NAMES] : parseNameList('only', opts.only, DRIVER_NAMES);
  const mempool = opts.mempool ?? 'memory';
  if (mempool !== 'memory' && mempool !== 'redis') {
    throw new UsageError(`--mempool must be memory or redis, got ${mempool}`);
  }
  if (drivers.includes('memorypooling') && mempool === 'redis' && !opts.redis) {
    throw new UsageError('--mempool redis needs --redis URL (or VIRGO_REDIS_URL)');
  }
  const allow = parseAllowList(opts.allow);
  return {
    drivers,
    devices: parseNameList('devices', opts.devices ?? DEVICE_NAMES.join(','), DEVICE_NAMES),
    listenHost: opts['listen-base'] ?? '127.0.0.1',
    ports: parsePorts(opts.ports),
    deviceIds: {
      drone: opts['drone-id'] ?? DEFAULT_DEVICE_IDS.drone,
      webcam: opts['webcam-id'] ?? DEFAULT_DEVICE_IDS.webcam,
    },
    courseSeed: opts['course-seed'] ?? 1,
    cloudfsRoot: opts['cloudfs-root'] ?? defaultDir('cloudfs'),
    eventnetDir: opts['eventnet-dir'] ?? defaultDir('eventnet'),
    ...(opts.nodes ? { nodesFile: opts.nodes } : {}),
    mempool,
    ...(secret ? { secret: secret.secret } : {}),
    ...(queueSecret ? { queueSecret: queueSecret.secret } : {}),
    handshakeTimeoutMs: handshakeTimeoutMs(opts['handshake-timeout']),
    ...(allow ? { allow } : {}),
    sets: (opts.set ?? []).map(parseSet),
    feeder: parseHostPort(opts.feeder ?? `127.0.0.1:${FEEDER_PORT}`),
    ...(opts.redis ? { redis: { url: opts.redis, prefix: opts['redis-prefix'] ?? 'virgo:analytics' } } : {}),
    ...(opts.queue ? { queue: parseHostPort(opts.queue) } : {}),
  };
}

/**
 * The configuration as `virgo drivers up` arguments, every field spelled out so that the child
 * runs exactly it; the secrets go in the environment, never on a command line (`ps` shows those;
 * /proc/PID/environ is readable by the same user only).
 */
export function actuatorsArgs(c: ActuatorsConfig): { args: string[]; env: Record<string, string> } {
  const list = (xs: readonly string[]) => (xs.length > 0 ? xs.join(',') : 'none');
  const ports = Object.entries(c.ports).map(([n, p]) => `${n}=${p}`);
  const args = [
    'drivers',
    'up',
    '--feeder',
    `${c.feeder.host}:${c.feeder.port}`,
    ...(c.redis ? ['--redis', c.redis.url, '--redis-prefix', c.redis.prefix] : []),
    '--listen-base',
    c.listenHost,
    ...(ports.length > 0 ? ['--ports', ports.join(',')] : []),
    '--only',
    list(c.drivers),
    ...(c.nodesFile ? ['--nodes', c.nodesFile] : []),
    '--cloudfs-root',
    c.cloudfsRoot,
    '--eventnet-dir',
    c.eventnetDir,
    '--mempool',
    c.mempool,
    '--devices',
    list(c.devices),
    '--drone-id',
    c.deviceIds.drone,
    '--webcam-id',
    c.deviceIds.webcam,
    '--course-seed',
    String(c.courseSeed),
    ...(c.queue ? ['--queue', `${c.queue.host}:${c.queue.port}`] : []),
    ...c.sets.flatMap((s) => ['--set', `${s.host ? `${s.host}/` : ''}${s.key}=${s.value}`]),
    '--handshake-timeout',
    String(c.handshakeTimeoutMs / 1000),
    ...(c.allow ? ['--allow', c.allow.join(',')] : []),
  ];
  return {
    args,
    env: {
      ...(c.secret ? { [SECRET_ENV.drivers]: c.secret } : {}),
      ...(c.queueSecret ? { [SECRET_ENV.queue]: c.queueSecret } : {}),
    },
  };
}

/** `virgo drivers up`'s ready line: "listening NAME=HOST:PORT … devices=… variables=…". */
export function parseDriversReady(line: string): Endpoints | undefined {
  const m = /^listening (.*?) devices=/.exec(line);
  if (!m) return undefined;
  if (m[1] === 'none') return {};
  return Object.fromEntries(
    m[1]!.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}
