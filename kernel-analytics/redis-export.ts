// Exports a VariableTable to Redis (ioredis):
//   HASH     <prefix>:<host>            field = key, value = value: the latest of every variable
//   CHANNEL  <prefix>:changes:<host>    PUBLISH of the changed pairs, `key=value` lines (the feeder's
//                                       wire format), one message per host per write
// so a reader takes HGETALL for the snapshot and PSUBSCRIBE <prefix>:changes:* for what follows,
// the same snapshot-then-updates contract as the feeder. Hosts are found with `SCAN 0 MATCH
// <prefix>:*`. Hosts never merge: a variable without a host ('' in a table) is refused, counted
// and logged, not written under some default name where it could overwrite a real host's value.
// (The feeder and the consumer name the host of every variable they take in.)
//
// Writes are pipelined: a synchronous burst of changes (one read from the feeder) becomes one
// pipeline, one HSET per host, sent in the same turn of the event loop (a microtask, no timer),
// as one socket write (corked).
// Pipelines do not wait for the one before to be answered: Redis runs one connection's commands in
// order, so a later pipeline's newer value lands after an earlier one's. At most `maxInFlight`
// are outstanding; past that, changes coalesce per host/key until one is answered (memory stays
// bounded by the table). A failed pipeline puts back the LATEST value of each of its variables
// (a later pipeline may have written a newer one already; writing the latest again is harmless).
// Redis down: ioredis reconnects in the background, nothing queues inside ioredis
// (enableOfflineQueue off), our pending map is retried with backoff, and errors are counted.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { createLogger } from '../runtime/log.ts';
import type { ExportSink, SinkStats } from './export.ts';
import { LineBatch } from './line-batch.ts';
import { exportErrors, exportLatency, exportRejects, exportWrites } from './metrics.ts';
import type { VariableChange, VariableDelete } from './table.ts';

const log = createLogger('kernel-analytics.redis');

export interface RedisExporterOptions {
  /** redis://host:port/db (default redis://127.0.0.1:6379); ignored when `redis` is given */
  url?: string;
  /** an ioredis client to use (not closed by close() unless ownClient) */
  redis?: Redis;
  /** key prefix (default virgo:analytics) */
  prefix?: string;
  /** PUBLISH changes (default true) */
  publish?: boolean;
  /** pipelines sent and not yet answered, at most (default 16); changes coalesce beyond it */
  maxInFlight?: number;
  name?: string;
}

export interface WrittenBatch {
  /** variables confirmed by Redis (value undefined: removed) */
  entries: { host: string; key: string; value: string | undefined }[];
  /** performance.now() when the oldest change of the batch was offered */
  offeredAt: number;
}

/** Fields per HSET/HDEL command: a catch-up after an outage must not build one giant command. */
const FIELDS_PER_COMMAND = 512;

/**
 * One host/key's export state, kept while the variable exists (or its removal is unwritten): a
 * change updates it in place and queues it once, so a change allocates nothing (fewer, shorter
 * GC pauses on the latency path).
 */
interface Slot {
  readonly host: string;
  readonly key: string;
  /** the newest value; undefined: removed */
  value: string | undefined;
  /** queued for the next write */
  queued: boolean;
}

/** One host's commands of one write, and what they carry (for the 'written' event). */
interface HostWrite {
  host: string;
  set: string[];
  del: string[];
  lines: LineBatch | undefined;
}

export class RedisExporter extends EventEmitter<{ written: [WrittenBatch] }> implements ExportSink {
  readonly name: string;
  readonly redis: Redis;
  readonly prefix: string;
  private readonly ownClient: boolean;
  /** host → key → what Redis should hold: written again after a reconnect (bounded by the table) */
  private readonly slots = new Map<string, Map<string, Slot>>();
  private lastHost = '';
  private lastSlots: Map<string, Slot> | undefined;
  /** slots changed since their last write, in the order they first changed */
  private queue: Slot[] = [];
  /** host → its hash key and change channel */
  private readonly names = new Map<string, { hash: string; channel: string }>();
  private connectedOnce = false;
  /** performance.now() of the first change now pending */
  private pendingSince = 0;
  /** pipelines sent and not yet answered */
  private readonly flights = new Set<Promise<void>>();
  private readonly maxInFlight: number;
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private readonly counts = { written: 0, errors: 0, rejected: 0 };
  private lastError: string | undefined;

  /** Connects with ioredis (loaded on demand, so importing this module stays cheap). */
  static async create(opts: RedisExporterOptions = {}): Promise<RedisExporter> {
    if (opts.redis) return new RedisExporter(opts.redis, opts, false);
    const { Redis: RedisClient } = await import('ioredis');
    const url = opts.url ?? 'redis://127.0.0.1:6379';
    const client = new RedisClient(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 5_000,
      // ioredis's default, said here: a round must not wait for Nagle (the latency path).
      noDelay: true,
      retryStrategy: (times: number) => Math.min(5_000, 50 * 2 ** Math.min(times, 7)),
    });
    // ioredis reports every failed reconnect as an 'error' event; without a listener Node would throw.
    let warned = false;
    client.on('error', (err: Error) => {
      if (!warned)
        log.warn('redis connection problem (reconnecting)', { url: redactUrl(url), err: err.message });
      warned = true;
    });
    client.on('ready', () => {
      if (warned) log.info('redis connection back', { url: redactUrl(url) });
      warned = false;
    });
    const ex = new RedisExporter(client, opts, true);
    client.on('ready', () => ex.retryNow());
    // Give the first connection a moment, so the first writes do not fail only for being early;
    // Redis being down is not fatal (the exporter retries), so this never throws.
    if (client.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 2_000);
        function done() {
          clearTimeout(t);
          client.off('ready', done);
          client.off('error', done);
          resolve();
        }
        client.once('ready', done);
        client.once('error', done);
      });
    }
    return ex;
  }

  constructor(redis: Redis, opts: RedisExporterOptions = {}, ownClient = false) {
    super();
    this.redis = redis;
    this.ownClient = ownClient;
    this.prefix = opts.prefix ?? 'virgo:analytics';
    this.name = opts.name ?? 'redis';
    this.publishChanges = opts.publish !== false;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 16);
    // A Redis that comes back may have lost everything (no persistence, a failover to an empty
    // replica): after every reconnect the whole export is written again, not only later changes.
    this.connectedOnce = redis.status === 'ready';
    redis.on('ready', () => {
      if (this.connectedOnce) this.resync();
      this.connectedOnce = true;
    });
  }

  private resync(): void {
    for (const m of this.slots.values()) for (const slot of m.values()) this.enqueue(slot);
    this.kick();
  }

  private enqueue(slot: Slot): void {
    if (slot.queued) return;
    slot.queued = true;
    if (this.queue.length === 0) this.pendingSince = performance.now();
    this.queue.push(slot);
  }

  private get pendingCount(): number {
    return this.queue.length;
  }

  private readonly publishChanges: boolean;

  hashKey(host: string): string {
    return this.namesOf(host).hash;
  }

  channel(host: string): string {
    return this.namesOf(host).channel;
  }

  private namesOf(host: string): { hash: string; channel: string } {
    let n = this.names.get(host);
    if (!n) {
      n = { hash: `${this.prefix}:${host}`, channel: `${this.prefix}:changes:${host}` };
      this.names.set(host, n);
    }
    return n;
  }

  offer(ch: VariableChange): void {
    this.put(ch.host, ch.key, ch.value);
  }

  offerDelete(d: VariableDelete): void {
    this.put(d.host, d.key, undefined);
  }

  private put(host: string, key: string, value: string | undefined): void {
    if (this.closed) return;
    if (host === '') {
      if (value !== undefined) this.refuseHostless(key);
      return;
    }
    let m = host === this.lastHost ? this.lastSlots : this.slots.get(host);
    if (!m) {
      m = new Map();
      this.slots.set(host, m);
    }
    this.lastHost = host;
    this.lastSlots = m;
    let slot = m.get(key);
    if (!slot) {
      slot = { host, key, value, queued: false };
      m.set(key, slot);
    } else slot.value = value;
    this.enqueue(slot);
    this.kick();
  }

  private refuseHostless(key: string): void {
    const n = ++this.counts.rejected;
    exportRejects.inc({ sink: this.name });
    this.lastError = `variable ${key} has no host: not exported (one hash per host, never a merged one)`;
    if ((n & (n - 1)) === 0) {
      log.warn('variable without a host not exported to Redis; name the host where it enters', {
        key,
        refused: n,
        fix: 'virgo consume --host NAME, virgo feeder --host NAME',
      });
    }
  }

  /** The connection is back: retry at once instead of waiting out the backoff. */
  private retryNow(): void {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.kick();
  }

  /** Starts a write at the end of this burst, unless too many are in flight (one answered kicks again). */
  private kick(): void {
    if (this.scheduled || this.retryTimer || this.pendingCount === 0) return;
    if (this.flights.size >= this.maxInFlight) return;
    this.scheduled = true;
    // A microtask, not setImmediate: changes of one synchronous burst still share a pipeline,
    // and a lone change goes out without waiting for the event loop to turn.
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.flights.size < this.maxInFlight && !this.retryTimer) this.write();
    });
  }

  /** Sends what is pending as one round of commands; resolves when Redis answered (or it failed, counted). */
  private write(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.queue;
    const n = batch.length;
    const since = this.pendingSince;
    // Plain commands, not an ioredis Pipeline: the same order on the one connection, half the
    // allocations (a Pipeline, its queue and its result arrays cost ~5 KB per write).
    const r = this.redis;
    const sent: Promise<unknown>[] = [];
    const byHost = new Map<string, HostWrite>();
    let w: HostWrite | undefined;
    for (const slot of batch) {
      slot.queued = false;
      if (w === undefined || w.host !== slot.host) {
        w = byHost.get(slot.host);
        if (w === undefined) {
          w = {
            host: slot.host,
            set: [],
            del: [],
            lines: this.publishChanges ? new LineBatch(256) : undefined,
          };
          byHost.set(slot.host, w);
        }
      }
      const v = slot.value;
      if (v === undefined) w.del.push(slot.key);
      else {
        w.set.push(slot.key, v);
        w.lines?.add(slot.key, v);
      }
    }
    // The queue's array is reused (no regrowth per write); a failure finds its slots from `writes`.
    batch.length = 0;
    const writes = [...byHost.values()];
    // ioredis writes each command to the socket on its own: corked, the round leaves in one
    // writev, so Redis reads it in one go and answers it in one reply (one wakeup of Redis and of
    // this process per round, not one per command; and half the syscalls).
    const socket = r.status === 'ready' ? r.stream : undefined;
    socket?.cork();
    try {
      for (const x of writes) {
        const { hash, channel } = this.namesOf(x.host);
        for (const part of pieces(x.set, 2 * FIELDS_PER_COMMAND)) sent.push(r.hset(hash, ...part));
        for (const part of pieces(x.del, FIELDS_PER_COMMAND)) sent.push(r.hdel(hash, ...part));
        if (x.lines && x.lines.lines > 0) sent.push(r.publish(channel, x.lines.bytes()));
      }
    } finally {
      socket?.uncork();
    }
    const flight: Promise<void> = Promise.all(sent).then(
      () => {
        this.failures = 0;
        this.counts.written += n;
        exportWrites.inc({ sink: this.name }, n);
        exportLatency.observe({ sink: this.name }, (performance.now() - since) / 1000);
        this.forgetRemoved(writes);
        try {
          if (this.listenerCount('written') > 0)
            this.emit('written', { entries: entriesOf(writes), offeredAt: since });
        } catch (err) {
          // A listener's bug is not a failed write: the variables are in Redis.
          log.error("a 'written' listener failed", { err });
        }
        this.settled(flight);
      },
      (err: Error) => {
        this.failures++;
        this.counts.errors++;
        exportErrors.inc({ sink: this.name });
        this.lastError = err.message;
        if ((this.failures & (this.failures - 1)) === 0) {
          log.warn('redis export failed; will retry', {
            err: err.message,
            failures: this.failures,
            pending: n,
          });
        }
        // Queue the batch again: each slot holds the LATEST value (a later write may have sent
        // newer ones already; the latest again is harmless).
        const wasEmpty = this.queue.length === 0;
        for (const x of writes) {
          const m = this.slots.get(x.host);
          for (let i = 0; i < x.set.length; i += 2) {
            const slot = m?.get(x.set[i]!);
            if (slot) this.enqueue(slot);
          }
          for (const key of x.del) {
            const slot = m?.get(key);
            if (slot) this.enqueue(slot);
          }
        }
        if (wasEmpty) this.pendingSince = since;
        this.settled(flight);
      },
    );
    this.flights.add(flight);
    return flight;
  }

  /** A removal Redis confirmed, and no newer value since: its slot goes (memory follows the table). */
  private forgetRemoved(writes: HostWrite[]): void {
    for (const x of writes) {
      if (x.del.length === 0) continue;
      const m = this.slots.get(x.host);
      if (!m) continue;
      for (const key of x.del) {
        const slot = m.get(key);
        if (slot && slot.value === undefined && !slot.queued) m.delete(key);
      }
      if (m.size === 0) {
        this.slots.delete(x.host);
        if (this.lastHost === x.host) {
          this.lastHost = '';
          this.lastSlots = undefined;
        }
      }
    }
  }

  /** A write was answered or failed: the next one starts, at once or after the backoff. */
  private settled(flight: Promise<void>): void {
    this.flights.delete(flight);
    if (this.queue.length === 0 || this.closed || this.retryTimer) return;
    if (this.failures > 0) {
      const ms = Math.min(5_000, 20 * 2 ** Math.min(this.failures, 8));
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.kick();
      }, ms);
    } else this.kick();
  }

  /**
   * Writes what is pending now (one attempt) and waits for every pipeline in flight; resolves when
   * Redis confirmed them or they failed (counted).
   */
  async flush(): Promise<void> {
    // Those in flight first: a failed one puts its variables back, and they go in the write below.
    await Promise.all([...this.flights]);
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    void this.write();
    // Ours, and any an answer kicked off meanwhile with changes offered before this call.
    await Promise.all([...this.flights]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.pendingCount > 0) {
      log.warn('redis exporter closed with unwritten variables', {
        pending: this.pendingCount,
        err: this.lastError,
      });
    }
    if (this.ownClient) {
      await this.redis.quit().catch(() => this.redis.disconnect());
    }
  }

  stats(): SinkStats {
    return { ...this.counts, pending: this.pendingCount, lastError: this.lastError };
  }

  /** connected to Redis now (an outage: false until ioredis is back; writes wait meanwhile) */
  get connected(): boolean {
    return this.redis.status === 'ready';
  }
}

/** `a` cut into pieces of at most `n` (itself when it fits: the common case copies nothing). */
function pieces(a: string[], n: number): string[][] {
  if (a.length === 0) return [];
  if (a.length <= n) return [a];
  const out: string[][] = [];
  for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));
  return out;
}

function entriesOf(writes: HostWrite[]): WrittenBatch['entries'] {
  const entries: WrittenBatch['entries'] = [];
  for (const x of writes) {
    for (let i = 0; i < x.set.length; i += 2)
      entries.push({ host: x.host, key: x.set[i]!, value: x.set[i + 1] });
    for (const key of x.del) entries.push({ host: x.host, key, value: undefined });
  }
  return entries;
}

function redactUrl(u: string): string {
  return u.replace(/\/\/[^@/]*@/, '//***@');
}
