// Event-time order in front of the learners. Kafka keeps order per partition only; one host's lines
// may be spread over several partitions (an unkeyed producer: `kcat -P` without -K) in chunks far
// apart in event time, and a consumer reads its partitions round by round. The merger buffers what
// the partitions deliver and releases it in event-time order up to a watermark:
//
//   watermark = min over the partitions that still hold back of the newest event time read there
//
// A partition holds back while it has unread data (its high watermark is beyond what was read) or,
// assigned but not yet heard from, until `idleMs` passed; a caught-up partition does not (nothing
// older can come from it), nor one silent for `stallMs` although it had data (revoked, stuck).
// Each partition read in its own order, the merge is then exact: a replay of a topic sees every
// host's lines in event-time order whatever the partitioning (as Flink's per-partition watermarks
// with idleness). Live, every partition is caught up and lines pass at once.
//
// What can still arrive out of order (a line older than what its host already released) is
// admitted within `allowedLatenessMs` of the host's watermark (the learners' windows take it) and
// is late beyond it: the stage dead-letters it with reason `late` (HostWatermarks).
// Memory: at most `maxBuffered` lines wait; beyond, the oldest are released early (counted). A
// consumer keeps far below that by pausing the partitions that read ahead (isAhead) while many
// lines wait: partitions of unequal volume otherwise cover unequal event time per fetch, and the
// faster ones fill the buffer while the slowest holds the watermark.
// Time: event time throughout, except idleness (processing time: how long a partition was silent).

export interface Timed {
  ts: number;
  host: string;
}

interface PartitionState {
  /** newest event time read from it; -Infinity until its first batch */
  frontier: number;
  /** next offset to read, after the last batch; null before the first */
  position: bigint | null;
  /** high watermark when the last batch was fetched */
  hwm: bigint | null;
  /** processing time of its last batch (or of its assignment) */
  lastAt: number;
  /** assigned to this consumer (false: seen in a batch before any assignment said so) */
  assigned: boolean;
  /** a batch came from it */
  heard: boolean;
}

export interface EventMergerOptions {
  /** an assigned partition not heard from for this long stops holding the watermark (default 5 s) */
  idleMs?: number;
  /** a partition with unread data but no batch for this long stops holding it (default 30 s) */
  stallMs?: number;
  /** lines buffered at most; beyond, the oldest go early (default 100,000) */
  maxBuffered?: number;
  /** processing time (tests pass a fake one) */
  now?: () => number;
}

export interface MergerStats {
  buffered: number;
  /** lines released before the watermark reached them because the buffer was full */
  forced: number;
  watermark: number;
  partitions: number;
  holding: number;
}

/**
 * A min-heap of items by (event time, arrival): three parallel arrays, no slot object per item
 * (the times are doubles: in arrays of doubles they are not boxed, as they were in a slot's fields).
 */
class TimeHeap<T> {
  private readonly items_: T[] = [];
  private readonly ts: number[] = [];
  private readonly seq: number[] = [];

  get size(): number {
    return this.items_.length;
  }

  /** event time of the oldest item (the heap must not be empty) */
  topTs(): number {
    return this.ts[0]!;
  }

  /** Heap order: by event time, then arrival. */
  private before(ti: number, si: number, tj: number, sj: number): boolean {
    return ti < tj || (ti === tj && si < sj);
  }

  // Sift with a hole instead of swaps (a destructuring swap allocates an array per step, which
  // was most of the stage's garbage in a replay).
  push(item: T, t: number, q: number): void {
    const a = this.items_;
    const ts = this.ts;
    const seq = this.seq;
    let i = a.length;
    a.push(item);
    ts.push(t);
    seq.push(q);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(t, q, ts[p]!, seq[p]!)) break;
      a[i] = a[p]!;
      ts[i] = ts[p]!;
      seq[i] = seq[p]!;
      i = p;
    }
    a[i] = item;
    ts[i] = t;
    seq[i] = q;
  }

  /** Removes and returns the oldest item (the heap must not be empty). */
  pop(): T {
    const a = this.items_;
    const ts = this.ts;
    const seq = this.seq;
    const top = a[0]!;
    const last = a.pop()!;
    const lastTs = ts.pop()!;
    const lastSeq = seq.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && this.before(ts[r]!, seq[r]!, ts[l]!, seq[l]!) ? r : l;
        if (!this.before(ts[m]!, seq[m]!, lastTs, lastSeq)) break;
        a[i] = a[m]!;
        ts[i] = ts[m]!;
        seq[i] = seq[m]!;
        i = m;
      }
      a[i] = last;
      ts[i] = lastTs;
      seq[i] = lastSeq;
    }
    return top;
  }

  items(): T[] {
    const order = this.items_.map((_, i) => i);
    order.sort((x, y) => this.ts[x]! - this.ts[y]! || this.seq[x]! - this.seq[y]!);
    return order.map((i) => this.items_[i]!);
  }

  /** Keeps the items `keep` accepts (rebuilds the heap). */
  filter(keep: (item: T) => boolean): void {
    const kept: number[] = [];
    for (let i = 0; i < this.items_.length; i++) if (keep(this.items_[i]!)) kept.push(i);
    const items = kept.map((i) => this.items_[i]!);
    const ts = kept.map((i) => this.ts[i]!);
    const seq = kept.map((i) => this.seq[i]!);
    this.items_.length = 0;
    this.ts.length = 0;
    this.seq.length = 0;
    for (let k = 0; k < items.length; k++) this.push(items[k]!, ts[k]!, seq[k]!);
  }
}

export class EventTimeMerger<T extends Timed> {
  private readonly heap = new TimeHeap<T>();
  private readonly parts = new Map<number, PartitionState>();
  private seq = 0;
  private forcedTotal = 0;
  private readonly idleMs: number;
  private readonly stallMs: number;
  readonly maxBuffered: number;
  private readonly now: () => number;

  constructor(opts: EventMergerOptions = {}) {
    this.idleMs = opts.idleMs ?? 5_000;
    this.stallMs = opts.stallMs ?? 30_000;
    this.maxBuffered = opts.maxBuffered ?? 100_000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * This consumer's partitions now (join, rebalance). Those given with `hasData: false` (nothing
   * in them) never hold the watermark; revoked ones stop holding it.
   */
  assign(partitions: { partition: number; hasData: boolean }[]): void {
    const keep = new Set(partitions.map((p) => p.partition));
    for (const p of [...this.parts.keys()]) if (!keep.has(p)) this.parts.delete(p);
    const t = this.now();
    for (const { partition, hasData } of partitions) {
      const st = this.parts.get(partition);
      if (st) {
        st.assigned = true;
        continue;
      }
      this.parts.set(partition, {
        frontier: Number.NEGATIVE_INFINITY,
        // Nothing to read: as if caught up at offset 0.
        position: hasData ? null : 0n,
        hwm: hasData ? null : 0n,
        lastAt: t,
        assigned: true,
        heard: false,
      });
    }
  }

  /** A batch read from `partition`, its items in the partition's order. */
  add(partition: number, items: readonly T[], info: { lastOffset: string; highWatermark?: string }): void {
    let st = this.parts.get(partition);
    if (!st) {
      st = {
        frontier: Number.NEGATIVE_INFINITY,
        position: null,
        hwm: null,
        lastAt: this.now(),
        assigned: false,
        heard: false,
      };
      this.parts.set(partition, st);
    }
    for (const item of items) {
      this.heap.push(item, item.ts, this.seq++);
      if (item.ts > st.frontier) st.frontier = item.ts;
    }
    st.position = BigInt(info.lastOffset) + 1n;
    if (info.highWatermark !== undefined) st.hwm = BigInt(info.highWatermark);
    st.lastAt = this.now();
    st.heard = true;
  }

  /**
   * High watermarks read from the topic between batches: a partition believed read to its end
   * that got new data holds the watermark again (from now: its stall clock restarts), so lines
   * written to several partitions at once are merged even when one partition's batch comes first.
   */
  observeHighWatermarks(highs: readonly { partition: number; high: bigint }[]): void {
    const t = this.now();
    for (const { partition, high } of highs) {
      const st = this.parts.get(partition);
      if (!st || (st.hwm !== null && high <= st.hwm)) continue;
      if (st.position !== null && high <= st.position) continue;
      if (this.caughtUp(st)) st.lastAt = t;
      st.hwm = high;
    }
  }

  /** Puts back items released but not taken (their handler failed), keeping their order. */
  putBack(items: readonly T[]): void {
    for (const item of items) this.heap.push(item, item.ts, -1e15 + this.seq++);
  }

  private caughtUp(st: PartitionState): boolean {
    return st.position !== null && st.hwm !== null && st.position >= st.hwm;
  }

  /** Whether the partition still holds the watermark back. */
  private holding(st: PartitionState, t: number): boolean {
    if (this.caughtUp(st)) return false;
    if (st.position === null) return t - st.lastAt < this.idleMs;
    return t - st.lastAt < this.stallMs;
  }

  /** Everything older than this can be released: no partition holding back has anything older. */
  watermark(): number {
    const t = this.now();
    let w = Number.POSITIVE_INFINITY;
    for (const st of this.parts.values()) if (this.holding(st, t) && st.frontier < w) w = st.frontier;
    return w;
  }

  /**
   * Whether `partition` has read past the watermark: what it delivers waits for the others, so a
   * consumer pauses it while the buffer is large (event-time alignment) instead of buffering more.
   * The partition(s) the watermark waits for are never ahead, so pausing those that are cannot
   * stall the merge.
   */
  isAhead(partition: number): boolean {
    const st = this.parts.get(partition);
    return st !== undefined && st.frontier > this.watermark();
  }

  /** Some partition still has data to read (or may have: assigned, not heard from yet). */
  backlog(): boolean {
    const t = this.now();
    for (const st of this.parts.values()) if (this.holding(st, t)) return true;
    return false;
  }

  /** Every partition with data was read to its end (or went silent) and nothing waits here. */
  drained(): boolean {
    return this.heap.size === 0 && !this.backlog();
  }

  /** Whether the consumer read `partition` up to `high` (or it went idle before a first batch). */
  reached(partition: number, high: bigint): boolean {
    const st = this.parts.get(partition);
    if (!st) return false;
    if (st.position !== null && st.position >= high) return true;
    // Assigned with data, never heard from, gone idle: read by this group before (committed).
    return !st.heard && st.position === null && !this.holding(st, this.now());
  }

  /** Drops waiting items (a batch the bus will hand again). */
  removeWhere(pred: (item: T) => boolean): void {
    this.heap.filter((item) => !pred(item));
  }

  /** Pops what the watermark allows, oldest first, and the oldest beyond maxBuffered. */
  release(): { items: T[]; forced: number } {
    const w = this.watermark();
    const items: T[] = [];
    let forced = 0;
    while (this.heap.size > 0) {
      if (this.heap.topTs() <= w) items.push(this.heap.pop());
      else if (this.heap.size > this.maxBuffered) {
        items.push(this.heap.pop());
        forced++;
      } else break;
    }
    this.forcedTotal += forced;
    return { items, forced };
  }

  /** Pops everything (the end of a bounded input: a final watermark). */
  releaseAll(): T[] {
    const items: T[] = [];
    while (this.heap.size > 0) items.push(this.heap.pop());
    return items;
  }

  /** What waits, oldest first (for snapshots). */
  buffered(): T[] {
    return this.heap.items();
  }

  /** Restores what a snapshot held (partition state is the consumer's and starts afresh). */
  restore(items: readonly T[]): void {
    for (const item of items) this.heap.push(item, item.ts, this.seq++);
  }

  stats(): MergerStats {
    const t = this.now();
    let holding = 0;
    for (const st of this.parts.values()) if (this.holding(st, t)) holding++;
    return {
      buffered: this.heap.size,
      forced: this.forcedTotal,
      watermark: this.watermark(),
      partitions: this.parts.size,
      holding,
    };
  }
}

/**
 * Per-host event-time watermarks (the newest event time admitted for each host) and the lateness
 * rule: a line more than `allowedLatenessMs` older than its host's watermark is late.
 */
export class HostWatermarks {
  private readonly w = new Map<string, number>();

  constructor(readonly allowedLatenessMs: number) {
    if (!(allowedLatenessMs >= 0)) throw new Error('allowed lateness must be >= 0 ms');
  }

  get(host: string): number | undefined {
    return this.w.get(host);
  }

  isLate(host: string, ts: number, pending?: ReadonlyMap<string, number>): boolean {
    const a = this.w.get(host);
    const b = pending?.get(host);
    const wm = a === undefined ? b : b === undefined ? a : Math.max(a, b);
    return wm !== undefined && ts < wm - this.allowedLatenessMs;
  }

  admit(host: string, ts: number): void {
    const a = this.w.get(host);
    if (a === undefined || ts > a) this.w.set(host, ts);
  }

  get size(): number {
    return this.w.size;
  }

  forget(host: string): void {
    this.w.delete(host);
  }

  toJSON(): [string, number][] {
    return [...this.w];
  }

  restore(entries: readonly [string, number][]): void {
    this.w.clear();
    for (const [h, t] of entries) this.w.set(h, t);
  }
}

/**
 * The offsets of the messages whose lines wait (in the reorder buffer or on their way to the
 * learners), per partition: the consumer commits no further than the first of them, so after a
 * crash or a rebalance they are read again instead of lost (at least once; the dedupe drops what
 * the learners had already taken).
 */
export class OutstandingOffsets {
  private readonly parts = new Map<number, { queue: number[]; head: number; counts: Map<number, number> }>();

  add(partition: number, offset: number): void {
    let p = this.parts.get(partition);
    if (!p) {
      p = { queue: [], head: 0, counts: new Map() };
      this.parts.set(partition, p);
    }
    const c = p.counts.get(offset);
    if (c === undefined) {
      p.counts.set(offset, 1);
      // messages arrive in offset order per partition: the queue stays sorted
      p.queue.push(offset);
    } else p.counts.set(offset, c + 1);
  }

  done(partition: number, offset: number): void {
    const p = this.parts.get(partition);
    const c = p?.counts.get(offset);
    if (!p || c === undefined) return;
    if (c > 1) p.counts.set(offset, c - 1);
    else p.counts.delete(offset);
  }

  /** The first offset of `partition` still outstanding, if any. */
  first(partition: number): number | undefined {
    const p = this.parts.get(partition);
    if (!p) return undefined;
    while (p.head < p.queue.length && !p.counts.has(p.queue[p.head]!)) p.head++;
    if (p.head > 1024 && p.head * 2 > p.queue.length) {
      p.queue = p.queue.slice(p.head);
      p.head = 0;
    }
    return p.head < p.queue.length ? p.queue[p.head] : undefined;
  }

  /** Forgets a partition (revoked: whoever reads it next starts at its committed offset). */
  dropPartition(partition: number): void {
    this.parts.delete(partition);
  }

  /** The offset to commit: the first outstanding one, else `next`. */
  commitOffset(partition: number, next: string): string {
    const f = this.first(partition);
    return f !== undefined && f < Number(next) ? String(f) : next;
  }
}
