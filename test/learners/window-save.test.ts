// Every save of a SlidingCounter is what it holds at that moment (a bucket changed by a late event,
// a bucket evicted), checked against a plain reference model of the same adds saved at random
// moments, and what loads is the same counter.
import { describe, expect, it } from 'vitest';
import { Rng, SlidingCounter } from '../../learners/window.ts';

describe('SlidingCounter saves', () => {
  it('every save is the current state, whatever was saved before', () => {
    const rng = new Rng(5);
    const c = new SlidingCounter(1000, 5);
    const ref = new Map<number, Map<string, number>>();
    let head: number | null = null;
    let late = 0;
    let ts = 0;
    for (let i = 0; i < 5000; i++) {
      ts += rng.int(400);
      // a fifth of the events arrive late, some older than the window
      const t = rng.next() < 0.2 ? ts - rng.int(7000) : ts;
      const key = `k${rng.int(6)}`;
      const ok = c.add(t, key);
      const b = Math.floor(t / 1000);
      if (head === null || b > head) {
        head = b;
        for (const idx of [...ref.keys()]) if (idx < b - 4) ref.delete(idx);
      }
      if (b <= head - 5) {
        late++;
        expect(ok).toBe(false);
      } else {
        let m = ref.get(b);
        if (!m) {
          m = new Map();
          ref.set(b, m);
        }
        m.set(key, (m.get(key) ?? 0) + 1);
      }
      if (rng.next() < 0.3) {
        const j = JSON.parse(JSON.stringify(c.toJSON()));
        expect(j).toEqual({
          bucketMs: 1000,
          buckets: 5,
          head,
          late,
          data: [...ref].map(([idx, m]) => [idx, [...m]]),
        });
        // what loads is the same counter: its window's counts and its next save
        const back = SlidingCounter.fromJSON(j);
        expect([...back.counts].sort()).toEqual([...c.counts].sort());
        expect(back.total).toBe(c.total);
        expect(back.top()).toEqual(c.top());
      }
    }
  });
});
