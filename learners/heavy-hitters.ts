// Whole-history counts in bounded memory: exact while at most `capacity` distinct keys were seen,
// then Space-Saving (Metwally, Agrawal, El Abbadi 2005): a new key takes the place of the key with
// the smallest count and inherits that count as its possible overestimate (`error`).
// Guarantees once approximate (N = total counted, k = capacity): every key counted more than N/k
// times is held; a held key's count overestimates its true count by at most its `error` <= N/k;
// the reported top key is certainly the true top when count - error >= every other count.
// An indexed binary min-heap keeps each add O(log k) even under a flood of distinct keys.

export interface HeavyHittersJson {
  capacity: number;
  total: number;
  evictions: number;
  entries: [string, number, number][];
}

export interface Hitter {
  key: string;
  count: number;
  /** the most `count` may overestimate the true count by (0 while exact) */
  error: number;
}

export class HeavyHitters {
  private readonly keys: string[] = [];
  private readonly counts: number[] = [];
  private readonly errors: number[] = [];
  private readonly index = new Map<string, number>();
  /** everything counted */
  total = 0;
  /** keys displaced by Space-Saving; 0 means every count is exact */
  evictions = 0;

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new Error('HeavyHitters needs capacity >= 1');
  }

  get size(): number {
    return this.keys.length;
  }

  get exact(): boolean {
    return this.evictions === 0;
  }

  add(key: string, by = 1): void {
    this.total += by;
    const i = this.index.get(key);
    if (i !== undefined) {
      this.counts[i]! += by;
      this.down(i);
      return;
    }
    if (this.keys.length < this.capacity) {
      this.keys.push(key);
      this.counts.push(by);
      this.errors.push(0);
      this.index.set(key, this.keys.length - 1);
      this.up(this.keys.length - 1);
      return;
    }
    // Space-Saving: the smallest counter changes hands; its count becomes the newcomer's error.
    this.evictions++;
    this.index.delete(this.keys[0]!);
    const floor = this.counts[0]!;
    this.keys[0] = key;
    this.errors[0] = floor;
    this.counts[0] = floor + by;
    this.index.set(key, 0);
    this.down(0);
  }

  /** The key with the highest count; ties go to the smallest key, so the answer is deterministic. */
  top(): Hitter | undefined {
    let best = -1;
    for (let i = 0; i < this.keys.length; i++) {
      if (
        best < 0 ||
        this.counts[i]! > this.counts[best]! ||
        (this.counts[i] === this.counts[best] && this.keys[i]! < this.keys[best]!)
      ) {
        best = i;
      }
    }
    return best < 0
      ? undefined
      : { key: this.keys[best]!, count: this.counts[best]!, error: this.errors[best]! };
  }

  /** Whether the top key is certainly the true top (always, while exact). */
  topIsCertain(): boolean {
    const t = this.top();
    if (!t || this.exact) return true;
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] !== t.key && this.counts[i]! > t.count - t.error) return false;
    }
    // A key not held has a true count of at most the smallest held count.
    return this.keys.length < this.capacity || t.count - t.error >= this.counts[0]!;
  }

  count(key: string): number | undefined {
    const i = this.index.get(key);
    return i === undefined ? undefined : this.counts[i];
  }

  private swap(a: number, b: number): void {
    const k = this.keys[a]!;
    const c = this.counts[a]!;
    const e = this.errors[a]!;
    this.keys[a] = this.keys[b]!;
    this.counts[a] = this.counts[b]!;
    this.errors[a] = this.errors[b]!;
    this.keys[b] = k;
    this.counts[b] = c;
    this.errors[b] = e;
    this.index.set(this.keys[a]!, a);
    this.index.set(this.keys[b]!, b);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.counts[parent]! <= this.counts[i]!) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.keys.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.counts[l]! < this.counts[m]!) m = l;
      if (r < n && this.counts[r]! < this.counts[m]!) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  toJSON(): HeavyHittersJson {
    return {
      capacity: this.capacity,
      total: this.total,
      evictions: this.evictions,
      entries: this.keys.map((k, i) => [k, this.counts[i]!, this.errors[i]!]),
    };
  }

  static fromJSON(j: HeavyHittersJson): HeavyHitters {
    const h = new HeavyHitters(j.capacity);
    for (const [k, c, e] of j.entries) {
      h.keys.push(k);
      h.counts.push(c);
      h.errors.push(e);
      h.index.set(k, h.keys.length - 1);
      h.up(h.keys.length - 1);
    }
    h.total = j.total;
    h.evictions = j.evictions;
    return h;
  }
}
