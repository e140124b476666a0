// A host's event-time state out and in (ingest/order-state.ts, ingest/dedupe.ts; docs/design.md
// §7.6), no broker: the dedupe identities go in blocks of ID_BLOCK, a commit rewrites only the
// blocks that gained identities, and what the committed records restore is exactly the host's
// identities at that commit, in admission order; a part written before the blocks (version 1,
// every identity in `seen`) is still read.
import { describe, expect, it } from 'vitest';
import { ID_BLOCK, type IdBlock, IngestOrder, lineId } from '../../ingest/index.ts';

const LATENESS = 60_000;

/** admits a line as the stage does: watermark first, then its identity */
function admit(o: IngestOrder, host: string, ts: number, text: string): void {
  o.hosts.admit(host, ts);
  o.dedupe.remember(host, ts, lineId(host, ts, text), (h) => o.hosts.get(h));
}

/** a host's exact identities, [ts, key] in admission order (what the snapshot would save) */
function identities(o: IngestOrder, host: string): [number, number][] {
  return o.dedupe
    .toJSON()
    .exact.filter(([h]) => h === host)
    .map(([, t, k]) => [t, k]);
}

/** The changelog of one host's `order` records, as the exactly-once commits keep it: only texts
 * that differ from the committed ones are written, parts gone are tombstoned. */
class Committed {
  readonly texts = new Map<string, string>();
  written = 0;

  commit(o: IngestOrder, host: string): void {
    const e = o.exportHosts(new Set([host])).get(host);
    const now = new Map<string, string>();
    if (e) {
      now.set('order', JSON.stringify(e.state));
      for (const [n, t] of e.blocks) now.set(`order.${n}`, t);
    }
    for (const [part, t] of now)
      if (this.texts.get(part) !== t) {
        this.texts.set(part, t);
        if (part !== 'order') this.written++;
      }
    for (const part of [...this.texts.keys()]) if (!now.has(part)) this.texts.delete(part);
  }

  restoreInto(o: IngestOrder, host: string): void {
    const blocks = new Map<number, IdBlock>();
    for (const [part, t] of this.texts)
      if (part.startsWith('order.')) blocks.set(Number(part.slice(6)), JSON.parse(t) as IdBlock);
    o.importHost(host, JSON.parse(this.texts.get('order')!), blocks);
  }
}

describe('a host’s event-time state, out and in', () => {
  it('restores exactly the identities committed, writing only the blocks that gained some', () => {
    const o = new IngestOrder({ allowedLatenessMs: LATENESS });
    const log = new Committed();
    let ts = 0;
    let lines = 0;
    for (let interval = 0; interval < 40; interval++) {
      // 100 lines a host per interval, 1 s of event time apart, every 7th one late by 30 s
      for (let i = 0; i < 100; i++) {
        ts += 1000;
        for (const h of ['a', 'b']) admit(o, h, i % 7 === 0 ? ts - 30_000 : ts, `${h} line ${lines}`);
        lines++;
      }
      log.commit(o, 'a');
      const back = new IngestOrder({ allowedLatenessMs: LATENESS });
      log.restoreInto(back, 'a');
      expect(identities(back, 'a')).toEqual(identities(o, 'a'));
      expect(back.hosts.get('a')).toBe(o.hosts.get('a'));
      expect(identities(back, 'b')).toEqual([]);
    }
    // the window (60 s of event time: ~60 identities) spans one or two blocks; 40 intervals of
    // 100 new identities a host need ~16 blocks written once each plus the partial one each time,
    // where rewriting the whole window each commit would write 40 x (1-2)
    const window = identities(o, 'a').length;
    expect(window).toBeGreaterThan(50);
    expect(log.written).toBeLessThanOrEqual(40 + Math.ceil((40 * 100) / ID_BLOCK) + 1);
  });

  it('a block whose identities only expire is not written again, and the reader skips the expired', () => {
    const o = new IngestOrder({ allowedLatenessMs: 1_000_000 });
    const log = new Committed();
    for (let i = 0; i < ID_BLOCK * 3; i++) admit(o, 'a', i * 1000, `l${i}`);
    log.commit(o, 'a');
    const blocks = [...log.texts.keys()].filter((p) => p !== 'order').sort();
    expect(blocks).toEqual(['order.0', 'order.1', 'order.2']);
    const before = log.written;
    const texts = new Map(log.texts);
    // the watermark moves on by a block and a half: the oldest identities leave the horizon
    admit(o, 'a', ID_BLOCK * 1.5 * 1000 + 1_000_000, 'far ahead');
    log.commit(o, 'a');
    // block 0 gone (tombstoned), block 1 half expired but unchanged, block 2 unchanged, block 3 new
    expect(log.texts.has('order.0')).toBe(false);
    expect(log.texts.get('order.1')).toBe(texts.get('order.1'));
    expect(log.texts.get('order.2')).toBe(texts.get('order.2'));
    expect(log.written - before).toBe(1);
    const back = new IngestOrder({ allowedLatenessMs: 1_000_000 });
    log.restoreInto(back, 'a');
    expect(identities(back, 'a')).toEqual(identities(o, 'a'));
    expect(identities(back, 'a').length).toBeLessThan(ID_BLOCK * 2);
  });

  it('an instance that restored a host goes on from the same blocks (one more write, the first)', () => {
    const o = new IngestOrder({ allowedLatenessMs: LATENESS });
    const log = new Committed();
    for (let i = 0; i < 1000; i++) admit(o, 'a', i * 100, `l${i}`);
    log.commit(o, 'a');
    const next = new IngestOrder({ allowedLatenessMs: LATENESS });
    log.restoreInto(next, 'a');
    const before = log.written;
    log.commit(next, 'a');
    expect(log.written - before).toBeLessThanOrEqual(1);
    for (let i = 1000; i < 1100; i++) {
      admit(o, 'a', i * 100, `l${i}`);
      admit(next, 'a', i * 100, `l${i}`);
    }
    log.commit(next, 'a');
    expect(identities(next, 'a')).toEqual(identities(o, 'a'));
    const third = new IngestOrder({ allowedLatenessMs: LATENESS });
    log.restoreInto(third, 'a');
    expect(identities(third, 'a')).toEqual(identities(o, 'a'));
    // a line the first instance admitted is a duplicate on the third
    expect(third.dedupe.seen(lineId('a', 109_900, 'l1099'), 109_900, third.hosts.get('a'))).toBe(true);
  });

  it('reads a part written before the blocks (version 1: every identity in `seen`)', () => {
    const pairs = new Float64Array([5000, lineId('a', 5000, 'x').key, 6000, lineId('a', 6000, 'y').key]);
    const o = new IngestOrder({ allowedLatenessMs: LATENESS });
    o.importHost('a', { watermark: 6000, seen: Buffer.from(pairs.buffer).toString('base64') });
    expect(o.hosts.get('a')).toBe(6000);
    expect(identities(o, 'a')).toEqual([
      [5000, pairs[1]],
      [6000, pairs[3]],
    ]);
    expect(o.dedupe.seen(lineId('a', 5000, 'x'), 5000, 6000)).toBe(true);
    // and writes it on as blocks
    const e = o.exportHosts(new Set(['a'])).get('a')!;
    expect(e.state).toMatchObject({ v: 2, from: 0, to: 2, seen: '' });
    expect(JSON.parse(e.blocks.get(0)!)).toEqual({
      at: 0,
      seen: Buffer.from(pairs.buffer).toString('base64'),
    });
  });

  it('a block missing from the changelog loses only its identities', () => {
    const o = new IngestOrder({ allowedLatenessMs: 1_000_000 });
    const log = new Committed();
    for (let i = 0; i < ID_BLOCK * 2; i++) admit(o, 'a', i * 1000, `l${i}`);
    log.commit(o, 'a');
    log.texts.delete('order.0');
    const back = new IngestOrder({ allowedLatenessMs: 1_000_000 });
    log.restoreInto(back, 'a');
    expect(identities(back, 'a')).toEqual(identities(o, 'a').slice(ID_BLOCK));
  });
});
