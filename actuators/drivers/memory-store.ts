// Where memory pooling keeps its allocations: in this process (a Map) or in Redis (several driver
// processes share one pool). Both give the same answers: VUIDs are random non-zero u64 (not
// guessable, so one client cannot walk another's allocations), sizes are bytes of UTF-8, and a
// recently freed VUID is told apart from one that never existed (double free vs unknown).
// Blocks are bounded in bytes AND in number (a block costs memory beyond its bytes: 300,000
// one-byte blocks took +64 MB), in all and per owner (the client address that allocated it), so
// one client cannot take the pool from the others.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DriverError } from './driver-server.ts';

export interface Allocation {
  size: number;
  data: string;
  /** who allocated it (the client address): whose quota it counts against until freed */
  owner: string;
}

/** What one malloc may take, read from the variables per request. */
export interface PoolLimits {
  /** all blocks together, bytes (memorypooling.pool_bytes) */
  poolBytes: number;
  /** all blocks together, count (memorypooling.max_blocks) */
  maxBlocks: number;
  /** one owner's blocks, bytes (memorypooling.client_bytes) */
  clientBytes: number;
  /** one owner's blocks, count (memorypooling.client_blocks) */
  clientBlocks: number;
}

export interface MemoryStore {
  readonly kind: 'memory' | 'redis';
  /** allocates `size` bytes for `owner` if the limits leave room; returns the VUID */
  malloc(size: number, limits: PoolLimits, owner: string): Promise<bigint>;
  set(vuid: bigint, data: string): Promise<void>;
  get(vuid: bigint): Promise<string>;
  /** frees and returns the size that was allocated */
  free(vuid: bigint): Promise<number>;
  usedBytes(): Promise<number>;
  usedBlocks(): Promise<number>;
  close(): Promise<void>;
}

export function newVuid(): bigint {
  for (;;) {
    const v = randomBytes(8).readBigUInt64BE();
    if (v !== 0n) return v;
  }
}

function unknown(vuid: bigint): DriverError {
  return new DriverError('not-found', `unknown VUID ${vuid}; virgo_cloud_malloc(<size>) returns one`);
}

function doubleFree(vuid: bigint): DriverError {
  return new DriverError('double-free', `VUID ${vuid} was already freed (double free)`);
}

function poolFull(size: number, used: number, pool: number): DriverError {
  return new DriverError(
    'limit',
    `pool full: ${size} bytes requested, ${used} of ${pool} in use (memorypooling.pool_bytes); free some first`,
  );
}

function tooManyBlocks(count: number, max: number): DriverError {
  return new DriverError(
    'limit',
    `pool full: ${count} blocks allocated, the limit is ${max} (memorypooling.max_blocks); free some first`,
  );
}

function overQuota(
  owner: string,
  what: 'blocks' | 'bytes',
  held: number,
  want: number,
  max: number,
): DriverError {
  return new DriverError(
    'limit',
    what === 'blocks'
      ? `quota: ${owner} holds ${held} blocks, the limit per client is ${max} (memorypooling.client_blocks); free some first`
      : `quota: ${owner} holds ${held} bytes, ${want} more would pass the ${max}-byte limit per client (memorypooling.client_bytes); free some first`,
  );
}

function oversize(vuid: bigint, bytes: number, size: number): DriverError {
  return new DriverError(
    'too-large',
    `data is ${bytes} bytes but VUID ${vuid} has ${size}; malloc a larger block`,
  );
}

/** Remembers this many freed VUIDs to report a double free (older ones read as unknown). */
const FREED_MEMORY = 65_536;

export class InProcessMemoryStore implements MemoryStore {
  readonly kind = 'memory' as const;
  private readonly blocks = new Map<bigint, Allocation>();
  private readonly freed = new Map<bigint, true>();
  private readonly owners = new Map<string, { bytes: number; blocks: number }>();
  private used = 0;

  async malloc(size: number, limits: PoolLimits, owner: string): Promise<bigint> {
    if (this.used + size > limits.poolBytes) throw poolFull(size, this.used, limits.poolBytes);
    if (this.blocks.size + 1 > limits.maxBlocks) throw tooManyBlocks(this.blocks.size, limits.maxBlocks);
    const mine = this.owners.get(owner) ?? { bytes: 0, blocks: 0 };
    if (mine.blocks + 1 > limits.clientBlocks)
      throw overQuota(owner, 'blocks', mine.blocks, 1, limits.clientBlocks);
    if (mine.bytes + size > limits.clientBytes)
      throw overQuota(owner, 'bytes', mine.bytes, size, limits.clientBytes);
    let v = newVuid();
    while (this.blocks.has(v)) v = newVuid();
    this.blocks.set(v, { size, data: '', owner });
    this.freed.delete(v);
    this.used += size;
    mine.bytes += size;
    mine.blocks++;
    this.owners.set(owner, mine);
    return v;
  }

  private block(vuid: bigint): Allocation {
    const b = this.blocks.get(vuid);
    if (!b) throw this.freed.has(vuid) ? doubleFreeOrUseAfterFree(vuid) : unknown(vuid);
    return b;
  }

  async set(vuid: bigint, data: string): Promise<void> {
    const b = this.block(vuid);
    const bytes = Buffer.byteLength(data, 'utf8');
    if (bytes > b.size) throw oversize(vuid, bytes, b.size);
    b.data = data;
  }

  async get(vuid: bigint): Promise<string> {
    return this.block(vuid).data;
  }

  async free(vuid: bigint): Promise<number> {
    const b = this.blocks.get(vuid);
    if (!b) throw this.freed.has(vuid) ? doubleFree(vuid) : unknown(vuid);
    this.blocks.delete(vuid);
    this.used -= b.size;
    const owner = this.owners.get(b.owner);
    if (owner) {
      owner.bytes -= b.size;
      if (--owner.blocks === 0) this.owners.delete(b.owner);
    }
    this.freed.set(vuid, true);
    if (this.freed.size > FREED_MEMORY) this.freed.delete(this.freed.keys().next().value!);
    return b.size;
  }

  async usedBytes(): Promise<number> {
    return this.used;
  }

  async usedBlocks(): Promise<number> {
    return this.blocks.size;
  }

  async close(): Promise<void> {
    this.blocks.clear();
    this.owners.clear();
  }
}

function doubleFreeOrUseAfterFree(vuid: bigint): DriverError {
  return new DriverError('not-found', `VUID ${vuid} was freed; malloc a new block`);
}

// Each script answers {status, detail}: 1 ok, -1 unknown, -2 limit, -3 freed, -4 collision,
// -5 block count, -6 owner's blocks, -7 owner's bytes.
// KEYS: block, used, tomb, block count, owner; ARGV: size, poolBytes, maxBlocks, clientBlocks,
// clientBytes, owner.
const MALLOC = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {-4, 0} end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local size = tonumber(ARGV[1])
if used + size > tonumber(ARGV[2]) then return {-2, used} end
local count = tonumber(redis.call('GET', KEYS[4]) or '0')
if count + 1 > tonumber(ARGV[3]) then return {-5, count} end
local ownBlocks = tonumber(redis.call('HGET', KEYS[5], 'blocks') or '0')
if ownBlocks + 1 > tonumber(ARGV[4]) then return {-6, ownBlocks} end
local ownBytes = tonumber(redis.call('HGET', KEYS[5], 'bytes') or '0')
if ownBytes + size > tonumber(ARGV[5]) then return {-7, ownBytes} end
redis.call('HSET', KEYS[1], 'size', size, 'data', '', 'owner', ARGV[6])
redis.call('DEL', KEYS[3])
redis.call('INCRBY', KEYS[2], size)
redis.call('INCR', KEYS[4])
redis.call('HINCRBY', KEYS[5], 'blocks', 1)
redis.call('HINCRBY', KEYS[5], 'bytes', size)
return {1, 0}`;
const SET = `
local size = redis.call('HGET', KEYS[1], 'size')
if not size then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {-3, 0} end
  return {-1, 0}
end
if tonumber(ARGV[2]) > tonumber(size) then return {-2, tonumber(size)} end
redis.call('HSET', KEYS[1], 'data', ARGV[1])
return {1, 0}`;
const GET = `
local v = redis.call('HGET', KEYS[1], 'data')
if not v then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {-3, ''} end
  return {-1, ''}
end
return {1, v}`;
// KEYS: block, tomb, used, block count; ARGV: tombstone ttl, the owner-key prefix. The owner key
// is derived here from the block (its owner is known only once the block is read); blocks from
// before owners were kept have none, and the count never goes below zero for them.
const FREE = `
local size = redis.call('HGET', KEYS[1], 'size')
if not size then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {-3, 0} end
  return {-1, 0}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
redis.call('DEL', KEYS[1])
redis.call('DECRBY', KEYS[3], size)
if tonumber(redis.call('GET', KEYS[4]) or '0') > 0 then redis.call('DECR', KEYS[4]) end
if owner then
  local ok = ARGV[2] .. owner
  if redis.call('HINCRBY', ok, 'blocks', -1) <= 0 then redis.call('DEL', ok)
  else redis.call('HINCRBY', ok, 'bytes', -tonumber(size)) end
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return {1, tonumber(size)}`;

/**
 * The pool in Redis: a hash per block `<prefix>:block:<vuid>` {size, data}, the bytes in use at
 * `<prefix>:used`, and a tombstone `<prefix>:freed:<vuid>` (expiring) per freed block. Each call is
 * one Lua script, so concurrent drivers sharing the pool never over-allocate.
 */
export class RedisMemoryStore implements MemoryStore {
  readonly kind = 'redis' as const;

  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'virgo:mempool',
    private readonly freedTtlS = 86_400,
  ) {}

  private block(v: bigint): string {
    return `${this.prefix}:block:${v}`;
  }

  private tomb(v: bigint): string {
    return `${this.prefix}:freed:${v}`;
  }

  private get usedKey(): string {
    return `${this.prefix}:used`;
  }

  private get countKey(): string {
    return `${this.prefix}:blocks`;
  }

  private get ownerPrefix(): string {
    return `${this.prefix}:owner:`;
  }

  private async run(
    script: string,
    keys: string[],
    args: (string | number)[],
  ): Promise<[number, string | number]> {
    return (await this.redis.eval(script, keys.length, ...keys, ...args)) as [number, string | number];
  }

  async malloc(size: number, limits: PoolLimits, owner: string): Promise<bigint> {
    for (;;) {
      const v = newVuid();
      const [status, detail] = await this.run(
        MALLOC,
        [this.block(v), this.usedKey, this.tomb(v), this.countKey, this.ownerPrefix + owner],
        [size, limits.poolBytes, limits.maxBlocks, limits.clientBlocks, limits.clientBytes, owner],
      );
      if (status === 1) return v;
      if (status === -2) throw poolFull(size, Number(detail), limits.poolBytes);
      if (status === -5) throw tooManyBlocks(Number(detail), limits.maxBlocks);
      if (status === -6) throw overQuota(owner, 'blocks', Number(detail), 1, limits.clientBlocks);
      if (status === -7) throw overQuota(owner, 'bytes', Number(detail), size, limits.clientBytes);
      // -4: a 1-in-2^64 collision; draw again
    }
  }

  async set(vuid: bigint, data: string): Promise<void> {
    const bytes = Buffer.byteLength(data, 'utf8');
    const [status, size] = await this.run(SET, [this.block(vuid), this.tomb(vuid)], [data, bytes]);
    if (status === -1) throw unknown(vuid);
    if (status === -3) throw doubleFreeOrUseAfterFree(vuid);
    if (status === -2) throw oversize(vuid, bytes, Number(size));
  }

  async get(vuid: bigint): Promise<string> {
    const [status, data] = await this.run(GET, [this.block(vuid), this.tomb(vuid)], []);
    if (status === -1) throw unknown(vuid);
    if (status === -3) throw doubleFreeOrUseAfterFree(vuid);
    return String(data);
  }

  async free(vuid: bigint): Promise<number> {
    const [status, size] = await this.run(
      FREE,
      [this.block(vuid), this.tomb(vuid), this.usedKey, this.countKey],
      [this.freedTtlS, this.ownerPrefix],
    );
    if (status === -1) throw unknown(vuid);
    if (status === -3) throw doubleFree(vuid);
    return Number(size);
  }

  async usedBytes(): Promise<number> {
    return Number((await this.redis.get(this.usedKey)) ?? 0);
  }

  async usedBlocks(): Promise<number> {
    return Number((await this.redis.get(this.countKey)) ?? 0);
  }

  async close(): Promise<void> {
    // the connection belongs to whoever made it
  }
}
