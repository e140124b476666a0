// The fixed ring the original kernel module kept: slot = seq % size, the oldest pair overwritten.
// Parallel arrays, so writing a pair allocates nothing.

export interface RingEntry {
  seq: number;
  /** the host the pair belongs to ('' when unknown) */
  host: string;
  key: string;
  value: string;
  /** epoch ms when the pair was read */
  ts: number;
}

export class Ring {
  readonly size: number;
  private readonly hosts: string[];
  private readonly keys: string[];
  private readonly values: string[];
  private readonly seqs: Float64Array;
  private readonly stamps: Float64Array;
  /** sequence number the next write gets */
  private nextSeq = 0;

  constructor(size = 500) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`ring size must be an integer >= 1, got ${size}`);
    this.size = size;
    this.hosts = new Array<string>(size).fill('');
    this.keys = new Array<string>(size).fill('');
    this.values = new Array<string>(size).fill('');
    this.seqs = new Float64Array(size);
    this.stamps = new Float64Array(size);
  }

  /** Stores a pair; returns its sequence number. */
  write(key: string, value: string, ts = Date.now(), host = ''): number {
    const seq = this.nextSeq++;
    const i = seq % this.size;
    this.hosts[i] = host;
    this.keys[i] = key;
    this.values[i] = value;
    this.seqs[i] = seq;
    this.stamps[i] = ts;
    return seq;
  }

  /** Pairs written so far (including overwritten ones). */
  get written(): number {
    return this.nextSeq;
  }

  /** Pairs held now: min(written, size). */
  get length(): number {
    return Math.min(this.nextSeq, this.size);
  }

  /** Sequence number of the oldest pair still held (equal to `written` when empty). */
  get oldestSeq(): number {
    return this.nextSeq - this.length;
  }

  /** The pair with sequence number `seq`, or undefined when it was overwritten or not written yet. */
  at(seq: number): RingEntry | undefined {
    if (!Number.isInteger(seq) || seq < this.oldestSeq || seq >= this.nextSeq) return undefined;
    const i = seq % this.size;
    return { seq, host: this.hosts[i]!, key: this.keys[i]!, value: this.values[i]!, ts: this.stamps[i]! };
  }

  /** What the ring holds, oldest → newest. */
  toArray(): RingEntry[] {
    const out: RingEntry[] = [];
    for (let s = this.oldestSeq; s < this.nextSeq; s++) {
      const i = s % this.size;
      out.push({
        seq: this.seqs[i]!,
        host: this.hosts[i]!,
        key: this.keys[i]!,
        value: this.values[i]!,
        ts: this.stamps[i]!,
      });
    }
    return out;
  }

  *[Symbol.iterator](): IterableIterator<RingEntry> {
    for (const e of this.toArray()) yield e;
  }
}
