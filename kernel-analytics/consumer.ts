// The ring-buffer consumer: the user-space read_streaming_virgo_kernel_analytics_config(). It
// connects to a feeder (ours, or `nc -l 64000` typed by hand), says KERNEL_ANALYTICS_STREAMING_START,
// and keeps every pair in a fixed ring and the latest per host/key in a VariableTable. Unlike the
// original it reads lines (no stale bytes), validates them, and reconnects with backoff.
// Which host a pair belongs to: with `selectHost` it asks the feeder for that host (HOST <name>)
// and the bare lines are that host's; without, it reads the feeder's every-host view, where a line
// is `host/key=value` (split at the first '/'), and a bare line (a feeder typed by hand) belongs
// to `defaultHost`, this machine unless told.
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { createLogger } from '../runtime/log.ts';
import { KvLineParser } from './kv-parser.ts';
import { consumerConnected, consumerConnects, consumerPairs, consumerRejects } from './metrics.ts';
import { Ring } from './ring.ts';
import { type TableStats, VariableTable } from './table.ts';
import { KV_REJECT_REASONS, type KvRejectReason, STREAMING_START } from './validate.ts';

const log = createLogger('kernel-analytics.consumer');

export interface BackoffOptions {
  /** first retry delay (default 100 ms) */
  initialMs?: number;
  /** ceiling (default 30 s) */
  maxMs?: number;
  factor?: number;
}

export interface RingConsumerOptions {
  /** feeder host (default 127.0.0.1) */
  host?: string;
  /** feeder port (default 64000) */
  port?: number;
  /** ring slots (default 500) */
  ringSize?: number;
  /** table to write into; by default a new one with `maxVariables` */
  table?: VariableTable;
  maxVariables?: number;
  /**
   * Ask the feeder for one host's variables (sends `HOST <name>` after the start line) and record
   * them under that host in the table. Plain `nc` feeders just print the extra line.
   */
  selectHost?: string;
  /** without selectHost: the host of bare `key=value` lines (default this machine's name) */
  defaultHost?: string;
  /** reconnect after a disconnect or a failed connect (default true) */
  reconnect?: boolean;
  backoff?: BackoffOptions;
  connectTimeoutMs?: number;
  /** a connection that lasted this long resets the backoff (default 1 s) */
  stableMs?: number;
  /** label of this consumer's metrics and logs */
  name?: string;
  /** connect from the constructor (default true); otherwise call start() */
  autoStart?: boolean;
}

export interface DisconnectInfo {
  reason: string;
  /** ms until the next attempt; undefined when the consumer will not reconnect */
  retryInMs: number | undefined;
}

export interface ConsumerEvents {
  connect: [{ host: string; port: number }];
  disconnect: [DisconnectInfo];
  reject: [{ reason: KvRejectReason; message: string }];
  /** a '#' line from the feeder, e.g. `# HOST x: no variables of this host yet; …` */
  notice: [string];
}

export interface ConsumerStats {
  feeder: string;
  connected: boolean;
  connects: number;
  /** failed connects plus lost connections */
  disconnects: number;
  /** pairs accepted into ring and table */
  pairs: number;
  rejects: Record<KvRejectReason, number>;
  /** empty lines and KERNEL_ANALYTICS_STREAMING_START echoes, skipped */
  skipped: number;
  /** '#' notice lines from the feeder */
  notices: number;
  bytes: number;
  ring: { size: number; length: number; written: number };
  table: TableStats;
  lastError: string | undefined;
}

export class RingConsumer extends EventEmitter<ConsumerEvents> {
  readonly ring: Ring;
  readonly table: VariableTable;
  readonly host: string;
  readonly port: number;
  readonly name: string;
  private readonly parser: KvLineParser;
  private readonly opts: RingConsumerOptions;
  private sock: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private started = false;
  private attempt = 0;
  private connectedAt = 0;
  private closeWaiters: (() => void)[] = [];
  private lastError: string | undefined;
  private readonly selectHost: string;
  /** the host of a bare line: the selected one, else defaultHost */
  private readonly bareHost: string;
  private now = 0;
  private readonly counts = {
    connects: 0,
    disconnects: 0,
    pairs: 0,
    bytes: 0,
    rejects: Object.fromEntries(KV_REJECT_REASONS.map((r) => [r, 0])) as Record<KvRejectReason, number>,
  };
  /** pairs not yet added to the prom-client counter */
  private unreported = 0;

  constructor(opts: RingConsumerOptions = {}) {
    super();
    this.opts = opts;
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 64000;
    this.name = opts.name ?? 'consumer';
    this.selectHost = opts.selectHost ?? '';
    this.bareHost = this.selectHost || opts.defaultHost || hostname();
    this.ring = new Ring(opts.ringSize ?? 500);
    this.table =
      opts.table ??
      new VariableTable({
        name: this.name,
        ...(opts.maxVariables !== undefined ? { maxVariables: opts.maxVariables } : {}),
      });
    this.parser = new KvLineParser(
      (key, value, lineHost) => {
        const host = lineHost ?? this.bareHost;
        const seq = this.ring.write(key, value, this.now, host);
        this.table.setValidated(key, value, host, seq, this.now);
        this.counts.pairs++;
        this.unreported++;
      },
      (reason, message) => this.rejected(reason, message),
      { qualified: this.selectHost === '', onNotice: (text) => this.noticed(text) },
    );
    if (opts.autoStart !== false) this.start();
  }

  get connected(): boolean {
    return this.connectedAt > 0;
  }

  /** Starts connecting (once); the constructor does it unless autoStart is false. */
  start(): this {
    if (this.started || this.stopped) return this;
    this.started = true;
    this.connect();
    return this;
  }

  /** Resolves at the next successful connection (at once when connected now). */
  whenConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => this.once('connect', () => resolve()));
  }

  /**
   * Feeds bytes as if read from the feeder: for tests, benchmarks and reading a recorded stream or
   * a pipe (construct with autoStart: false). Call `endInput()` at its end.
   */
  ingest(chunk: Buffer): void {
    this.counts.bytes += chunk.length;
    this.now = Date.now();
    this.parser.push(chunk);
    this.report();
  }

  endInput(): void {
    this.parser.end();
  }

  private connect(): void {
    if (this.stopped) return;
    const sock = connect({ host: this.host, port: this.port, noDelay: true });
    this.sock = sock;
    sock.setTimeout(this.opts.connectTimeoutMs ?? 5_000, () => {
      sock.destroy(new Error(`no connection after ${this.opts.connectTimeoutMs ?? 5_000} ms`));
    });
    sock.once('connect', () => {
      sock.setTimeout(0);
      sock.setKeepAlive(true, 10_000);
      this.connectedAt = Date.now();
      this.counts.connects++;
      consumerConnects.inc({ consumer: this.name });
      consumerConnected.set({ consumer: this.name }, 1);
      sock.write(this.selectHost ? `${STREAMING_START}\nHOST ${this.selectHost}\n` : `${STREAMING_START}\n`);
      log.info('connected to feeder', { feeder: `${this.host}:${this.port}` });
      this.emit('connect', { host: this.host, port: this.port });
    });
    sock.on('data', (d: Buffer) => this.ingest(d));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = err.code ?? err.message;
    });
    sock.once('close', () => this.closed(sock));
  }

  private closed(sock: Socket): void {
    if (this.sock === sock) this.sock = undefined;
    // A half line cannot be trusted: the feeder may have been cut mid-value.
    this.parser.end();
    this.report();
    const wasUp = this.connectedAt > 0;
    const lived = wasUp ? Date.now() - this.connectedAt : 0;
    this.connectedAt = 0;
    consumerConnected.set({ consumer: this.name }, 0);
    this.counts.disconnects++;
    if (lived >= (this.opts.stableMs ?? 1_000)) this.attempt = 0;
    const reason = wasUp
      ? `connection closed${this.lastError ? ` (${this.lastError})` : ''}`
      : `cannot connect: ${this.lastError ?? 'closed'}`;
    this.lastError = undefined;
    let retryInMs: number | undefined;
    if (!this.stopped && this.opts.reconnect !== false) {
      retryInMs = this.backoff();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.connect();
      }, retryInMs);
    }
    // Loud on the first failures, quiet while a feeder stays away.
    const quiet = !wasUp && this.attempt > 3;
    if (!this.stopped) {
      log[quiet ? 'debug' : 'warn']('feeder disconnected', {
        feeder: `${this.host}:${this.port}`,
        reason,
        ...(retryInMs !== undefined ? { retryInMs } : {}),
      });
    }
    this.emit('disconnect', { reason, retryInMs });
    if (this.stopped) for (const w of this.closeWaiters.splice(0)) w();
  }

  /** Exponential backoff with jitter: half fixed, half random, so a fleet does not reconnect in step. */
  private backoff(): number {
    const b = this.opts.backoff ?? {};
    const initial = b.initialMs ?? 100;
    const max = b.maxMs ?? 30_000;
    const factor = b.factor ?? 2;
    const base = Math.min(max, initial * factor ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 64);
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  private rejected(reason: KvRejectReason, message: string): void {
    const n = ++this.counts.rejects[reason];
    consumerRejects.inc({ consumer: this.name, reason });
    if ((n & (n - 1)) === 0) {
      log.warn('line rejected', { feeder: `${this.host}:${this.port}`, reason, message, count: n });
    }
    if (this.listenerCount('reject') > 0) this.emit('reject', { reason, message });
  }

  private noticed(text: string): void {
    const n = this.parser.notices;
    // A feeder repeats its notice at every snapshot (each reconnect): say it once, then sparsely.
    if ((n & (n - 1)) === 0)
      log.info('feeder notice', { feeder: `${this.host}:${this.port}`, notice: text, count: n });
    if (this.listenerCount('notice') > 0) this.emit('notice', text);
  }

  private report(): void {
    if (this.unreported > 0) {
      consumerPairs.inc({ consumer: this.name }, this.unreported);
      this.unreported = 0;
    }
  }

  stats(): ConsumerStats {
    return {
      feeder: `${this.host}:${this.port}`,
      connected: this.connected,
      connects: this.counts.connects,
      disconnects: this.counts.disconnects,
      pairs: this.counts.pairs,
      rejects: { ...this.counts.rejects },
      skipped: this.parser.blank + this.parser.ignored,
      notices: this.parser.notices,
      bytes: this.counts.bytes,
      ring: { size: this.ring.size, length: this.ring.length, written: this.ring.written },
      table: this.table.stats(),
      lastError: this.lastError,
    };
  }

  /** Stops reconnecting and closes the connection; resolves once it is closed. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const sock = this.sock;
    if (!sock) return;
    await new Promise<void>((resolve) => {
      this.closeWaiters.push(resolve);
      sock.destroy();
    });
  }
}
