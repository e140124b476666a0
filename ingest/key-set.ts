// A set of numbers (the dedupe's 53-bit line keys) in flat typed arrays: open addressing with
// linear probing and backward-shift deletion (no tombstones). A `Set<number>` boxes every key
// above 2^31 as a heap number and hashes it as one: with one add, one has and one delete per line
// that was ~20% of the consumer stage's work and part of its garbage; here nothing is allocated
// per key. Same answers as a Set (SameValueZero: NaN is one key, -0 is 0); no iteration order.

const EMPTY_CAPACITY = 16;

export class KeySet {
  private keys = new Float64Array(EMPTY_CAPACITY);
  private used = new Uint8Array(EMPTY_CAPACITY);
  private mask = EMPTY_CAPACITY - 1;
  private n = 0;

  get size(): number {
    return this.n;
  }

  has(key: number): boolean {
    return this.probe(key) >= 0;
  }

  /** Adds `key`; false when it was there already. */
  add(key: number): boolean {
    // at most half full: probes stay short
    if ((this.n + 1) * 2 > this.keys.length) this.grow();
    const i = this.probe(key);
    if (i >= 0) return false;
    this.keys[~i] = key;
    this.used[~i] = 1;
    this.n++;
    return true;
  }

  /** Removes `key`; false when it was not there. */
  delete(key: number): boolean {
    let i = this.probe(key);
    if (i < 0) return false;
    const keys = this.keys;
    const used = this.used;
    const mask = this.mask;
    // backward shift: move up every later key of the run whose home is not between the hole and it
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (used[j] === 0) break;
      const home = slot(keys[j]!) & mask;
      if (i <= j ? i < home && home <= j : i < home || home <= j) continue;
      keys[i] = keys[j]!;
      i = j;
    }
    used[i] = 0;
    this.n--;
    return true;
  }

  /** Empties the set; it keeps its capacity (a set cleared per batch does not grow again). */
  clear(): void {
    if (this.n > 0) this.used.fill(0);
    this.n = 0;
  }

  /** The slot holding `key`, else ~ the empty slot where its probe ended (where it would go). */
  private probe(key: number): number {
    const keys = this.keys;
    const used = this.used;
    let i = slot(key) & this.mask;
    while (used[i] === 1) {
      if (same(keys[i]!, key)) return i;
      i = (i + 1) & this.mask;
    }
    return ~i;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldUsed = this.used;
    const cap = oldKeys.length * 2;
    this.keys = new Float64Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
    this.n = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldUsed[i] === 1) this.add(oldKeys[i]!);
  }
}

/** SameValueZero, as a Set compares. */
function same(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

/** The home slot's hash: both 32-bit halves of an integer key, mixed (its low bits alone are h2's). */
function slot(key: number): number {
  const lo = key >>> 0;
  const hi = (key / 4294967296) >>> 0;
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  return h;
}
