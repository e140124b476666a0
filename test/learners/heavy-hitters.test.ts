// Whole-history counts in bounded memory: exact below the capacity, Space-Saving above it with
// its guarantees (every key above N/k held, overestimates bounded by the error), checked against
// brute-force counts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeavyHitters } from '../../learners/heavy-hitters.ts';

function brute(keys: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

describe('heavy hitters', () => {
  it('property: exact below the capacity, the top key ties to the smallest', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 400 }), (xs) => {
        const keys = xs.map((x) => `k${x}`);
        const h = new HeavyHitters(64);
        for (const k of keys) h.add(k);
        const b = brute(keys);
        const best = [...b].sort((a, c) => c[1] - a[1] || (a[0] < c[0] ? -1 : 1))[0]!;
        const t = h.top()!;
        return (
          h.exact && t.key === best[0] && t.count === best[1] && t.error === 0 && h.total === keys.length
        );
      }),
      { numRuns: 200 },
    );
  });

  it('property: past the capacity, Space-Saving keeps its bounds', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 50, maxLength: 2000 }),
        fc.integer({ min: 0, max: 9 }),
        (xs, heavy) => {
          // one heavy key among many light ones
          const keys = xs.flatMap((x, i) => (i % 3 === 0 ? [`h${heavy}`, `k${x}`] : [`k${x}`]));
          const k = 16;
          const h = new HeavyHitters(k);
          for (const key of keys) h.add(key);
          const b = brute(keys);
          const n = keys.length;
          for (const [key, c] of b) {
            const held = h.count(key);
            if (c > n / k && held === undefined) return false;
            if (held !== undefined && held < c) return false;
          }
          const t = h.top()!;
          if (t.count - t.error > b.get(t.key)!) return false;
          if (t.error > n / k) return false;
          if (h.topIsCertain()) {
            const best = Math.max(...b.values());
            if (b.get(t.key) !== best) return false;
          }
          return h.size <= k;
        },
      ),
      { numRuns: 150 },
    );
  });

  it('survives a flood of distinct keys in bounded memory and still finds the heavy one', () => {
    const h = new HeavyHitters(1000);
    for (let i = 0; i < 200_000; i++) {
      h.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      if (i % 4 === 0) h.add('203.0.113.7');
    }
    expect(h.size).toBe(1000);
    expect(h.exact).toBe(false);
    expect(h.top()!.key).toBe('203.0.113.7');
    expect(h.topIsCertain()).toBe(true);
    const back = HeavyHitters.fromJSON(JSON.parse(JSON.stringify(h.toJSON())));
    expect(back.top()).toEqual(h.top());
    back.add('203.0.113.7');
    expect(back.count('203.0.113.7')).toBe(h.count('203.0.113.7')! + 1);
  });
});
