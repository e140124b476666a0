// Variables for a driver in another process: mirrors what RedisExporter (../redis-export.ts) writes
//   HASH     <prefix>:<host>           latest key → value of a host
//   CHANNEL  <prefix>:changes:<host>   `key=value` lines of each change
// into an in-process VariableTable, so drivers read it synchronously like the local table.
// Order of events: subscribe first, then read the hashes; messages that arrive while the snapshot
// loads are held and applied after it, in order, so a change is never overwritten by an older
// snapshot. Deletions (HDEL) are not published by the exporter; a periodic and on-reconnect
// resync catches them and anything missed while disconnected.
import type { Redis } from 'ioredis';
import { VariableTable } from '../../kernel-analytics/table.ts';
import { parseKvLine } from '../../kernel-analytics/validate.ts';
import { createLogger } from '../../runtime/log.ts';
import { counter } from '../../runtime/metrics.ts';
import { redactRedisUrl } from '../../runtime/redis-probe.ts';
import type { ChangeListener, VariableSource } from './variables.ts';

const log = createLogger('drivers.redis-variables');
const received = counter('virgo_redis_variables_received_total', 'variable changes received from Redis', [
  'outcome',
]);

export interface RedisVariablesOptions {
  /** default redis://127.0.0.1:6379 */
  url?: string;
  /** the exporter's key prefix (default virgo:analytics) */
  prefix?: string;
  /** only these hosts (default: every host under the prefix) */
  hosts?: string[];
  /** re-read the hashes this often (default 30 s; 0: only on reconnect) */
  resyncMs?: number;
  /** the table to fill (default a new one) */
  table?: VariableTable;
  maxVariables?: number;
}

function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

export class RedisVariables implements VariableSource {
  readonly table: VariableTable;
  readonly prefix: string;
  private held: { host: string; body: string }[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private syncing: Promise<void> | undefined;
  /** resyncs done, including the first load */
  syncs = 0;

  private constructor(
    private readonly cmd: Redis,
    private readonly sub: Redis,
    private readonly opts: RedisVariablesOptions,
  ) {
    this.prefix = opts.prefix ?? 'virgo:analytics';
    this.table =
      opts.table ??
      new VariableTable({
        name: 'redis-variables',
        ...(opts.maxVariables !== undefined ? { maxVariables: opts.maxVariables } : {}),
      });
  }

  /** Connects, subscribes and loads the snapshot; resolves when `get` answers from it. */
  static async connect(opts: RedisVariablesOptions = {}): Promise<RedisVariables> {
    const { Redis: RedisClient } = await import('ioredis');
    const url = opts.url ?? 'redis://127.0.0.1:6379';
    const mk = () =>
      new RedisClient(url, {
        connectTimeout: 5_000,
        maxRetriesPerRequest: 2,
        retryStrategy: (times: number) => Math.min(5_000, 50 * 2 ** Math.min(times, 7)),
      });
    const cmd = mk();
    const sub = mk();
    let warned = false;
    for (const c of [cmd, sub]) {
      c.on('error', (err: Error) => {
        if (!warned) log.warn('redis connection problem (reconnecting)', { err: err.message });
        warned = true;
      });
    }
    const rv = new RedisVariables(cmd, sub, opts);
    try {
      await rv.init();
    } catch (err) {
      cmd.disconnect();
      sub.disconnect();
      throw new Error(
        `cannot read variables from Redis at ${redactRedisUrl(url)}: ${(err as Error).message}`,
      );
    }
    return rv;
  }

  private async init(): Promise<void> {
    const p = this.prefix;
    this.sub.on('message', (channel: string, body: string) => this.onMessage(channel, body));
    this.sub.on('pmessage', (_pattern: string, channel: string, body: string) =>
      this.onMessage(channel, body),
    );
    this.held = [];
    if (this.opts.hosts && this.opts.hosts.length > 0) {
      await this.sub.subscribe(...this.opts.hosts.map((h) => `${p}:changes:${h}`));
    } else {
      await this.sub.psubscribe(`${globEscape(p)}:changes:*`);
    }
    await this.sync();
    // ioredis resubscribes by itself after a reconnect; what was published meanwhile is lost, so
    // read the hashes again.
    this.sub.on('ready', () => void this.resync());
    const every = this.opts.resyncMs ?? 30_000;
    if (every > 0) {
      this.timer = setInterval(() => void this.resync(), every);
      this.timer.unref();
    }
  }

  private onMessage(channel: string, body: string): void {
    const marker = `${this.prefix}:changes:`;
    if (!channel.startsWith(marker)) return;
    const host = channel.slice(marker.length);
    if (this.held) this.held.push({ host, body });
    else this.apply(host, body);
  }

  private apply(host: string, body: string): void {
    for (const line of body.split('\n')) {
      if (line === '') continue;
      const kv = parseKvLine(line);
      if (!kv.ok) {
        received.inc({ outcome: 'invalid' });
        log.warn('invalid variable line from Redis', { host, reason: kv.message });
        continue;
      }
      this.table.set(kv.key, kv.value, { host });
      received.inc({ outcome: 'ok' });
    }
  }

  /** Reads the hashes again (drops variables that are gone); messages meanwhile are held. */
  resync(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.syncing) return this.syncing;
    this.held ??= [];
    this.syncing = this.sync()
      .catch((err: Error) => {
        log.warn('resync from Redis failed; will retry', { err: err.message });
        this.flushHeld();
      })
      .finally(() => {
        this.syncing = undefined;
      });
    return this.syncing;
  }

  private async sync(): Promise<void> {
    const hosts = this.opts.hosts?.length ? this.opts.hosts : await this.scanHosts();
    const p = this.cmd.pipeline();
    for (const h of hosts) p.hgetall(`${this.prefix}:${h}`);
    const results = (await p.exec()) ?? [];
    for (let i = 0; i < hosts.length; i++) {
      const [err, value] = results[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      const host = hosts[i]!;
      const fields = (value ?? {}) as Record<string, string>;
      for (const [k, v] of Object.entries(fields)) {
        const kv = parseKvLine(`${k}=${v}`);
        if (kv.ok) this.table.set(kv.key, kv.value, { host });
      }
      for (const k of this.table.keys(host)) if (!(k in fields)) this.table.delete(k, host);
    }
    // hosts whose hash disappeared
    if (!this.opts.hosts?.length) {
      for (const h of this.table.hosts()) {
        if (hosts.includes(h)) continue;
        for (const k of this.table.keys(h)) this.table.delete(k, h);
      }
    }
    this.syncs++;
    this.flushHeld();
  }

  private flushHeld(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const m of held) this.apply(m.host, m.body);
  }

  private async scanHosts(): Promise<string[]> {
    const hosts: string[] = [];
    const head = `${this.prefix}:`;
    let cursor = '0';
    do {
      const [next, keys] = await this.cmd.scan(
        cursor,
        'MATCH',
        `${globEscape(this.prefix)}:*`,
        'COUNT',
        500,
        'TYPE',
        'hash',
      );
      cursor = next;
      for (const k of keys) if (k.startsWith(head)) hosts.push(k.slice(head.length));
    } while (cursor !== '0');
    return hosts;
  }

  get(key: string, host?: string): string | undefined {
    return this.table.get(key, host);
  }

  on(event: 'change', fn: ChangeListener): this {
    this.table.on(event, fn);
    return this;
  }

  off(event: 'change', fn: ChangeListener): this {
    this.table.off(event, fn);
    return this;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.syncing;
    await Promise.all([
      this.sub.quit().catch(() => this.sub.disconnect()),
      this.cmd.quit().catch(() => this.cmd.disconnect()),
    ]);
  }
}
