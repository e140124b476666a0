// What acts on the variables: the pooling drivers (:10000 … :50000) and the device models.
// One configuration (ActuatorsConfig, actuators-config.ts) and one start function serve all
// three ways it runs:
//   `virgo up`          next to the consumer (its table) and the queue (replies) in one process
//   `virgo up --split`  as `virgo drivers up <actuatorsArgs(config)>`
//   `virgo drivers up`  alone: actuatorsConfig(flags) read from DRIVERS_UP_OPTIONS
import { join } from 'node:path';
import { DEFAULT_DEVICE_IDS, DEVICE_NAMES } from '../../actuators/devices/ids.ts';
import { DRIVER_NAMES } from '../../actuators/drivers/ports.ts';
import type { Actuators } from '../../actuators/stage.ts';
import type { Bus } from '../../bus/index.ts';
import type { VariableTable } from '../../kernel-analytics/index.ts';
import { FEEDER_PORT } from '../../kernel-analytics/ports.ts';
import { parseHostPort, parseNameList, UsageError } from '../../runtime/config.ts';
import type { Endpoints } from '../../runtime/topology.ts';
import { type ActuatorsConfig, actuatorsArgs, parseDriversReady } from './actuators-config.ts';
import { consumerStage } from './consumer.ts';
import { queueStage } from './queue.ts';
import { type Built, connectHost, type PipelineOptions, type PipelineStage, reach } from './stage.ts';
import { variableInput } from './variables.ts';

/** The configuration `virgo up` gives this stage, with the endpoints of the feeder and queue. */
export function actuatorsFromPipeline(o: PipelineOptions, endpoints: Readonly<Endpoints>): ActuatorsConfig {
  const host = o.listenHost ?? '127.0.0.1';
  const at = (e: string | undefined, port: number) =>
    parseHostPort(e ? reach(e) : `${connectHost(host)}:${port}`);
  return {
    drivers: o.drivers ?? DRIVER_NAMES,
    devices: o.devices ?? DEVICE_NAMES,
    listenHost: host,
    ports: { ...(o.driverPorts ?? {}) },
    deviceIds: { ...DEFAULT_DEVICE_IDS },
    courseSeed: 1,
    cloudfsRoot: join(o.stateDir, 'cloudfs'),
    eventnetDir: join(o.stateDir, 'eventnet'),
    mempool: 'memory',
    ...(o.secrets?.drivers ? { secret: o.secrets.drivers } : {}),
    // device replies go to the queue over TCP only as separate processes (--split)
    ...(endpoints.queue && o.secrets?.queue ? { queueSecret: o.secrets.queue } : {}),
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? 5_000,
    sets: [],
    feeder: at(endpoints.feeder, o.feederPort ?? FEEDER_PORT),
    ...(endpoints.queue ? { queue: at(endpoints.queue, 0) } : {}),
  };
}

export interface ActuatorsPeers {
  bus: Bus;
  /** a table filled in this process (the consumer stage's); absent: read c.redis or c.feeder */
  variables?: VariableTable;
  /** the queue in this process; absent: a TCP client of c.queue, if given */
  replies?: { submit(payload: string, clientAddr: string): Promise<unknown> };
}

export interface ActuatorsHandle extends Actuators {
  /** where the variables come from, for the ready line */
  readonly source: string;
  /** every variable the drivers read */
  readonly table: { readonly size: number };
}

/** Starts the drivers and devices of `c`; their feeder consumers connect on connect(). */
export async function startActuatorsStage(
  c: ActuatorsConfig,
  peers: ActuatorsPeers,
): Promise<Built<ActuatorsHandle>> {
  // a Redis that does not answer fails start-up now, with the fix (runtime/redis-probe.ts)
  if (c.redis && !peers.variables) {
    const { probeRedis } = await import('../../runtime/redis-probe.ts');
    await probeRedis(c.redis.url);
  }
  const drivers = await import('../../actuators/drivers/index.ts');
  const devices = await import('../../actuators/devices/index.ts');
  const { startActuators, tableFromFeeder } = await import('../../actuators/stage.ts');
  const { VariableTable } = await import('../../kernel-analytics/table.ts');
  let nodes: import('../../actuators/drivers/index.ts').CloudNode[] | undefined;
  if (c.nodesFile) {
    try {
      nodes = drivers.readVirgoCloudConf(c.nodesFile);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  // From here on resources exist: a failure releases them (newest first), or their timers keep
  // the process alive.
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const f of closers.splice(0).reverse()) await f().catch(() => {});
  };
  try {
    // Where variables come from: this process's consumer, Redis, or feeder consumers of our own.
    const { table, source, connect, close } = await variableInput({
      inProcess: peers.variables,
      redis: c.redis,
      feeder: () => {
        const fed = tableFromFeeder({
          host: c.feeder.host,
          port: c.feeder.port,
          deviceHosts: c.devices.map((d) => c.deviceIds[d]),
          name: 'drivers',
          autoStart: false,
        });
        return {
          table: fed.table,
          source: `feeder ${c.feeder.host}:${c.feeder.port}`,
          connect: fed.start,
          close: fed.close,
        };
      },
    });
    closers.push(async () => {
      await close();
    });
    // operator overrides sit in front of the learnt variables (a resync from Redis keeps them)
    const fixed = new VariableTable({ name: 'drivers-set' });
    for (const s of c.sets) {
      if (fixed.set(s.key, s.value, { host: s.host }) === 'invalid') {
        throw new UsageError(`--set ${s.host ? `${s.host}/` : ''}${s.key}=${s.value}: not a valid variable`);
      }
    }
    const variables = c.sets.length > 0 ? drivers.layered(fixed, table) : table;

    let memoryStore: import('../../actuators/drivers/index.ts').MemoryStore | undefined;
    if (c.drivers.includes('memorypooling') && c.mempool === 'redis' && c.redis) {
      const { Redis } = await import('ioredis');
      const client = new Redis(c.redis.url, { maxRetriesPerRequest: 2 });
      client.on('error', () => {});
      closers.push(async () => {
        await client.quit().catch(() => client.disconnect());
      });
      memoryStore = new drivers.RedisMemoryStore(client);
    }

    // Devices publish frames on the bus and reply to the queue.
    let replies = peers.replies;
    if (!replies && c.queue && c.devices.length > 0) {
      const sink = new devices.TcpQueueSink(c.queue.host, c.queue.port, {
        ...(c.queueSecret ? { secret: c.queueSecret } : {}),
      });
      closers.push(async () => sink.close());
      replies = sink;
    }
    const actuators = await startActuators({
      variables,
      drivers: c.drivers,
      devices: c.devices,
      bus: peers.bus,
      ...(replies ? { replies } : {}),
      host: c.listenHost,
      ports: c.ports,
      ...(nodes ? { nodes } : {}),
      ...(memoryStore ? { memoryStore } : {}),
      ...(c.secret ? { secret: c.secret } : {}),
      handshakeTimeoutMs: c.handshakeTimeoutMs,
      ...(c.allow ? { allow: c.allow } : {}),
      cloudfsRoot: c.cloudfsRoot,
      eventnetDir: c.eventnetDir,
      deviceIds: c.deviceIds,
      courseSeed: c.courseSeed,
    });
    closers.push(() => actuators.close());
    const endpoints = Object.fromEntries(
      Object.entries(actuators.drivers.ports).map(([n, p]) => [n, `${c.listenHost}:${p}`]),
    );
    return {
      handle: Object.assign(actuators, { source, table }),
      endpoints,
      health: () => ({ flights: actuators.flights.slice(-5) }),
      connect,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

export const actuatorsStage: PipelineStage<ActuatorsHandle> = {
  name: 'actuators',
  listens: true,
  // they read the feeder's variables and reply to the queue
  after: ['feeder', 'queue'],
  // in one process, through the consumer's table
  uses: ['consumer'],
  options: {
    drivers: { type: 'string', arg: 'NAME,…|none', description: 'drivers to start (default all)' },
    devices: { type: 'string', arg: 'drone,webcam|none', description: 'device models (default both)' },
  },
  configure(flags, o) {
    if (flags.drivers !== undefined)
      o.drivers = parseNameList('drivers', String(flags.drivers), DRIVER_NAMES);
    if (flags.devices !== undefined)
      o.devices = parseNameList('devices', String(flags.devices), DEVICE_NAMES);
    if (flags['any-ports'] === true) {
      o.driverPorts = Object.fromEntries(DRIVER_NAMES.map((n) => [n, 0]));
    }
  },
  start(ctx) {
    const queue = ctx.peer(queueStage);
    return startActuatorsStage(actuatorsFromPipeline(ctx.o, {}), {
      bus: ctx.bus,
      ...(ctx.peer(consumerStage) ? { variables: ctx.peer(consumerStage)!.table } : {}),
      ...(queue ? { replies: { submit: (payload, clientAddr) => queue.submit(payload, clientAddr) } } : {}),
    });
  },
  child(o, endpoints) {
    const { args, env } = actuatorsArgs(actuatorsFromPipeline(o, endpoints));
    return {
      args: [...args, '--brokers', (o.brokers ?? []).join(',')],
      env,
      ready: parseDriversReady,
    };
  },
};
