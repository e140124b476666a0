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
// pipeline, one HSET per host, sent in the same turn of the event loop (a microtask, no timer).
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

export class RedisExporter extends EventEmitter<{ written: [WrittenBatch] }> implements ExportSink {
  readonly name: string;
  readonly redis: Redis;
  readonly prefix: string;
  private readonly ownClient: boolean;
  /** host → key → newest pending value (undefined: delete) */
  private pending = new Map<string, Map<string, string | undefined>>();
  /** host → key → the value Redis should hold: written again after a reconnect (bounded by the table) */
  private readonly latest = new Map<string, Map<string, string>>();
  private connectedOnce = false;
  private pendingCount = 0;
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
    for (const [host, m] of this.latest) {
      let cur = this.pending.get(host);
      if (!cur) {
        cur = new Map();
        this.pending.set(host, cur);
      }
      for (const [k, v] of m) {
        if (cur.has(k)) continue;
        if (this.pendingCount === 0) this.pendingSince = performance.now();
        cur.set(k, v);
        this.pendingCount++;
      }
    }
    this.kick();
  }

  private readonly publishChanges: boolean;

  hashKey(host: string): string {
    return `${this.prefix}:${host}`;
  }

  channel(host: string): string {
    return `${this.prefix}:changes:${host}`;
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
    let known = this.latest.get(host);
    if (!known) {
      known = new Map();
      this.latest.set(host, known);
    }
    if (value === undefined) known.delete(key);
    else known.set(key, value);
    let m = this.pending.get(host);
    if (!m) {
      m = new Map();
      this.pending.set(host, m);
    }
    const before = m.size;
    m.set(key, value);
    if (m.size !== before) {
      if (this.pendingCount === 0) this.pendingSince = performance.now();
      this.pendingCount++;
    }
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

  /** Sends what is pending as one pipeline; resolves when Redis answered it (or it failed, counted). */
  private write(): Promise<void> {
    if (this.pendingCount === 0) return Promise.resolve();
    const batch = this.pending;
    const n = this.pendingCount;
    const since = this.pendingSince;
    this.pending = new Map();
    this.pendingCount = 0;
    const p = this.redis.pipeline();
    for (const [host, m] of batch) {
      const key = this.hashKey(host);
      let set: string[] = [];
      let del: string[] = [];
      let lines = '';
      for (const [k, v] of m) {
        if (v === undefined) {
          del.push(k);
          if (del.length === FIELDS_PER_COMMAND) {
            p.hdel(key, ...del);
            del = [];
          }
        } else {
          set.push(k, v);
          if (this.publishChanges) lines += `${k}=${v}\n`;
          if (set.length === 2 * FIELDS_PER_COMMAND) {
            p.hset(key, ...set);
            set = [];
          }
        }
      }
      if (set.length > 0) p.hset(key, ...set);
      if (del.length > 0) p.hdel(key, ...del);
      if (lines) p.publish(this.channel(host), lines);
    }
    const flight: Promise<void> = p
      .exec()
      .then((results) => {
        const err =
          results?.find(([e]) => e)?.[0] ?? (results === null ? new Error('pipeline discarded') : null);
        if (err) throw err;
        this.failures = 0;
        this.counts.written += n;
        exportWrites.inc({ sink: this.name }, n);
        exportLatency.observe({ sink: this.name }, (performance.now() - since) / 1000);
        if (this.listenerCount('written') > 0) {
          const entries: WrittenBatch['entries'] = [];
          for (const [host, m] of batch) for (const [key, value] of m) entries.push({ host, key, value });
          this.emit('written', { entries, offeredAt: since });
        }
      })
      .catch((err: Error) => {
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
        // Put the batch back as the latest values (undefined: removed), under anything pending:
        // a later pipeline may have written newer values than this batch held.
        if (this.pendingCount === 0) this.pendingSince = since;
        for (const [host, m] of batch) {
          let cur = this.pending.get(host);
          if (!cur) {
            cur = new Map();
            this.pending.set(host, cur);
          }
          const known = this.latest.get(host);
          for (const k of m.keys()) {
            if (!cur.has(k)) {
              cur.set(k, known?.get(k));
              this.pendingCount++;
            }
          }
        }
      })
      .finally(() => {
        this.flights.delete(flight);
        if (this.pendingCount === 0 || this.closed) return;
        if (this.retryTimer) return;
        if (this.failures > 0) {
          const ms = Math.min(5_000, 20 * 2 ** Math.min(this.failures, 8));
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.kick();
          }, ms);
        } else this.kick();
      });
    this.flights.add(flight);
    return flight;
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

function redactUrl(u: string): string {
  return u.replace(/\/\/[^@/]*@/, '//***@');
}
