// Memory pooling, :30000: the original's kernel memcache over telnet.
//   virgo_cloud_malloc(<size>)       -> <vuid>            (decimal u64)
//   virgo_cloud_set(<vuid>,<data>)   -> ok                (data: the rest of the line, commas included)
//   virgo_cloud_get(<vuid>)          -> <data>
//   virgo_cloud_free(<vuid>)         -> kernel memory freed
// Limits come from variables, read per request: `memorypooling.max_bytes` (largest block),
// `memorypooling.pool_bytes` and `memorypooling.max_blocks` (all blocks together, in bytes and in
// number: a block costs memory beyond its bytes), `memorypooling.client_bytes` and
// `memorypooling.client_blocks` (what one client, told apart by its address, may hold). Lowering
// them never touches existing blocks. A block counts against the client that allocated it until
// it is freed, from whichever connection.
import type { LineClient } from '../../runtime/line-server.ts';
import { createLogger } from '../../runtime/log.ts';
import { gauge } from '../../runtime/metrics.ts';
import { expectCall, parseCount, parseU64, splitFirst } from './call-syntax.ts';
import { type CommonServerOptions, DriverError, DriverService } from './driver-server.ts';
import { InProcessMemoryStore, type MemoryStore, type PoolLimits } from './memory-store.ts';
import { MEMORYPOOLING_PORT } from './ports.ts';
import { readNumber, type VariableSource } from './variables.ts';

const log = createLogger('drivers.memorypooling');
const usedGauge = gauge('virgo_memorypooling_used_bytes', 'bytes allocated in the memory pool');
const blocksGauge = gauge('virgo_memorypooling_blocks', 'blocks allocated in the memory pool');

export const MEM_VARS = {
  maxBytes: 'memorypooling.max_bytes',
  poolBytes: 'memorypooling.pool_bytes',
  maxBlocks: 'memorypooling.max_blocks',
  clientBytes: 'memorypooling.client_bytes',
  clientBlocks: 'memorypooling.client_blocks',
} as const;

/** The limits when their variables are unset. */
export const MEM_DEFAULTS = {
  maxBytes: 1 << 20,
  poolBytes: 64 << 20,
  maxBlocks: 65_536,
  clientBytes: 16 << 20,
  clientBlocks: 16_384,
} as const;

const COMMANDS = ['virgo_cloud_malloc', 'virgo_cloud_set', 'virgo_cloud_get', 'virgo_cloud_free'] as const;
const HELP =
  'memorypooling: virgo_cloud_malloc(<size>) -> vuid | virgo_cloud_set(<vuid>,<data>) -> ok | virgo_cloud_get(<vuid>) -> data | virgo_cloud_free(<vuid>) -> kernel memory freed';

export interface MemoryPoolingOptions extends CommonServerOptions {
  variables: VariableSource;
  store?: MemoryStore;
  port?: number;
  /** when `memorypooling.max_bytes` is unset: largest block */
  defaultMaxBytes?: number;
  /** when `memorypooling.pool_bytes` is unset: all blocks together */
  defaultPoolBytes?: number;
}

export interface MemoryLimits extends PoolLimits {
  /** largest block */
  maxBytes: number;
}

export class MemoryPooling extends DriverService {
  readonly store: MemoryStore;

  constructor(private readonly opts: MemoryPoolingOptions) {
    super(
      {
        name: 'memorypooling',
        port: opts.port ?? MEMORYPOOLING_PORT,
        help: HELP,
      },
      opts,
      log,
    );
    this.store = opts.store ?? new InProcessMemoryStore();
  }

  start(): Promise<number> {
    return this.server.listen();
  }

  /** the limits in force now */
  limits(): MemoryLimits {
    const v = this.opts.variables;
    const read = (key: string, fallback: number) => Math.floor(readNumber(v, key, fallback, { min: 0 }));
    return {
      maxBytes: read(MEM_VARS.maxBytes, this.opts.defaultMaxBytes ?? MEM_DEFAULTS.maxBytes),
      poolBytes: read(MEM_VARS.poolBytes, this.opts.defaultPoolBytes ?? MEM_DEFAULTS.poolBytes),
      maxBlocks: read(MEM_VARS.maxBlocks, MEM_DEFAULTS.maxBlocks),
      clientBytes: read(MEM_VARS.clientBytes, MEM_DEFAULTS.clientBytes),
      clientBlocks: read(MEM_VARS.clientBlocks, MEM_DEFAULTS.clientBlocks),
    };
  }

  protected async handle(line: string, client: LineClient): Promise<string> {
    const call = expectCall(line, COMMANDS);
    switch (call.name) {
      case 'virgo_cloud_malloc': {
        const size = parseCount(call.inner, 'virgo_cloud_malloc: size');
        if (size === 0)
          throw new DriverError('malformed', 'virgo_cloud_malloc: size must be at least 1 byte');
        const { maxBytes, ...limits } = this.limits();
        if (size > maxBytes) {
          throw new DriverError(
            'too-large',
            `virgo_cloud_malloc: ${size} bytes is more than the ${maxBytes}-byte limit (memorypooling.max_bytes)`,
          );
        }
        const vuid = await this.store.malloc(size, limits, client.remote);
        await this.track();
        return vuid.toString();
      }
      case 'virgo_cloud_set': {
        const [id, data] = splitFirst(call.inner, 1);
        if (data === undefined) {
          throw new DriverError('malformed', 'virgo_cloud_set: expected virgo_cloud_set(<vuid>,<data>)');
        }
        await this.store.set(parseU64(id!, 'virgo_cloud_set: vuid'), data);
        return 'ok';
      }
      case 'virgo_cloud_get':
        return this.store.get(parseU64(call.inner, 'virgo_cloud_get: vuid'));
      default: {
        await this.store.free(parseU64(call.inner, 'virgo_cloud_free: vuid'));
        await this.track();
        return 'kernel memory freed';
      }
    }
  }

  private async track(): Promise<void> {
    if (this.store.kind === 'memory') {
      usedGauge.set(await this.store.usedBytes());
      blocksGauge.set(await this.store.usedBlocks());
    }
  }

  async close(): Promise<void> {
    await this.server.close();
    await this.store.close();
  }
}
