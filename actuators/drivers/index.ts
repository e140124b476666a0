// actuators/drivers/: the VIRGO pooling drivers as user-space services that act on the
// analytics variables (docs/design.md §6.2). Imports: runtime/, kernel-analytics/ (table, validate);
// ioredis only inside RedisVariables.connect / when a Redis store is made.

import { CloudFs, type CloudFsOptions } from './cloudfs.ts';
import { CpuPooling, type CpuPoolingOptions } from './cpupooling.ts';
import { EventNet, type EventNetOptions } from './eventnet.ts';
import { MemoryPooling, type MemoryPoolingOptions } from './memorypooling.ts';
import { DEFAULT_PORTS, DRIVER_NAMES, type DriverName } from './ports.ts';
import type { VariableSource } from './variables.ts';

export {
  analyticsPick,
  BALANCER_RULES,
  type BalancerRule,
  balancerRule,
  CPU_VARS,
  expectedRequestsPerNode,
  nodeLoad,
  prgPick,
} from './balancer.ts';
export { type Call, expectCall, parseCall } from './call-syntax.ts';
export { type CloneFunction, defaultRegistry, FunctionRegistry } from './clone-functions.ts';
export { CloudFs, type CloudFsOptions, checkRelativePath, FS_VARS } from './cloudfs.ts';
export {
  type CloneRequest,
  CpuPooling,
  type CpuPoolingOptions,
  type Pick,
  parseCloneRequest,
} from './cpupooling.ts';
export { escapeBytes, unescapeBytes } from './data-escape.ts';
export {
  createDriverServer,
  DriverError,
  type DriverErrorCode,
  DriverService,
  type DriverStats,
} from './driver-server.ts';
export {
  EDGES_FILE,
  EventNet,
  type EventNetMessage,
  type EventNetOptions,
  formatEventNetLine,
  parseEventNetMessage,
  VERTICES_FILE,
} from './eventnet.ts';
export { InProcessMemoryStore, type MemoryStore, type PoolLimits, RedisMemoryStore } from './memory-store.ts';
export {
  MEM_DEFAULTS,
  MEM_VARS,
  type MemoryLimits,
  MemoryPooling,
  type MemoryPoolingOptions,
} from './memorypooling.ts';
export { NodeClient } from './node-client.ts';
export {
  CLOUDFS_PORT,
  CPUPOOLING_PORT,
  DEFAULT_PORTS,
  DRIVER_NAMES,
  type DriverName,
  EVENTNET_PORT,
  MEMORYPOOLING_PORT,
} from './ports.ts';
export { RedisVariables, type RedisVariablesOptions } from './redis-variables.ts';
export { TokenBucket } from './token-bucket.ts';
export * from './variables.ts';
export {
  CloudConfError,
  type CloudNode,
  nodeId,
  parseNodeEntry,
  parseVirgoCloudConf,
  readVirgoCloudConf,
} from './virgo-cloud-conf.ts';

type Without<T> = Omit<T, 'variables' | 'host' | 'port'>;

export interface DriversConfig {
  variables: VariableSource;
  /** bind address of every driver (default 127.0.0.1) */
  host?: string;
  /** per driver; 0 picks a free port */
  ports?: Partial<Record<DriverName, number>>;
  /** which to start (default all) */
  only?: readonly DriverName[];
  cpupooling?: Without<CpuPoolingOptions>;
  memorypooling?: Without<MemoryPoolingOptions>;
  cloudfs: Without<CloudFsOptions>;
  eventnet: Without<EventNetOptions>;
}

export interface RunningDrivers {
  cpupooling?: CpuPooling;
  memorypooling?: MemoryPooling;
  cloudfs?: CloudFs;
  eventnet?: EventNet;
  ports: Partial<Record<DriverName, number>>;
  close(): Promise<void>;
}

/** Starts the asked drivers; if one cannot start, those already started are closed again. */
export async function startDrivers(cfg: DriversConfig): Promise<RunningDrivers> {
  const only = new Set(cfg.only ?? DRIVER_NAMES);
  const port = (n: DriverName) => cfg.ports?.[n] ?? DEFAULT_PORTS[n];
  const base = { variables: cfg.variables, ...(cfg.host !== undefined ? { host: cfg.host } : {}) };
  const running: RunningDrivers = {
    ports: {},
    async close() {
      await Promise.all([
        running.cpupooling?.close(),
        running.memorypooling?.close(),
        running.cloudfs?.close(),
        running.eventnet?.close(),
      ]);
    },
  };
  try {
    if (only.has('cpupooling')) {
      running.cpupooling = new CpuPooling({ ...cfg.cpupooling, ...base, port: port('cpupooling') });
      running.ports.cpupooling = await running.cpupooling.start();
    }
    if (only.has('eventnet')) {
      const { variables: _v, ...rest } = base;
      running.eventnet = new EventNet({ ...cfg.eventnet, ...rest, port: port('eventnet') });
      running.ports.eventnet = await running.eventnet.start();
    }
    if (only.has('memorypooling')) {
      running.memorypooling = new MemoryPooling({
        ...cfg.memorypooling,
        ...base,
        port: port('memorypooling'),
      });
      running.ports.memorypooling = await running.memorypooling.start();
    }
    if (only.has('cloudfs')) {
      running.cloudfs = new CloudFs({ ...cfg.cloudfs, ...base, port: port('cloudfs') });
      running.ports.cloudfs = await running.cloudfs.start();
    }
  } catch (err) {
    await running.close().catch(() => {});
    throw err;
  }
  return running;
}
