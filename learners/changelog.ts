// The learner-state changelog (docs/design.md §7.6): each instance writes each host's learner
// state to the compacted topic virgo.learner-state, in the partition of virgo.kernel-logs the
// host's lines come from, so an instance assigned that partition finds the state of its hosts
// there, as Kafka Streams restores a task's store from its changelog.
//
// Records: one per host and part (`<host>/<part>`: one per learner that keeps host state, `gate`,
// `clock`, `order`, `templates`), its JSON gzipped; and per instance its learners' shared parts
// with their models (`~<instance>/<learner>`, partition 0, every 30 s), the start of an instance
// that learnt less; a part over CHUNK_BYTES compressed goes in
// several records (`<host>/<part>`, `<host>/<part>#1` …, the first saying how many), so no record
// nears Kafka's 1 MiB default. Only parts that changed since the last commit are written; a part
// that shrank tombstones the chunks it no longer has.
//
// `ChangelogStore` follows the whole topic from this instance's start (a group of its own) and
// keeps the latest record of every key in memory (a standby copy of every host's state), so a
// partition assigned later is restored without reading the topic again: it waits until the copy
// reached the partition's end (its last stable offset: what read-committed readers may see).
// The copy is saved beside the snapshots (`<state-dir>/learners/changelog.bin`, with the offsets it
// covers): at the next start the topic is read only from those offsets on.

import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  type Bus,
  type BusMessage,
  type Followed,
  followFromStart,
  GROUPS,
  type OutgoingMessage,
  type Subscription,
  TOPICS,
} from '../bus/index.ts';
import { createLogger } from '../runtime/log.ts';
import { counter } from '../runtime/metrics.ts';
import type { SharedDoc } from './learner-state.ts';

const log = createLogger('learners.changelog');

export const STATE_TOPIC = 'virgo.learner-state';

/**
 * The changelog of one consumer group's learner state over one log topic: `virgo.learner-state`
 * for the default group on the default log topic, else `virgo.learner-state.<group>` (plus
 * `.<log topic>` when that is not the default), characters a topic name cannot hold as `_`. As
 * Kafka Streams names a changelog after its application: a learner sharing another group's would
 * restore hosts of lines it never read.
 */
export function stateTopicFor(logsTopic: string, groupId: string): string {
  if (logsTopic === TOPICS.kernelLogs && groupId === GROUPS.learners) return STATE_TOPIC;
  const safe = (x: string) => x.replace(/[^A-Za-z0-9._-]/g, '_');
  const logs = logsTopic === TOPICS.kernelLogs ? '' : `.${safe(logsTopic)}`;
  return `${STATE_TOPIC}.${safe(groupId)}${logs}`.slice(0, 249);
}

/** The "host" of an instance's shared parts: `~<instance>/<learner>` (no host name has a `~`). */
export const SHARED_PREFIX = '~';
/** compressed bytes per record at most (Kafka's default message.max.bytes is 1 MiB) */
export const CHUNK_BYTES = 256 * 1024;
const H_CHUNKS = 'virgo-state-chunks';
const H_FORMAT = 'virgo-state-format';
const FORMAT = 'json+gzip/1';

const mUnreadable = counter(
  'virgo_learner_state_unreadable_total',
  'parts of a host state in the changelog that could not be read (missing chunk, bad gzip or JSON): that part starts afresh',
);

/** The changelog topic: compacted, as many partitions as the log topic (a host's state lives in
 * the partition number its lines do). */
export function stateTopicSpec(topic: string, partitions: number) {
  return {
    topic,
    partitions,
    configs: { 'cleanup.policy': 'compact', 'min.cleanable.dirty.ratio': '0.1', 'segment.ms': '600000' },
  };
}

/** A key of the changelog: `<host>/<part>` or `<host>/<part>#<chunk>`. */
export function parseStateKey(key: string): { host: string; part: string; chunk: number } | undefined {
  const slash = key.indexOf('/');
  if (slash <= 0) return undefined;
  const rest = key.slice(slash + 1);
  const hash = rest.lastIndexOf('#');
  if (hash < 0) return { host: key.slice(0, slash), part: rest, chunk: 0 };
  const chunk = Number(rest.slice(hash + 1));
  if (!Number.isInteger(chunk) || chunk < 1) return undefined;
  return { host: key.slice(0, slash), part: rest.slice(0, hash), chunk };
}

const chunkKey = (host: string, part: string, i: number) =>
  i === 0 ? `${host}/${part}` : `${host}/${part}#${i}`;

/**
 * The records that write `parts` of `host` (JSON text, or null: the part is gone) to `partition`,
 * given how many chunks each part had before; returns them and the parts' chunk counts now.
 */
export function encodeHostParts(
  host: string,
  partition: number,
  parts: ReadonlyMap<string, string | null>,
  before: ReadonlyMap<string, number>,
): { messages: OutgoingMessage[]; chunks: Map<string, number>; bytes: number } {
  const messages: OutgoingMessage[] = [];
  const chunks = new Map<string, number>();
  let bytes = 0;
  for (const [part, json] of parts) {
    const had = before.get(part) ?? 0;
    let n = 0;
    if (json !== null) {
      const z = gzipSync(json, { level: 3 });
      n = Math.max(1, Math.ceil(z.length / CHUNK_BYTES));
      for (let i = 0; i < n; i++) {
        const value = z.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
        bytes += value.length;
        messages.push({
          key: chunkKey(host, part, i),
          value,
          partition,
          headers: i === 0 ? { [H_FORMAT]: FORMAT, [H_CHUNKS]: String(n) } : { [H_FORMAT]: FORMAT },
        });
      }
    }
    for (let i = n; i < had; i++) messages.push({ key: chunkKey(host, part, i), value: null, partition });
    chunks.set(part, n);
  }
  return { messages, chunks, bytes };
}

interface Held {
  partition: number;
  value: Buffer;
  headers: Record<string, string>;
  /** read from the local copy, not (yet) superseded by the topic */
  cached: boolean;
}

export interface RestoredHost {
  host: string;
  partition: number;
  /** part name -> parsed JSON */
  parts: Map<string, unknown>;
  /** part name -> JSON text (what is committed now: unchanged parts are not written again) */
  text: Map<string, string>;
  /** part name -> chunk records it has */
  chunks: Map<string, number>;
  /** every record came from the local copy (the topic had nothing newer) */
  fromCache: boolean;
}

export interface ChangelogStoreOptions {
  bus: Bus;
  topic: string;
  /** the local copy (`<state-dir>/learners/changelog.bin`); none: the topic is read from its start */
  cachePath?: string;
  /** how long a start or a restore waits for the topic's end (default 60 s) */
  timeoutMs?: number;
}

export class ChangelogStore {
  private readonly held = new Map<string, Held>();
  /** host -> its keys */
  private readonly byHost = new Map<string, Set<string>>();
  private followed: Followed | undefined;
  private startAt = new Map<number, string>();
  private readonly timeoutMs: number;
  /** records read from the topic and from the local copy */
  readonly counts = { read: 0, cached: 0 };

  constructor(private readonly opts: ChangelogStoreOptions) {
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  get sub(): Subscription | undefined {
    return this.followed?.sub;
  }

  /** Loads the local copy, then follows the topic from where it ends (read to the end it has now). */
  async start(): Promise<void> {
    if (this.opts.cachePath) this.loadCache(this.opts.cachePath);
    this.followed = await followFromStart(this.opts.bus, {
      topics: [this.opts.topic],
      // every instance keeps a copy of every partition: a group of its own
      groupId: `virgo-learner-state-${randomUUID()}`,
      timeoutMs: this.timeoutMs,
      startAt: (_t, p) => this.startAt.get(p),
      onBatch: async (batch) => {
        for (const m of batch) this.take(m);
      },
    });
    await this.followed.sub.ready;
    if (!(await this.followed.caughtUp))
      log.warn('learner-state changelog not read to its end; restores wait for it', {
        topic: this.opts.topic,
      });
  }

  /** Waits until the copy holds everything the topic's `partitions` hold now (committed). */
  readTo(partitions: readonly number[]): Promise<boolean> {
    if (!this.followed) return Promise.resolve(true);
    return this.followed.readTo(this.opts.topic, partitions, this.timeoutMs);
  }

  /** Hosts with state in `partition`. */
  hostsIn(partition: number): string[] {
    const out: string[] = [];
    for (const [host, keys] of this.byHost) {
      if (host.startsWith(SHARED_PREFIX)) continue;
      const first = keys.values().next().value;
      if (first !== undefined && this.held.get(first)?.partition === partition) out.push(host);
    }
    return out;
  }

  /** Every host the copy holds state for. */
  hosts(): string[] {
    return [...this.byHost.keys()].filter((h) => !h.startsWith(SHARED_PREFIX));
  }

  /** Every instance's shared parts (one document per instance and learner). */
  sharedDocs(): SharedDoc[] {
    const out: SharedDoc[] = [];
    for (const h of this.byHost.keys()) {
      if (!h.startsWith(SHARED_PREFIX)) continue;
      for (const doc of this.assemble(h)?.parts.values() ?? []) out.push(doc as SharedDoc);
    }
    return out;
  }

  /** A host's state as the changelog has it; parts that cannot be read are left out (counted). */
  assemble(host: string): RestoredHost | undefined {
    const keys = this.byHost.get(host);
    if (!keys || keys.size === 0) return undefined;
    const out: RestoredHost = {
      host,
      partition: -1,
      parts: new Map(),
      text: new Map(),
      chunks: new Map(),
      fromCache: true,
    };
    for (const key of keys) {
      const k = parseStateKey(key);
      const h = this.held.get(key)!;
      out.partition = h.partition;
      if (!h.cached) out.fromCache = false;
      if (k?.chunk !== 0) continue;
      const n = Number(h.headers[H_CHUNKS] ?? '1');
      const pieces: Buffer[] = [h.value];
      for (let i = 1; i < n; i++) {
        const c = this.held.get(chunkKey(host, k.part, i));
        if (!c) break;
        pieces.push(c.value);
      }
      try {
        if (pieces.length !== n) throw new Error(`${n - pieces.length} of ${n} chunks missing`);
        const text = gunzipSync(Buffer.concat(pieces)).toString('utf8');
        out.parts.set(k.part, JSON.parse(text));
        out.text.set(k.part, text);
        out.chunks.set(k.part, n);
      } catch (err) {
        mUnreadable.inc();
        log.error('cannot read a part of a host state in the changelog; it starts afresh', {
          host,
          part: k.part,
          err,
        });
      }
    }
    return out;
  }

  /** Saves the copy and the offsets it covers (atomic replace). */
  saveCache(): void {
    const path = this.opts.cachePath;
    if (!path || !this.followed) return;
    const positions: [number, string][] = [];
    for (const p of this.partitionsSeen()) {
      const pos = this.followed.position(this.opts.topic, p) ?? this.startAt.get(p);
      if (pos !== undefined) positions.push([p, pos.toString()]);
    }
    const header = Buffer.from(JSON.stringify({ version: 1, topic: this.opts.topic, positions }));
    const parts: Buffer[] = [u32(header.length), header];
    for (const [key, h] of this.held) {
      const k = Buffer.from(key);
      const hd = Buffer.from(JSON.stringify(h.headers));
      parts.push(u32(k.length), k, u32(h.partition), u32(hd.length), hd, u32(h.value.length), h.value);
    }
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w');
    try {
      for (const b of parts) writeSync(fd, b);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }

  async close(): Promise<void> {
    await this.followed?.sub.close();
  }

  private partitionsSeen(): Set<number> {
    const out = new Set<number>(this.startAt.keys());
    for (const h of this.held.values()) out.add(h.partition);
    return out;
  }

  private take(m: BusMessage): void {
    const key = m.key?.toString('utf8') ?? '';
    const k = parseStateKey(key);
    if (!k) return;
    this.counts.read++;
    if (m.value === null) this.remove(k.host, key);
    // a copy: m.value is a view into the fetch response, which it would keep alive while held
    else
      this.put(k.host, key, {
        partition: m.partition,
        value: Buffer.from(m.value),
        headers: m.headers,
        cached: false,
      });
  }

  private put(host: string, key: string, h: Held): void {
    this.held.set(key, h);
    let keys = this.byHost.get(host);
    if (!keys) {
      keys = new Set();
      this.byHost.set(host, keys);
    }
    keys.add(key);
  }

  private remove(host: string, key: string): void {
    this.held.delete(key);
    const keys = this.byHost.get(host);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.byHost.delete(host);
  }

  private loadCache(path: string): void {
    if (!existsSync(path)) return;
    try {
      const b = readFileSync(path);
      let o = 0;
      const take = (n: number) => {
        if (o + n > b.length) throw new Error('truncated');
        const s = b.subarray(o, o + n);
        o += n;
        return s;
      };
      const u = () => take(4).readUInt32BE(0);
      const header = JSON.parse(take(u()).toString('utf8')) as {
        version: number;
        topic: string;
        positions: [number, string][];
      };
      if (header.version !== 1 || header.topic !== this.opts.topic) {
        log.info('local copy of the changelog is of another topic; reading the topic from its start', {
          path,
          topic: header.topic,
        });
        return;
      }
      const held: [string, Held][] = [];
      while (o < b.length) {
        const key = take(u()).toString('utf8');
        const partition = u();
        const headers = JSON.parse(take(u()).toString('utf8')) as Record<string, string>;
        const value = Buffer.from(take(u()));
        held.push([key, { partition, value, headers, cached: true }]);
      }
      for (const [key, h] of held) {
        const k = parseStateKey(key);
        if (k) this.put(k.host, key, h);
      }
      this.startAt = new Map(header.positions);
      this.counts.cached = held.length;
      log.info('local copy of the changelog loaded', { path, records: held.length });
    } catch (err) {
      // A damaged copy costs a longer read of the topic, nothing else.
      log.warn('local copy of the changelog unreadable; reading the topic from its start', { path, err });
      this.held.clear();
      this.byHost.clear();
      this.startAt.clear();
    }
  }
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}
