// The dedupe's line identity and its exact tier's key set (ingest/dedupe.ts, ingest/key-set.ts):
// saved state depends on lineId's exact values, and the key set must answer as a Set<number> does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keyH1, keyH2, lineId, lineKey } from '../../ingest/dedupe.ts';
import { KeySet } from '../../ingest/key-set.ts';
import { seededRandom } from '../../runtime/rng.ts';

describe('lineId', () => {
  it("lineKey gives lineId's numbers without the object", () => {
    for (const [h, t, l] of [
      ['edge-1', 1732960000123, 'a line'],
      ['h', -5, 'x'],
      ['', 1.5, ''],
    ] as const) {
      const id = lineId(h, t, l);
      expect(lineKey(h, t, l)).toBe(id.key);
      expect([keyH1, keyH2]).toEqual([id.h1, id.h2]);
    }
  });

  it('gives the identities saved state was written with (values computed before the hash loop was rewritten)', () => {
    const ufw = 'Nov 30 08:00:00 edge-1 kernel: [UFW BLOCK] IN=eth0 OUT= SRC=1.2.3.4';
    expect(lineId('edge-1', 1732960000123, ufw)).toEqual({
      key: 6000045572657069,
      h1: 2861044679,
      h2: -193106115,
    });
    expect(lineId('', 0, 'x')).toEqual({ key: 8281722292343093, h1: 3949032922, h2: -393630309 });
    // a negative, a fractional and the largest safe time go through String(ts)
    expect(lineId('h', -5, 'négatif ✓')).toEqual({ key: 4120212464756573, h1: 1964670402, h2: -482677853 });
    expect(lineId('h', 1.5, '')).toEqual({ key: 371826353252469, h1: 177300621, h2: -1589401419 });
    expect(lineId('h', Number.MAX_SAFE_INTEGER, 'big')).toEqual({
      key: 2890153882704945,
      h1: 1378132764,
      h2: 853641957,
    });
  });
});

describe('KeySet', () => {
  it('property: after any adds and deletes it holds what a Set<number> holds', () => {
    // few distinct keys, so the table stays small: adds collide, runs wrap past its end and
    // deletes shift them back
    const key = fc.oneof(
      fc.integer({ min: 0, max: 8 }).map((k) => k * 2 ** 21),
      fc.integer({ min: 0, max: 8 }),
      fc.constantFrom(Number.NaN, 0, -0, 2 ** 53 - 1, 0.5),
    );
    const op = fc.tuple(fc.constantFrom('add', 'delete', 'has'), key);
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const mine = new KeySet();
        const ref = new Set<number>();
        for (const [o, k] of ops) {
          if (o === 'add') expect(mine.add(k)).toBe(!ref.has(k));
          if (o === 'add') ref.add(k);
          else if (o === 'delete') expect(mine.delete(k)).toBe(ref.delete(k));
          else expect(mine.has(k)).toBe(ref.has(k));
          expect(mine.size).toBe(ref.size);
          for (const r of ref) expect(mine.has(r)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('finds every key after deletes that shift a run wrapping past the end of the table', () => {
    // 12 keys in a table of 16 to 32 slots: runs wrap and deletes shift them back over the end
    const rnd = seededRandom(18);
    for (let run = 0; run < 500; run++) {
      const mine = new KeySet();
      const ref = new Set<number>();
      for (let o = 0; o < 200; o++) {
        const k = Math.floor(rnd() * 12);
        if (rnd() < 0.55) {
          mine.add(k);
          ref.add(k);
        } else expect(mine.delete(k)).toBe(ref.delete(k));
        for (const r of ref) expect(mine.has(r)).toBe(true);
        expect(mine.size).toBe(ref.size);
      }
    }
  });

  it('keeps every key through growth and many deletes of line-like keys', () => {
    const s = new KeySet();
    const keys: number[] = [];
    for (let i = 0; i < 50_000; i++) keys.push(lineId('h', 1_700_000_000_000 + i, `line ${i}`).key);
    for (const k of keys) s.add(k);
    expect(s.size).toBe(50_000);
    for (let i = 0; i < keys.length; i += 2) expect(s.delete(keys[i]!)).toBe(true);
    expect(s.size).toBe(25_000);
    for (let i = 0; i < keys.length; i++) expect(s.has(keys[i]!)).toBe(i % 2 === 1);
    s.clear();
    expect(s.size).toBe(0);
    expect(s.has(keys[1]!)).toBe(false);
    // cleared, it keeps its capacity and works as new
    expect(s.add(keys[1]!)).toBe(true);
    expect(s.add(keys[1]!)).toBe(false);
    expect(s.size).toBe(1);
  });
});
