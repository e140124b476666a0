// The one seeded generator: mulberry32 exactly (saved learner state and seeded worlds depend on
// its sequence), checked against the published reference implementation written as its author did.
import { describe, expect, it } from 'vitest';
import { gaussian, Rng, seededRandom } from '../../runtime/rng.ts';

/** mulberry32 as published (signed 32-bit state, `a += …`), an implementation independent of ours. */
function reference(a: number): () => number {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('Rng (mulberry32)', () => {
  it('draws the reference sequence, as an object and as a function', () => {
    for (const seed of [0, 1, 42, 64000, 0xffffffff]) {
      const ref = reference(seed);
      const rng = new Rng(seed);
      const fn = seededRandom(seed);
      for (let i = 0; i < 1000; i++) {
        const want = ref();
        expect(rng.next()).toBe(want);
        expect(fn()).toBe(want);
      }
    }
  });

  it('resumes from its saved state where it stopped', () => {
    const a = new Rng(7);
    for (let i = 0; i < 10; i++) a.next();
    const b = new Rng(JSON.parse(JSON.stringify(a.state)) as number);
    expect([b.next(), b.int(100), b.normal()]).toEqual([a.next(), a.int(100), a.normal()]);
  });

  it('normal and gaussian are standard normal', () => {
    const rng = new Rng(3);
    const fn = seededRandom(3);
    for (const draw of [() => rng.normal(), () => gaussian(fn)]) {
      const xs = Array.from({ length: 20_000 }, draw);
      const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
      expect(Math.abs(mean)).toBeLessThan(0.05);
      expect(Math.abs(sd - 1)).toBeLessThan(0.05);
    }
  });
});
