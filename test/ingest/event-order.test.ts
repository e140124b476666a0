// Event-time order across partitions: a host's lines spread over several partitions in chunks far
// apart in event time come out in event-time order (the watermark is the minimum over the
// partitions that still have data); caught-up and idle partitions do not hold it back; the buffer
// is bounded (early releases counted); lines too far behind their host's watermark are late.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineDedupe, lineId } from '../../ingest/dedupe.ts';
import { EventTimeMerger, HostWatermarks, OutstandingOffsets } from '../../ingest/event-order.ts';

interface Item {
  ts: number;
  host: string;
  id: number;
}

class Wall {
  t = 1_000_000;
  now = () => this.t;
}

describe('event-time merger', () => {
  it('property: partitions each in order, delivered in any interleaving of chunks, come out sorted', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 300 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 50 }),
        fc.integer({ min: 0, max: 1000 }),
        (assign, chunkSizes, seed) => {
          // a time-ordered stream of one host, each line sent to a partition (an unkeyed producer)
          const parts: Item[][] = [[], [], [], []];
          for (const [i, p] of assign.entries()) parts[p]!.push({ ts: i * 1000, host: 'h', id: i });
          const merger = new EventTimeMerger<Item>({ now: new Wall().now });
          merger.assign(parts.map((l, partition) => ({ partition, hasData: l.length > 0 })));
          const pos = [0, 0, 0, 0];
          const out: Item[] = [];
          let c = 0;
          let s = seed;
          while (pos.some((x, p) => x < parts[p]!.length)) {
            s = (Math.imul(s, 1103515245) + 12345) >>> 0;
            const p = (s >>> 16) % 4;
            if (pos[p]! >= parts[p]!.length) continue;
            const n = chunkSizes[c++ % chunkSizes.length]!;
            const chunk = parts[p]!.slice(pos[p], pos[p]! + n);
            pos[p]! += chunk.length;
            merger.add(p, chunk, {
              lastOffset: String(pos[p]! - 1),
              highWatermark: String(parts[p]!.length),
            });
            out.push(...merger.release().items);
          }
          out.push(...merger.release().items);
          return (
            out.length === assign.length &&
            out.every((x, i) => x.id === i) &&
            merger.stats().forced === 0 &&
            merger.drained()
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('an assigned partition not heard from holds the watermark until it is idle; caught-up ones never', () => {
    const wall = new Wall();
    const m = new EventTimeMerger<Item>({ idleMs: 5_000, now: wall.now });
    m.assign([
      { partition: 0, hasData: true },
      { partition: 1, hasData: true },
      { partition: 2, hasData: false },
    ]);
    m.add(0, [{ ts: 10, host: 'h', id: 1 }], { lastOffset: '0', highWatermark: '5' });
    expect(m.release().items).toEqual([]);
    expect(m.backlog()).toBe(true);
    wall.t += 5_001; // partition 1 never spoke: read by this group before, or not ours
    // partition 0 still has unread data, but none older than what it gave: up to ts 10 goes
    expect(m.release().items.map((x) => x.id)).toEqual([1]);
    m.add(0, [{ ts: 20, host: 'h', id: 2 }], { lastOffset: '4', highWatermark: '5' });
    expect(m.release().items.map((x) => x.id)).toEqual([2]);
    expect(m.backlog()).toBe(false);
    expect(m.reached(0, 5n)).toBe(true);
    expect(m.reached(1, 3n)).toBe(true);
  });

  it('a stalled partition (data but no batch for stallMs) stops holding; the buffer bound forces early releases', () => {
    const wall = new Wall();
    const m = new EventTimeMerger<Item>({ stallMs: 30_000, maxBuffered: 3, now: wall.now });
    m.assign([
      { partition: 0, hasData: true },
      { partition: 1, hasData: true },
    ]);
    m.add(1, [{ ts: 5, host: 'h', id: 0 }], { lastOffset: '0', highWatermark: '100' });
    m.add(
      0,
      [1, 2, 3, 4, 5].map((i) => ({ ts: 10 * i, host: 'h', id: i })),
      { lastOffset: '4', highWatermark: '100' },
    );
    const r = m.release();
    // watermark = min(partition 1 at 5, partition 0 at 50): item 0 goes; the rest wait, over the bound by 2
    expect(r.items.map((x) => x.id)).toEqual([0, 1, 2]);
    expect(r.forced).toBe(2);
    wall.t += 30_001;
    expect(m.release().items.map((x) => x.id)).toEqual([3, 4, 5]);
    expect(m.stats().forced).toBe(2);
  });

  it('restores what waited (a snapshot) and puts back what a failed handler did not take, in order', () => {
    const m = new EventTimeMerger<Item>({ now: new Wall().now });
    m.restore([
      { ts: 3, host: 'h', id: 3 },
      { ts: 1, host: 'h', id: 1 },
    ]);
    m.putBack([{ ts: 2, host: 'h', id: 2 }]);
    expect(m.buffered().map((x) => x.id)).toEqual([1, 2, 3]);
    m.removeWhere((x) => x.id === 2);
    expect(m.releaseAll().map((x) => x.id)).toEqual([1, 3]);
  });
});

describe('outstanding offsets', () => {
  it('the commit never passes a message whose lines still wait (several lines per message too)', () => {
    const o = new OutstandingOffsets();
    for (const off of [10, 11, 11, 12]) o.add(0, off);
    o.add(1, 5);
    expect(o.commitOffset(0, '13')).toBe('10');
    o.done(0, 10);
    expect(o.commitOffset(0, '13')).toBe('11');
    o.done(0, 12); // released out of order: 11 still waits
    o.done(0, 11);
    expect(o.commitOffset(0, '13')).toBe('11');
    o.done(0, 11);
    expect(o.commitOffset(0, '13')).toBe('13');
    expect(o.commitOffset(1, '6')).toBe('5');
    expect(o.commitOffset(2, '9')).toBe('9');
  });
});

describe('host watermarks and lateness', () => {
  it('a line is late only beyond the allowed lateness behind its own host', () => {
    const w = new HostWatermarks(60_000);
    w.admit('a', 1_000_000);
    expect(w.isLate('a', 1_000_000 - 60_000)).toBe(false);
    expect(w.isLate('a', 1_000_000 - 60_001)).toBe(true);
    // another host's clock does not matter
    expect(w.isLate('b', 1)).toBe(false);
    // lines of the same release count too
    expect(w.isLate('b', 1, new Map([['b', 100_000]]))).toBe(true);
  });
});

describe('line dedupe', () => {
  const wmOf = (w: number) => () => w;

  it('knows the lines it took: exactly within the horizon, by the Bloom filter beyond it', () => {
    const d = new LineDedupe({ horizonMs: 60_000, maxExact: 1000, bloomCapacity: 10_000 });
    const lines = Array.from({ length: 500 }, (_, i) => ({ ts: i * 1000, line: `line ${i}` }));
    for (const l of lines) d.remember('h', l.ts, lineId('h', l.ts, l.line), wmOf(l.ts));
    const wm = 499_000;
    // recent: exact
    expect(d.seen(lineId('h', 498_000, 'line 498'), 498_000, wm)).toBe(true);
    expect(d.seen(lineId('h', 498_000, 'line 498 '), 498_000, wm)).toBe(false);
    // old (out of the exact tier): the Bloom filter remembers
    expect(d.size).toBeLessThanOrEqual(62);
    expect(d.seen(lineId('h', 3_000, 'line 3'), 3_000, wm)).toBe(true);
    // another host, the same text and time: another line
    expect(d.seen(lineId('g', 498_000, 'line 498'), 498_000, wm)).toBe(false);
    // what it cannot tell apart: the same host, time and text are one line
    expect(lineId('h', 5, 'x').key).toBe(lineId('h', 5, 'x').key);
  });

  it('the exact tier is bounded: the cap forgets the oldest and counts those still in the horizon', () => {
    const d = new LineDedupe({ horizonMs: 3_600_000, maxExact: 100, bloomCapacity: 10_000 });
    for (let i = 0; i < 250; i++) d.remember('h', i, lineId('h', i, `l${i}`), wmOf(250));
    expect(d.size).toBe(100);
    expect(d.evictedEarly).toBe(150);
    const back = new LineDedupe({ horizonMs: 3_600_000, maxExact: 100, bloomCapacity: 10_000 });
    back.restore(JSON.parse(JSON.stringify(d.toJSON())), d.bloomBits());
    expect(back.seen(lineId('h', 249, 'l249'), 249, 250)).toBe(true);
    expect(back.size).toBe(100);
  });
});
