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

export interface LineId {
  /** 53-bit key of the exact tier */
  key: number;
  h1: number;
  h2: number;
}

/** Two 32-bit hashes of (host, ts, line) in one pass: FNV-1a and a multiplicative mix. */
export function lineId(host: string, ts: number, line: string): LineId {
  ha = 0x811c9dc5;
  hb = 0x9747b28c;
  feed(host);
  // the decimal digits of ts, as String(ts) writes them (saved identities depend on it), without
  // making the string for the usual case of a whole, non-negative number of milliseconds
  if (Number.isSafeInteger(ts) && ts >= 0) feedDigits(ts);
  else feed(String(ts));
  feed(line);
  const h1 = fmix(ha);
  const h2 = fmix(hb) | 1;
  return { key: h1 * 0x200000 + (h2 >>> 11), h1, h2 };
}

// The running state of lineId's two hashes (module-level: no closure per line).
let ha = 0;
let hb = 0;

function feedCode(c: number): void {
  ha ^= c;
  ha = Math.imul(ha, 0x01000193);
  hb ^= c;
  hb = Math.imul(hb, 0x5bd1e995);
  hb ^= hb >>> 15;
}

function feedEnd(): void {
  ha ^= 0xff;
  ha = Math.imul(ha, 0x01000193);
  hb ^= 0xff;
  hb = Math.imul(hb, 0x5bd1e995);
}

function feed(s: string): void {
  for (let i = 0; i < s.length; i++) feedCode(s.charCodeAt(i));
  feedEnd();
}

const digits = new Uint8Array(16);

function feedDigits(n: number): void {
  let k = 0;
  do {
    digits[k++] = 48 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  while (k > 0) feedCode(digits[--k]!);
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

  private pos(id: LineId, i: number): number {
    return (id.h1 + Math.imul(i, id.h2)) >>> 0;
  }

  add(id: LineId): void {
    for (let i = 0; i < this.k; i++) {
      const p = this.pos(id, i) % this.m;
      this.bits[p >>> 3]! |= 1 << (p & 7);
    }
    this.count++;
  }

  has(id: LineId): boolean {
    for (let i = 0; i < this.k; i++) {
      const p = this.pos(id, i) % this.m;
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

export class LineDedupe {
  private readonly exact = new Set<number>();
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
    if (this.exact.has(id.key)) return true;
    if (watermark === undefined || ts >= watermark - this.horizonMs) return false;
    return this.cur.has(id) || this.old.has(id);
  }

  /** Records an admitted line; `watermarkOf` tells which identities left the horizon. */
  remember(host: string, ts: number, id: LineId, watermarkOf: (host: string) => number | undefined): void {
    this.exact.add(id.key);
    this.fifoHost.push(host);
    this.fifoTs.push(ts);
    this.fifoKey.push(id.key);
    if (this.cur.count >= this.bloomCapacity) {
      this.old = this.cur;
      this.cur = new Bloom(this.old.m, this.old.k);
    }
    this.cur.add(id);
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

  /**
   * The exact identities admitted for `hosts` ([ts, key] each, oldest first), in one pass over the
   * admission queue: what follows a host to another consumer (the learner-state changelog).
   * The Bloom generations do not: they are the instance's, over every host it admitted.
   */
  exportHosts(hosts: ReadonlySet<string>): Map<string, Float64Array> {
    // Runs every commit interval under exactly-once for every host that changed, over the whole
    // admission queue: flat [ts, key, ts, key, …] per host, no tuple per identity (a tuple each
    // was most of the changelog's cost per line, with the garbage it made).
    const flat = new Map<string, number[]>();
    for (let i = this.head; i < this.fifoKey.length; i++) {
      const h = this.fifoHost[i]!;
      if (!hosts.has(h) || !this.exact.has(this.fifoKey[i]!)) continue;
      let l = flat.get(h);
      if (!l) {
        l = [];
        flat.set(h, l);
      }
      l.push(this.fifoTs[i]!, this.fifoKey[i]!);
    }
    const out = new Map<string, Float64Array>();
    for (const [h, l] of flat) out.set(h, new Float64Array(l));
    return out;
  }

  /** Adds a host's exact identities (flat [ts, key] pairs from `exportHosts`, maybe of another consumer). */
  importHost(host: string, pairs: Float64Array): void {
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const t = pairs[i]!;
      const k = pairs[i + 1]!;
      if (this.exact.has(k)) continue;
      this.exact.add(k);
      this.fifoHost.push(host);
      this.fifoTs.push(t);
      this.fifoKey.push(k);
    }
  }

  /** Forgets the exact identities of `hosts` (their partition went to another consumer). */
  dropHosts(hosts: ReadonlySet<string>): void {
    if (hosts.size === 0) return;
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
