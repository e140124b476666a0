// The :64000 feeder: the "webservice serving kernel_analytics variables" the original module read
// with netcat. It follows virgo.kernel-analytics (the compacted topic is the snapshot, so it reads
// from the beginning), keeps the latest value per host/key, and streams lines: the snapshot on
// connect, then every change. No view ever puts two hosts' values under one bare key (docs/design.md §5.4):
//
//   no HOST line   every host, host-qualified: `host/key=value` (split at the first '=' as the
//                  original module does, its key is `host/key`; our consumer splits at the first '/')
//   HOST <name>    only <name>'s variables, bare `key=value` (what that machine's kernel module
//                  wants); the snapshot is re-sent. The selection stays for a host with no variables
//                  yet (a device may start after its client): its variables follow when they appear.
//   HOST * / HOST  back to every host, host-qualified
//   KERNEL_ANALYTICS_STREAMING_START   accepted and ignored (the original client sends it)
// A feeder with `hostFilter` serves one host only: its clients get that host's bare lines.
// Replies: only notices, lines starting with '#' and holding no '=' (a k=v parser skips them),
// for a selection that has nothing to send (`# HOST nosuch: no variables of this host yet; …`).
// Anything else a client sends is ignored and counted.
// A client that half-closes (nc -N, nc -q1 </dev/null) gets its snapshot at once, then the end of
// the connection: a one-shot dump.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  type Bus,
  type BusMessage,
  followFromStart,
  type Subscription,
  TOPICS,
  topicSpecs,
} from '../bus/index.ts';
import { type LineClient, LineServer } from '../runtime/line-server.ts';
import { createLogger } from '../runtime/log.ts';
import { type AnalyticsVariable, AvroDecodeError, type Codec, codecFor } from '../schemas/index.ts';
import {
  hostProblem,
  isValidHost,
  isValidKey,
  isValidValue,
  keyProblem,
  parseHostKey,
  valueProblem,
} from '../schemas/variable.ts';
import { LineBatch } from './line-batch.ts';
import { feederLinesSent, feederQueued, feederRejects, feederUpdates, feederVariables } from './metrics.ts';
import { FEEDER_PORT } from './ports.ts';
import { type SetResult, VariableTable } from './table.ts';
import { MAX_LINE_BYTES, STREAMING_START } from './validate.ts';

const log = createLogger('kernel-analytics.feeder');

export interface FeederOptions {
  /** follow this bus's analytics topic; without it, feed the feeder with `update()` */
  bus?: Bus;
  /** default virgo.kernel-analytics */
  topic?: string;
  /** default a fresh group per feeder: every feeder needs every partition */
  groupId?: string;
  /** default 127.0.0.1:64000; port 0 picks a free one (see `port`) */
  listen?: { host?: string; port: number };
  /** serve (and keep) only this host's variables; its clients get bare `key=value` lines */
  hostFilter?: string;
  /** the host of variables fed without one (`update()` without host): default this machine's name */
  defaultHost?: string;
  /** default 1024 */
  maxClients?: number;
  /** close a client after this long without traffic either way (default 0: never; quiet feeds are normal) */
  idleTimeoutMs?: number;
  /** bytes queued for one client before it is dropped as a slow reader (default 1 MiB) */
  maxClientBuffer?: number;
  /** wait this long for a new client's HOST line before sending its snapshot (default 50 ms) */
  snapshotDelayMs?: number;
  /** a client must take its whole snapshot within this time (default 30 s) */
  snapshotTimeoutMs?: number;
  /** distinct host/key variables kept (default 50,000: 100 hosts of MAX_ANALYTICS_CONF) */
  maxVariables?: number;
  /** remote addresses allowed (default all) */
  allow?: string[];
  /** require `AUTH <secret>` as a client's first line */
  secret?: string;
  /** label of metrics and logs */
  name?: string;
}

/** What `update()` takes: an AnalyticsVariable, or just host/key/value. */
export interface FeederUpdate {
  key: string;
  value: string;
  /** '' or absent: the feeder's defaultHost (this machine's name unless told) */
  host?: string;
}

export type FeederUpdateResult = SetResult | 'filtered';

export interface FeederStats {
  port: number;
  clients: number;
  variables: number;
  updates: { changed: number; unchanged: number; invalid: number; refused: number; filtered: number };
  /** bus messages that were not an AnalyticsVariable */
  undecodable: number;
  linesSent: number;
  /** bytes written to clients and not yet taken by their kernels, now (bounded by clients × maxClientBuffer) */
  queuedBytes: number;
  maxQueuedBytes: number;
  maxClientBuffer: number;
  /** clients dropped or refused, by reason (slow-reader, idle, max-clients, binary, overlong, …) */
  drops: Record<string, number>;
  /** clients still receiving their snapshot */
  catchingUp: number;
  ignoredLines: number;
  /** '#' notice lines sent (a selection with nothing to send) */
  notices: number;
}

export interface Feeder {
  readonly port: number;
  readonly host: string;
  /** the latest value per host/key, as served */
  readonly table: VariableTable;
  /** resolves once the bus subscription has joined (at once without a bus) */
  readonly ready: Promise<void>;
  /** feeds one variable in-process (what a bus message does); invalid ones are refused, not thrown */
  update(v: FeederUpdate): FeederUpdateResult;
  /** removes a variable (a tombstone); clients are not told, new snapshots leave it out */
  remove(key: string, host?: string): boolean;
  stats(): FeederStats;
  close(): Promise<void>;
}

interface CatchUp {
  text: string;
  off: number;
  /** table seq when the snapshot text was built: changes from it on are sent as a delta */
  since: number;
  deadline: number;
}

interface ClientState {
  /** undefined: every host, host-qualified lines; a name: that host's bare lines */
  host: string | undefined;
  /** the client half-closed: it gets its snapshot, then the connection ends */
  ending: boolean;
  /** the snapshot is due (timer): the client may still send HOST first; no live lines until then */
  due: NodeJS.Timeout | undefined;
  /** flush generation in which this client got its snapshot… */
  gen: number;
  /** …and how much of that generation's pending bytes (and lines) the snapshot already covered */
  skip: number;
  skipLines: number;
  catchUp: CatchUp | undefined;
  /** its snapshot waits until the feeder has read its topic up to where it ended at start */
  held: boolean;
}

/** A variable's line prefix, encoded once: `host/key=` (the every-host view) and its `key=` tail. */
interface Wire {
  all: Uint8Array;
  bare: Uint8Array;
}

const ALL = '\0all';
/** Prometheus metrics are brought up to date at most this often (stats() is always exact) */
const METRICS_MS = 100;
/** longest a restarted feeder holds its clients back while it re-reads the topic */
const CATCH_UP_LIMIT_MS = 30_000;

export async function startFeeder(opts: FeederOptions = {}): Promise<Feeder> {
  const impl = new FeederImpl(opts);
  try {
    await impl.start();
  } catch (err) {
    await impl.close();
    throw err;
  }
  return impl;
}

class FeederImpl implements Feeder {
  readonly table: VariableTable;
  readonly ready: Promise<void>;
  private readonly name: string;
  private readonly defaultHost: string;
  private readonly server: LineServer;
  private readonly clients = new Map<LineClient, ClientState>();
  private readonly maxBuf: number;
  private readonly chunk: number;
  // This tick's changes as ready-to-write bytes (every host, and per host someone selected).
  private pendingAll = new LineBatch();
  private readonly pendingByHost = new Map<string, LineBatch>();
  /** hosts some client selected, with how many clients */
  private readonly selected = new Map<string, number>();
  /** clients of the every-host view: without any, its lines are not encoded */
  private allViewers = 0;
  /** host → key → its encoded prefix, for every variable held: such a host and key are valid */
  private readonly wire = new Map<string, Map<string, Wire>>();
  private wireHost: string | undefined;
  private wireKeys: Map<string, Wire> | undefined;
  private flushScheduled = false;
  private gen = 0;
  private catchUpTimer: NodeJS.Timeout | undefined;
  private catchingUp = 0;
  private readonly snapshotCache = new Map<string, { seq: number; text: string }>();
  private sub: Subscription | undefined;
  private readyResolve!: () => void;
  private closed = false;
  /** false while the feeder is still reading what the topic held at start: its table is older than the topic */
  private caughtUp: boolean;
  private metricsTimer: NodeJS.Timeout | undefined;
  private reportedAt = 0;
  private maxQueued = 0;
  private now = 0;
  private readonly counts = {
    changed: 0,
    unchanged: 0,
    invalid: 0,
    refused: 0,
    filtered: 0,
    undecodable: 0,
    linesSent: 0,
    ignoredLines: 0,
    notices: 0,
  };
  private reported = { ...this.counts };

  constructor(private readonly opts: FeederOptions) {
    this.name = opts.name ?? 'feeder';
    this.defaultHost = opts.defaultHost || hostname();
    // With a bus, clients that connect before the topic is read (the port opens first) wait too.
    this.caughtUp = opts.bus === undefined;
    this.maxBuf = opts.maxClientBuffer ?? 1 << 20;
    // Snapshot pieces: big enough to be few, small enough to leave room for live updates.
    this.chunk = Math.max(MAX_LINE_BYTES + 1, Math.floor(this.maxBuf / 2));
    this.table = new VariableTable({ name: this.name, maxVariables: opts.maxVariables ?? 50_000 });
    // However a variable goes (remove(), or the table's own delete), its prefix goes with it.
    this.table.on('delete', (d) => this.forget(d.host, d.key));
    this.ready = new Promise((r) => {
      this.readyResolve = r;
    });
    this.server = new LineServer({
      name: this.name,
      host: opts.listen?.host ?? '127.0.0.1',
      port: opts.listen?.port ?? FEEDER_PORT,
      maxLineBytes: 1024,
      maxClients: opts.maxClients ?? 1024,
      idleTimeoutMs: opts.idleTimeoutMs ?? 0,
      maxOutputBytes: this.maxBuf,
      errorLines: false,
      ...(opts.allow ? { allow: opts.allow } : {}),
      ...(opts.secret ? { secret: opts.secret } : {}),
      onConnect: (c) => this.onConnect(c),
      onLine: (c, line) => this.onLine(c, line),
      onInputEnd: (c) => this.onInputEnd(c),
      onClose: (c, reason) => this.onClose(c, reason),
    });
  }

  get port(): number {
    return this.server.port;
  }

  get host(): string {
    return this.server.host;
  }

  async start(): Promise<void> {
    await this.server.listen();
    const bus = this.opts.bus;
    if (!bus) {
      this.readyResolve();
      return;
    }
    const topic = this.opts.topic ?? TOPICS.kernelAnalytics;
    const spec = topicSpecs().find((s) => s.topic === TOPICS.kernelAnalytics)!;
    await bus.ensureTopics([{ ...spec, topic }]);
    const codec = codecFor('AnalyticsVariable');
    // A (re)started feeder re-reads the topic from its start, older values first (compaction lags):
    // serving meanwhile would hand clients old values as current. Clients wait for their snapshot
    // until every partition is read up to where it ended now (at most CATCH_UP_LIMIT_MS: the
    // record at a partition's end may be gone, a tombstone compacted away).
    const followed = await followFromStart(bus, {
      topics: [topic],
      groupId: this.opts.groupId ?? `virgo-feeder-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
      timeoutMs: CATCH_UP_LIMIT_MS,
      onBatch: async (batch) => {
        for (const m of batch) this.fromBus(m, codec);
      },
    });
    this.sub = followed.sub;
    void followed.caughtUp.then(() => {
      if (!this.closed) this.serveHeld();
    });
    void this.sub.ready.then(() => this.readyResolve());
    log.info('following analytics topic', { topic, bus: bus.kind });
  }

  /** Caught up with the topic: the clients that connected meanwhile get their snapshot now. */
  private serveHeld(): void {
    this.caughtUp = true;
    log.info('caught up with the analytics topic', { variables: this.table.size });
    for (const [c, st] of this.clients) {
      if (!st.held) continue;
      st.held = false;
      if (!c.closed) this.startSnapshot(c, st);
    }
  }

  private fromBus(m: BusMessage, codec: Codec<AnalyticsVariable>): void {
    if (m.value === null) {
      // Tombstone: the key is host/key.
      const hk = parseHostKey(m.key?.toString('utf8') ?? '');
      if (hk.ok) this.remove(hk.key, hk.host);
      return;
    }
    let v: AnalyticsVariable;
    try {
      v = codec.decode(m.value, { topic: m.topic, partition: m.partition, offset: m.offset });
    } catch (err) {
      this.counts.undecodable++;
      feederRejects.inc({ feeder: this.name, reason: 'undecodable' });
      if (err instanceof AvroDecodeError) {
        log.warn('skipping a message that is not an AnalyticsVariable', { err });
        return;
      }
      throw err;
    }
    this.update(v);
  }

  update(v: FeederUpdate): FeederUpdateResult {
    const host = v.host || this.defaultHost;
    if (this.opts.hostFilter !== undefined && host !== this.opts.hostFilter) {
      this.counts.filtered++;
      this.flushSoon();
      return 'filtered';
    }
    const { key, value } = v;
    let keys = host === this.wireHost ? this.wireKeys : this.wire.get(host);
    let w = keys === undefined ? undefined : keys.get(key);
    // A variable the feeder holds has a valid host and key: only its value is new.
    const ok =
      w === undefined ? isValidHost(host) && isValidKey(key) && isValidValue(value) : isValidValue(value);
    if (!ok) {
      const bad = hostProblem(host) ?? keyProblem(key) ?? valueProblem(value);
      this.counts.invalid++;
      feederRejects.inc({ feeder: this.name, reason: bad?.reason ?? 'invalid-value' });
      if ((this.counts.invalid & (this.counts.invalid - 1)) === 0) {
        log.warn('variable refused', {
          host,
          key: String(key).slice(0, 140),
          reason: bad?.message ?? 'invalid value',
          count: this.counts.invalid,
        });
      }
      return 'invalid';
    }
    // One clock read per tick: the entries' timestamps need ms, not a syscall per update.
    if (!this.flushScheduled) this.now = Date.now();
    const r = this.table.setValidated(key, value, host, undefined, this.now);
    if (r === 'unchanged') this.counts.unchanged++;
    else if (r === 'refused') this.counts.refused++;
    else {
      this.counts.changed++;
      if (w === undefined) {
        if (keys === undefined) {
          keys = new Map();
          this.wire.set(host, keys);
        }
        const all = LineBatch.prefix(key, host);
        w = { all, bare: all.subarray(host.length + 1) };
        keys.set(key, w);
      }
      if (this.allViewers > 0) this.pendingAll.addPrefixed(w.all, value);
      if (this.selected.size > 0 && this.selected.has(host)) {
        let p = this.pendingByHost.get(host);
        if (!p) {
          p = new LineBatch(1024);
          this.pendingByHost.set(host, p);
        }
        p.addPrefixed(w.bare, value);
      }
    }
    if (keys !== undefined) {
      this.wireHost = host;
      this.wireKeys = keys;
    }
    this.flushSoon();
    return r;
  }

  remove(key: string, host?: string): boolean {
    return this.table.delete(key, host || this.defaultHost);
  }

  private forget(host: string, key: string): void {
    const keys = this.wire.get(host);
    if (!keys?.delete(key) || keys.size > 0) return;
    this.wire.delete(host);
    if (this.wireHost === host) {
      this.wireHost = undefined;
      this.wireKeys = undefined;
    }
  }

  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // A microtask, not a timer or setImmediate: a synchronous burst of updates (a bus batch, a
    // learner's window) is still one write, and it goes out before this turn of the event loop
    // does anything else (no wait behind other I/O callbacks: the latency path, docs/design.md §5.4).
    queueMicrotask(() => this.flush());
  }

  /** Once per burst: every change since the last flush, as one write per client. */
  private flush(): void {
    if (!this.flushScheduled) return;
    this.flushScheduled = false;
    const all = this.pendingAll;
    // The sockets keep the written bytes: a batch that was written is replaced (sized like it).
    if (all.lines > 0) this.pendingAll = new LineBatch(Math.max(1024, all.length + (all.length >> 2)));
    const gen = this.gen++;
    const byHost = this.pendingByHost.size > 0 ? new Map(this.pendingByHost) : undefined;
    this.pendingByHost.clear();
    if (all.lines > 0 || byHost !== undefined) {
      const allBytes = all.bytes();
      for (const [c, st] of this.clients) {
        if (st.due || st.catchUp || st.held || c.closed) continue;
        const p = st.host === undefined ? all : byHost?.get(st.host);
        if (p === undefined || p.lines === 0) continue;
        if (st.gen === gen && st.skip > 0) {
          // Got its snapshot during this tick: that snapshot holds the first `skip` bytes already.
          if (p.length > st.skip && c.write(p.bytes(st.skip)))
            this.counts.linesSent += p.lines - st.skipLines;
        } else {
          if (c.write(p === all ? allBytes : p.bytes())) this.counts.linesSent += p.lines;
        }
      }
    }
    // The peak of what clients have not taken is right after a write: measured every flush.
    const q = this.queuedBytes();
    if (q > this.maxQueued) this.maxQueued = q;
    this.metricsSoon();
  }

  /**
   * Prometheus at most every METRICS_MS: a labelled prom-client update costs microseconds (label
   * hashing), a flush may come every 100 µs, and a scrape comes every few seconds. stats() is exact.
   */
  private metricsSoon(): void {
    if (this.metricsTimer || this.closed) return;
    const wait = this.reportedAt + METRICS_MS - performance.now();
    if (wait <= 0) {
      this.report();
      return;
    }
    this.metricsTimer = setTimeout(() => {
      this.metricsTimer = undefined;
      this.report();
    }, wait);
    this.metricsTimer.unref();
  }

  private report(): void {
    this.reportedAt = performance.now();
    const c = this.counts;
    const r = this.reported;
    const label = { feeder: this.name };
    for (const outcome of ['changed', 'unchanged', 'invalid', 'refused', 'filtered'] as const) {
      if (c[outcome] > r[outcome]) feederUpdates.inc({ ...label, outcome }, c[outcome] - r[outcome]);
    }
    if (c.linesSent > r.linesSent) feederLinesSent.inc(label, c.linesSent - r.linesSent);
    this.reported = { ...c };
    feederVariables.set(label, this.table.size);
    const q = this.queuedBytes();
    if (q > this.maxQueued) this.maxQueued = q;
    feederQueued.set(label, q);
  }

  private queuedBytes(): number {
    let n = 0;
    for (const c of this.clients.keys()) n += c.pending;
    return n;
  }

  // ---- clients ----

  private onConnect(c: LineClient): void {
    const host = this.opts.hostFilter;
    const st: ClientState = {
      host,
      ending: false,
      due: undefined,
      gen: this.gen,
      skip: 0,
      skipLines: 0,
      catchUp: undefined,
      held: false,
    };
    this.clients.set(c, st);
    this.select(host, +1);
    // A client that selects a host says so in its first lines; wait briefly for them so it does not
    // get every host's snapshot first. A silent `nc` gets its snapshot after the grace time.
    this.snapshotIn(c, st, this.opts.snapshotDelayMs ?? 50);
  }

  private snapshotIn(c: LineClient, st: ClientState, ms: number): void {
    if (st.due) clearTimeout(st.due);
    st.due = setTimeout(() => {
      st.due = undefined;
      if (c.closed || !this.clients.has(c)) return;
      if (this.caughtUp) this.startSnapshot(c, st);
      else st.held = true;
    }, ms);
  }

  private onClose(c: LineClient, reason: string): void {
    const st = this.clients.get(c);
    if (!st) return;
    this.clients.delete(c);
    this.select(st.host, -1);
    if (st.catchUp) this.catchingUp--;
    if (st.due) clearTimeout(st.due);
    log.debug('client gone', { remote: c.remote, reason });
  }

  /**
   * The client half-closed: it has sent every line it will (a HOST line included), so it gets its
   * snapshot now instead of after the grace time, and the connection ends once that is written.
   */
  private onInputEnd(c: LineClient): void {
    const st = this.clients.get(c);
    if (!st) {
      c.close('client closed');
      return;
    }
    st.ending = true;
    if (st.due) {
      clearTimeout(st.due);
      st.due = undefined;
      if (this.caughtUp) this.startSnapshot(c, st);
      else st.held = true;
    }
    this.endIfDone(c, st);
  }

  /** A half-closed client whose snapshot is out: end the connection (what is queued still goes). */
  private endIfDone(c: LineClient, st: ClientState): void {
    if (!st.ending || st.due || st.held || st.catchUp || c.closed) return;
    c.close('input ended: snapshot sent', this.opts.snapshotTimeoutMs ?? 30_000);
  }

  private onLine(c: LineClient, raw: string): void {
    const line = raw.trim();
    const st = this.clients.get(c);
    if (!st || line === '') return;
    if (line === STREAMING_START) {
      // The client has spoken: lines sent with it arrive in the same read, so the next turn of
      // the loop has seen them all.
      if (st.due) this.snapshotIn(c, st, 0);
      return;
    }
    const m = /^HOST(?:\s+(\S+))?$/i.exec(line);
    if (!m) {
      this.counts.ignoredLines++;
      log.debug('ignored client line', { remote: c.remote, line: line.slice(0, 80) });
      return;
    }
    // An invalid name is kept as the selection (it matches no variable, so nothing is sent) and
    // the snapshot's notice says why: falling back to every host would hand the client lines of a
    // form it did not ask for.
    const want = m[1] === undefined || m[1] === '*' ? this.opts.hostFilter : m[1];
    this.select(st.host, -1);
    st.host = want;
    this.select(want, +1);
    if (st.catchUp) {
      st.catchUp = undefined;
      this.catchingUp--;
    }
    // Before its first snapshot: just the selection changes. After: the new selection's snapshot.
    this.snapshotIn(c, st, 0);
  }

  /** A client enters (+1) or leaves (-1) a view: one host's, or every host's (undefined). */
  private select(host: string | undefined, d: number): void {
    if (host === undefined) {
      this.allViewers += d;
      return;
    }
    const n = (this.selected.get(host) ?? 0) + d;
    if (n <= 0) this.selected.delete(host);
    else this.selected.set(host, n);
  }

  /**
   * Why a selection gets nothing, as a notice line ('#' first, no '=': k=v parsers skip it), or
   * undefined when it has variables or selects every host.
   */
  private selectionNotice(host: string | undefined): string | undefined {
    if (host === undefined) return undefined;
    if (!isValidHost(host)) {
      return '# HOST: not a host name (1 to 128 of A-Z a-z 0-9 _ . : -); nothing is sent until a valid HOST line\n';
    }
    const only = this.opts.hostFilter;
    if (only !== undefined && host !== only) {
      return `# HOST ${host}: this feeder serves only host ${only}; nothing is sent for ${host}\n`;
    }
    if (this.table.hasHost(host)) return undefined;
    const hosts = this.table.hosts();
    const known =
      hosts.length === 0
        ? 'no host has variables yet'
        : `hosts now: ${hosts.slice(0, 10).join(' ')}${hosts.length > 10 ? ` and ${hosts.length - 10} more` : ''}`;
    return `# HOST ${host}: no variables of this host yet; the selection stays and its variables follow when they appear (${known})\n`;
  }

  /**
   * The snapshot text for a selection, built once per table state and shared by clients: one
   * host's bare `key=value` lines, or every host's `host/key=value` lines.
   */
  private snapshotText(host: string | undefined): { seq: number; text: string } {
    const id = host ?? ALL;
    const seq = this.table.nextSeq;
    const hit = this.snapshotCache.get(id);
    if (hit && hit.seq === seq) return hit;
    let text = '';
    if (host === undefined) {
      for (const e of this.table.entries()) text += `${e.host}/${e.key}=${e.value}\n`;
    } else {
      const snap = this.table.snapshot(host);
      for (const k in snap) text += `${k}=${snap[k]}\n`;
    }
    const v = { seq, text };
    this.snapshotCache.set(id, v);
    return v;
  }

  /** The pending lines of this tick that a snapshot taken now already includes. */
  private markCovered(st: ClientState): void {
    st.gen = this.gen;
    const p = st.host === undefined ? this.pendingAll : this.pendingByHost.get(st.host);
    st.skip = p?.length ?? 0;
    st.skipLines = p?.lines ?? 0;
  }

  private startSnapshot(c: LineClient, st: ClientState): void {
    this.markCovered(st);
    const notice = this.selectionNotice(st.host);
    if (notice !== undefined && c.write(notice)) this.counts.notices++;
    const { seq, text } = this.snapshotText(st.host);
    if (text.length === 0) {
      this.endIfDone(c, st);
      return;
    }
    st.catchUp = {
      text,
      off: 0,
      since: seq,
      deadline: Date.now() + (this.opts.snapshotTimeoutMs ?? 30_000),
    };
    this.catchingUp++;
    this.pumpSnapshot(c, st);
    if (st.catchUp) this.armCatchUp();
  }

  /** Writes what fits of a client's snapshot; once all is out, the changes made meanwhile. */
  private pumpSnapshot(c: LineClient, st: ClientState): void {
    const cu = st.catchUp;
    if (!cu) return;
    while (cu.off < cu.text.length) {
      if (c.closed) return;
      // Cut at a line end; the strings are mostly ASCII so characters ≈ bytes for the budget.
      const room = this.maxBuf - c.pending;
      if (room < this.chunk && c.pending > 0) break;
      let end = cu.off + this.chunk;
      if (end >= cu.text.length) end = cu.text.length;
      else end = cu.text.lastIndexOf('\n', end) + 1;
      if (end <= cu.off) end = cu.text.indexOf('\n', cu.off) + 1;
      if (!c.write(cu.text.slice(cu.off, end))) return;
      cu.off = end;
    }
    if (cu.off < cu.text.length) {
      if (Date.now() > cu.deadline) {
        this.server.reject('slow-reader');
        log.warn('slow reader dropped: snapshot not taken in time', { remote: c.remote });
        c.close('slow reader: snapshot not taken in time');
      }
      return;
    }
    st.catchUp = undefined;
    this.catchingUp--;
    const delta = this.table.changedSince(cu.since, st.host);
    this.markCovered(st);
    if (delta.length > 0) {
      let t = '';
      if (st.host === undefined) for (const e of delta) t += `${e.host}/${e.key}=${e.value}\n`;
      else for (const e of delta) t += `${e.key}=${e.value}\n`;
      c.write(t);
    }
    this.endIfDone(c, st);
  }

  private armCatchUp(): void {
    if (this.catchUpTimer || this.closed) return;
    // Sockets of LineClient give no drain event to us; a short poll runs only while someone catches up.
    this.catchUpTimer = setInterval(() => {
      for (const [c, st] of this.clients) if (st.catchUp) this.pumpSnapshot(c, st);
      if (this.catchingUp <= 0 && this.catchUpTimer) {
        clearInterval(this.catchUpTimer);
        this.catchUpTimer = undefined;
      }
    }, 5);
  }

  stats(): FeederStats {
    const drops: Record<string, number> = {};
    for (const [k, v] of this.server.rejects) drops[k] = v;
    const queued = this.queuedBytes();
    if (queued > this.maxQueued) this.maxQueued = queued;
    return {
      port: this.port,
      clients: this.clients.size,
      variables: this.table.size,
      updates: {
        changed: this.counts.changed,
        unchanged: this.counts.unchanged,
        invalid: this.counts.invalid,
        refused: this.counts.refused,
        filtered: this.counts.filtered,
      },
      undecodable: this.counts.undecodable,
      linesSent: this.counts.linesSent,
      queuedBytes: queued,
      maxQueuedBytes: this.maxQueued,
      maxClientBuffer: this.maxBuf,
      drops,
      catchingUp: this.catchingUp,
      ignoredLines: this.counts.ignoredLines,
      notices: this.counts.notices,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.catchUpTimer) clearInterval(this.catchUpTimer);
    this.catchUpTimer = undefined;
    await this.sub?.close();
    // Changes already accepted go out before the sockets end.
    if (this.flushScheduled) this.flush();
    clearTimeout(this.metricsTimer);
    this.report();
    await this.server.close();
    this.readyResolve();
  }
}
