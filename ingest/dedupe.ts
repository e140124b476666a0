// At-most-once counting: a line the learners already took is dropped when it comes again (the
// same file published twice, a publisher that restarted from the beginning, an at-least-once
// redelivery). A line is identified by (host, event time, hash of the line's text).
//
// Memory is bounded, in two tiers:
// - exact: the identities of the lines admitted within `horizonMs` of their host's watermark
//   (at least the allowed lateness, so every line that could still be admitted is checked
//   exactly), at most `maxExact` of them (default 200,000, about 16 MB); past the cap the oldest
//   go early, counted in virgo_ingest_dedupe_evicted_total;
// - beyond the horizon: two generations of a Bloom filter over every admitted line,
//   `bloomCapacity` lines each (default 1,000,000 at a 0.1% false-positive rate, 1.8 MB each).
//   A line older than its host's watermark minus the allowed lateness is never admitted anyway:
//   the filter only tells a duplicate (dropped, counted) from a truly late line (dead-lettered).
//   A false positive makes a late line count as a duplicate; nothing is ever counted twice.
// What it cannot catch: two genuinely different lines with the same host, the same timestamp and
// the same text (kern.log stamps are whole seconds: a repeated message within one second) are one
// line to it, so the second is dropped as a duplicate; a line re-sent after its identity left both
// tiers (older than 2 x bloomCapacity admitted lines) is treated as late, not counted either.
// The exact tier keys are 53-bit hashes: two different lines collide with probability ~n^2/2^54.

import { KeySet } from './key-set.ts';

export interface LineId {
  /** 53-bit key of the exact tier */
  key: number;
  h1: number;
  h2: number;
}

/** Two 32-bit hashes of (host, ts, line) in one pass: FNV-1a and a multiplicative mix. */
export function lineId(host: string, ts: number, line: string): LineId {
  const key = lineKey(host, ts, line);
  return { key, h1: keyH1, h2: keyH2 };
}

/** h1 and h2 of the last `lineKey` call (valid until the next one) */
export let keyH1 = 0;
export let keyH2 = 0;

/**
 * `lineId` without the object, for the consumer stage's hot loop: returns the key and leaves h1
 * and h2 in `keyH1` and `keyH2` (a line's identity is then three numbers in the caller's arrays,
 * not an object and its boxed numbers per line).
 */
export function lineKey(host: string, ts: number, line: string): number {
  ha = 0x811c9dc5;
  hb = 0x9747b28c;
  feed(host);
  // the decimal digits of ts, as String(ts) writes them (saved identities depend on it), without
  // making the string for the usual case of a whole, non-negative number of milliseconds
  if (Number.isSafeInteger(ts) && ts >= 0) feedDigits(ts);
  else feed(String(ts));
  feed(line);
  keyH1 = fmix(ha);
  keyH2 = fmix(hb) | 1;
  return keyH1 * 0x200000 + (keyH2 >>> 11);
}

// The running state of lineId's two hashes (module-level: no closure per line). `feed` works on
// locals and writes them back once: module-level `let`s are context slots, a load and a store
// per character otherwise (the hash loop was ~10% of the stage's work).
let ha = 0;
let hb = 0;

function feedEnd(): void {
  ha ^= 0xff;
  ha = Math.imul(ha, 0x01000193);
  hb ^= 0xff;
  hb = Math.imul(hb, 0x5bd1e995);
}

function feed(s: string): void {
  let a = ha;
  let b = hb;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  ha = a;
  hb = b;
  feedEnd();
}

const digits = new Uint8Array(16);

function feedDigits(n: number): void {
  let k = 0;
  do {
    digits[k++] = 48 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  let a = ha;
  let b = hb;
  while (k > 0) {
    const c = digits[--k]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  ha = a;
  hb = b;
  feedEnd();
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

class Bloom {
  readonly bits: Uint8Array;
  count = 0;

  constructor(
    readonly m: number,
    readonly k: number,
    bits?: Uint8Array,
  ) {
    this.bits = bits ?? new Uint8Array(Math.ceil(m / 8));
  }

  add(h1: number, h2: number): void {
    for (let i = 0; i < this.k; i++) {
      const p = ((h1 + Math.imul(i, h2)) >>> 0) % this.m;
      this.bits[p >>> 3]! |= 1 << (p & 7);
    }
    this.count++;
  }

  has(h1: number, h2: number): boolean {
    for (let i = 0; i < this.k; i++) {
      const p = ((h1 + Math.imul(i, h2)) >>> 0) % this.m;
      if ((this.bits[p >>> 3]! & (1 << (p & 7))) === 0) return false;
    }
    return true;
  }
}

export interface LineDedupeOptions {
  /** how far behind its host's watermark a line is checked exactly (>= the allowed lateness) */
  horizonMs: number;
  maxExact?: number;
  bloomCapacity?: number;
  /** Bloom false-positive rate at capacity (default 0.001) */
  falsePositive?: number;
}

export interface DedupeJson {
  exact: [string, number, number][];
  bloom: { m: number; k: number; capacity: number; counts: [number, number] };
}

/** identities per block of a host's exported dedupe window (16 bytes each: 4 KiB a block) */
export const ID_BLOCK = 256;

/** A block of a host's exact identities as exported: `at` is the place of its first pair. */
export interface IdBlock {
  at: number;
  /** base64 of a Float64Array of [ts, key] pairs */
  seen: string;
}

/** A host's exact identities as blocks (`LineDedupe.exportHostBlocks`). */
export interface HostIdBlocks {
  /** the places of the live identities: from..to (to excluded) */
  from: number;
  to: number;
  /** block number -> its JSON text (an IdBlock) */
  blocks: Map<number, string>;
}

/** One host's identities in admission order: place `base + i` is `ts[i]`, `key[i]`; the live ones
 * are `front..end`. */
class HostIds {
  private ts: number[] = [];
  private key: number[] = [];
  private base: number;
  front: number;
  /** block number -> the end place it covered and its text, as last exported */
  private readonly texts = new Map<number, { end: number; text: string }>();

  constructor(start: number) {
    this.base = start;
    this.front = start;
  }

  get end(): number {
    return this.base + this.ts.length;
  }

  push(ts: number, key: number): void {
    this.ts.push(ts);
    this.key.push(key);
  }

  /** The oldest live identity left the exact tier. */
  shift(): void {
    this.front++;
    const gone = this.front - this.base;
    if (gone > 1024 && gone * 2 > this.ts.length) {
      this.ts = this.ts.slice(gone);
      this.key = this.key.slice(gone);
      this.base = this.front;
    }
  }

  export(): HostIdBlocks {
    const end = this.end;
    const first = Math.floor(this.front / ID_BLOCK);
    const last = Math.floor((end - 1) / ID_BLOCK);
    for (const n of this.texts.keys()) if (n < first) this.texts.delete(n);
    const blocks = new Map<number, string>();
    for (let n = first; n <= last; n++) {
      const stop = Math.min((n + 1) * ID_BLOCK, end);
      let c = this.texts.get(n);
      if (c?.end !== stop) {
        const at = Math.max(n * ID_BLOCK, this.front);
        const pairs = new Float64Array(2 * (stop - at));
        for (let p = at, j = 0; p < stop; p++, j += 2) {
          pairs[j] = this.ts[p - this.base]!;
          pairs[j + 1] = this.key[p - this.base]!;
        }
        const seen = Buffer.from(pairs.buffer, pairs.byteOffset, pairs.byteLength).toString('base64');
        c = { end: stop, text: JSON.stringify({ at, seen } satisfies IdBlock) };
        this.texts.set(n, c);
      }
      blocks.set(n, c.text);
    }
    return { from: this.front, to: end, blocks };
  }
}

export class LineDedupe {
  private readonly exact = new KeySet();
  /** admission order: host, ts, key (a ring would be leaner; arrays keep it simple and bounded) */
  private fifoHost: string[] = [];
  private fifoTs: number[] = [];
  private fifoKey: number[] = [];
  private head = 0;
  private cur: Bloom;
  private old: Bloom;
  readonly horizonMs: number;
  readonly maxExact: number;
  readonly bloomCapacity: number;
  /** exact identities dropped by the cap while still within the horizon */
  evictedEarly = 0;
  /**
   * Each host's exact identities in admission order, with the blocks last exported, kept from the
   * first `exportHostBlocks`/`importHostBlocks` on (only the learn stage's exactly-once asks:
   * others pay nothing). The admission queue restricted to one host is that host's list, and
   * eviction takes from the queue's head, so a host's live identities are always a contiguous
   * run `front..end` of its list: new ones append, old ones leave the front.
   */
  private byHost: Map<string, HostIds> | undefined;

  constructor(opts: LineDedupeOptions) {
    this.horizonMs = opts.horizonMs;
    this.maxExact = opts.maxExact ?? 200_000;
    this.bloomCapacity = opts.bloomCapacity ?? 1_000_000;
    const p = opts.falsePositive ?? 0.001;
    const m = Math.ceil((-this.bloomCapacity * Math.log(p)) / Math.LN2 ** 2);
    const k = Math.max(1, Math.round((m / this.bloomCapacity) * Math.LN2));
    this.cur = new Bloom(m, k);
    this.old = new Bloom(m, k);
  }

  get size(): number {
    return this.exact.size;
  }

  /**
   * Whether the line was already admitted. `watermark` is its host's (newest admitted event time):
   * within the horizon only the exact tier answers; beyond it, the Bloom filter.
   */
  seen(id: LineId, ts: number, watermark: number | undefined): boolean {
    return this.seenKey(id.key, id.h1, id.h2, ts, watermark);
  }

  /** `seen` for an identity as its three numbers (`lineKey`). */
  seenKey(key: number, h1: number, h2: number, ts: number, watermark: number | undefined): boolean {
    if (this.exact.has(key)) return true;
    if (watermark === undefined || ts >= watermark - this.horizonMs) return false;
    return this.cur.has(h1, h2) || this.old.has(h1, h2);
  }

  /** Records an admitted line; `watermarkOf` tells which identities left the horizon. */
  remember(host: string, ts: number, id: LineId, watermarkOf: (host: string) => number | undefined): void {
    this.rememberKey(host, ts, id.key, id.h1, id.h2, watermarkOf);
  }

  /** `remember` for an identity as its three numbers (`lineKey`). */
  rememberKey(
    host: string,
    ts: number,
    key: number,
    h1: number,
    h2: number,
    watermarkOf: (host: string) => number | undefined,
  ): void {
    this.exact.add(key);
    this.fifoHost.push(host);
    this.fifoTs.push(ts);
    this.fifoKey.push(key);
    if (this.byHost) this.hostIds(host).push(ts, key);
    if (this.cur.count >= this.bloomCapacity) {
      this.old = this.cur;
      this.cur = new Bloom(this.old.m, this.old.k);
    }
    this.cur.add(h1, h2);
    // Forget, oldest first, what left its host's horizon, and whatever the cap forces out.
    while (this.head < this.fifoKey.length) {
      const h = this.fifoHost[this.head]!;
      const t = this.fifoTs[this.head]!;
      const wm = watermarkOf(h);
      const out = wm !== undefined && t < wm - this.horizonMs;
      const over = this.exact.size > this.maxExact;
      if (!out && !over) break;
      if (!out) this.evictedEarly++;
      this.exact.delete(this.fifoKey[this.head]!);
      this.byHost?.get(h)?.shift();
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.fifoKey.length) {
      this.fifoHost = this.fifoHost.slice(this.head);
      this.fifoTs = this.fifoTs.slice(this.head);
      this.fifoKey = this.fifoKey.slice(this.head);
      this.head = 0;
    }
  }

  toJSON(): DedupeJson {
    const exact: [string, number, number][] = [];
    for (let i = this.head; i < this.fifoKey.length; i++) {
      if (this.exact.has(this.fifoKey[i]!))
        exact.push([this.fifoHost[i]!, this.fifoTs[i]!, this.fifoKey[i]!]);
    }
    return {
      exact,
      bloom: {
        m: this.cur.m,
        k: this.cur.k,
        capacity: this.bloomCapacity,
        counts: [this.cur.count, this.old.count],
      },
    };
  }

  /** Adds a host's exact identities (flat [ts, key] pairs: a changelog record written before the
   * blocks of `exportHostBlocks`, maybe by another consumer). */
  importHost(host: string, pairs: Float64Array): void {
    const ids = this.byHost ? this.hostIds(host) : undefined;
    for (let i = 0; i + 1 < pairs.length; i += 2) this.adopt(host, pairs[i]!, pairs[i + 1]!, ids);
  }

  /** Takes an identity another consumer admitted (from the changelog), unless it is known here. */
  private adopt(host: string, t: number, k: number, ids: HostIds | undefined): void {
    if (this.exact.has(k)) return;
    this.exact.add(k);
    this.fifoHost.push(host);
    this.fifoTs.push(t);
    this.fifoKey.push(k);
    ids?.push(t, k);
  }

  /**
   * The exact identities of `hosts` as blocks of ID_BLOCK by their place in the host's admission
   * order (block n: places n*ID_BLOCK up to the next), each block's JSON text `{"at": place of its
   * first pair, "seen": base64 of a Float64Array of [ts, key] pairs}`, and the live places
   * `from..to`. A block is encoded again only when identities were added to it: one whose
   * identities only expire keeps its text (the reader skips the places before `from`), so an
   * unchanged block costs neither encoding here nor a changelog write. A host with no live
   * identity is left out. What follows a host to another consumer (the learner-state changelog);
   * the Bloom generations do not: they are the instance's, over every host it admitted.
   */
  exportHostBlocks(hosts: ReadonlySet<string>): Map<string, HostIdBlocks> {
    const byHost = this.tracked();
    const out = new Map<string, HostIdBlocks>();
    for (const h of hosts) {
      const ids = byHost.get(h);
      if (!ids || ids.end === ids.front) continue;
      out.set(h, ids.export());
    }
    return out;
  }

  /**
   * Puts back a host's identities from `exportHostBlocks`' records (maybe another consumer's):
   * the places `from..to` of `blocks`, in order; an identity already known here is skipped.
   * Returns how many places of `from..to` no block held (a block missing from the changelog).
   */
  importHostBlocks(host: string, from: number, to: number, blocks: readonly IdBlock[]): number {
    const byHost = this.tracked();
    let ids = byHost.get(host);
    if (!ids) {
      ids = new HostIds(from);
      byHost.set(host, ids);
    }
    let next = from;
    for (const b of [...blocks].sort((x, y) => x.at - y.at)) {
      const raw = Buffer.from(b.seen, 'base64');
      const pairs = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        const place = b.at + i / 2;
        if (place < next || place >= to) continue;
        next = place + 1;
        this.adopt(host, pairs[i]!, pairs[i + 1]!, ids);
      }
    }
    return to - next;
  }

  /** The per-host lists, built from the admission queue the first time they are asked for. */
  private tracked(): Map<string, HostIds> {
    if (!this.byHost) {
      this.byHost = new Map();
      for (let i = this.head; i < this.fifoKey.length; i++)
        this.hostIds(this.fifoHost[i]!).push(this.fifoTs[i]!, this.fifoKey[i]!);
    }
    return this.byHost;
  }

  private hostIds(host: string): HostIds {
    let ids = this.byHost!.get(host);
    if (!ids) {
      ids = new HostIds(0);
      this.byHost!.set(host, ids);
    }
    return ids;
  }

  /** Forgets the exact identities of `hosts` (their partition went to another consumer). */
  dropHosts(hosts: ReadonlySet<string>): void {
    if (hosts.size === 0) return;
    for (const h of hosts) this.byHost?.delete(h);
    const fh: string[] = [];
    const ft: number[] = [];
    const fk: number[] = [];
    for (let i = this.head; i < this.fifoKey.length; i++) {
      const h = this.fifoHost[i]!;
      const k = this.fifoKey[i]!;
      if (hosts.has(h)) {
        this.exact.delete(k);
        continue;
      }
      fh.push(h);
      ft.push(this.fifoTs[i]!);
      fk.push(k);
    }
    this.fifoHost = fh;
    this.fifoTs = ft;
    this.fifoKey = fk;
    this.head = 0;
  }

  /** The Bloom generations' bits (current, then old), for a binary snapshot file. */
  bloomBits(): [Uint8Array, Uint8Array] {
    return [this.cur.bits, this.old.bits];
  }

  restore(j: DedupeJson, bits: [Uint8Array, Uint8Array] | undefined): void {
    this.exact.clear();
    this.byHost = undefined;
    this.fifoHost = [];
    this.fifoTs = [];
    this.fifoKey = [];
    this.head = 0;
    for (const [h, t, k] of j.exact) {
      this.exact.add(k);
      this.fifoHost.push(h);
      this.fifoTs.push(t);
      this.fifoKey.push(k);
    }
    const size = Math.ceil(j.bloom.m / 8);
    if (bits && bits[0].length === size && bits[1].length === size) {
      this.cur = new Bloom(j.bloom.m, j.bloom.k, bits[0]);
      this.old = new Bloom(j.bloom.m, j.bloom.k, bits[1]);
      this.cur.count = j.bloom.counts[0];
      this.old.count = j.bloom.counts[1];
    }
  }
}
