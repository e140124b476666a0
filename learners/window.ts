// Exact counting over a sliding event-time window made of fixed buckets: adding is O(1), sliding
// evicts whole buckets and subtracts them from a running total, so the window's counts are exact
// (no sketch) at bucket granularity. Also the hash the learners share.

/** FNV-1a 32-bit of a string (template ids into a fixed-size vector). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// The learners' seeded generator is the project's one (its whole state is one number, so it saves
// with the model); re-exported here, where the learners have always found it.
export { Rng } from '../runtime/rng.ts';

export interface SlidingCounterJson {
  bucketMs: number;
  buckets: number;
  head: number | null;
  late: number;
  data: [number, [string, number][]][];
}

export class SlidingCounter {
  /** bucket index -> key -> count */
  private readonly data = new Map<number, Map<string, number>>();
  /** key -> count over the window */
  readonly counts = new Map<string, number>();
  total = 0;
  /** newest bucket index seen */
  head: number | null = null;
  /** events older than the window when they arrived (not counted) */
  late = 0;

  constructor(
    readonly bucketMs: number,
    readonly buckets: number,
  ) {
    if (!(bucketMs > 0) || !(buckets >= 1))
      throw new Error('SlidingCounter needs bucketMs > 0 and buckets >= 1');
  }

  get windowMs(): number {
    return this.bucketMs * this.buckets;
  }

  /** Counts `key` at event time `ts`; returns false for an event already outside the window. */
  add(ts: number, key: string, by = 1): boolean {
    const b = Math.floor(ts / this.bucketMs);
    if (this.head === null || b > this.head) this.slide(b);
    if (b <= (this.head as number) - this.buckets) {
      this.late++;
      return false;
    }
    let m = this.data.get(b);
    if (!m) {
      m = new Map();
      this.data.set(b, m);
    }
    m.set(key, (m.get(key) ?? 0) + by);
    this.counts.set(key, (this.counts.get(key) ?? 0) + by);
    this.total += by;
    return true;
  }

  /** Moves the window's end to bucket `b`, evicting buckets that fall out. */
  private slide(b: number): void {
    this.head = b;
    const oldest = b - this.buckets + 1;
    for (const [idx, m] of this.data) {
      if (idx >= oldest) continue;
      for (const [k, c] of m) {
        const left = (this.counts.get(k) ?? 0) - c;
        if (left <= 0) this.counts.delete(k);
        else this.counts.set(k, left);
        this.total -= c;
      }
      this.data.delete(idx);
    }
  }

  /** Advances the window's end to event time `ts` without counting anything. */
  advance(ts: number): void {
    const b = Math.floor(ts / this.bucketMs);
    if (this.head === null || b > this.head) this.slide(b);
  }

  /** The key with the highest count; ties go to the smallest key, so the answer is deterministic. */
  top(): { key: string; count: number } | undefined {
    let best: string | undefined;
    let bc = 0;
    for (const [k, c] of this.counts) {
      if (c > bc || (c === bc && best !== undefined && k < best)) {
        best = k;
        bc = c;
      }
    }
    return best === undefined ? undefined : { key: best, count: bc };
  }

  toJSON(): SlidingCounterJson {
    return {
      bucketMs: this.bucketMs,
      buckets: this.buckets,
      head: this.head,
      late: this.late,
      data: [...this.data].map(([b, m]) => [b, [...m]]),
    };
  }

  static fromJSON(j: SlidingCounterJson): SlidingCounter {
    const c = new SlidingCounter(j.bucketMs, j.buckets);
    c.head = j.head;
    c.late = j.late;
    for (const [b, entries] of j.data) {
      const m = new Map(entries);
      c.data.set(b, m);
      for (const [k, n] of entries) {
        c.counts.set(k, (c.counts.get(k) ?? 0) + n);
        c.total += n;
      }
    }
    return c;
  }
}
