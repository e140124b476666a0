// The one seeded generator of the project: mulberry32, 32 bits of state, uniform in [0, 1).
// Same seed, same sequence on every machine: learners save `state` with their model (so a
// restored learner draws on where it stopped), device models build their worlds from a seed, the
// demo stream writes the same lines. Not for security (the PRG balancer uses the OS CSPRNG).

export class Rng {
  constructor(public state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** A standard normal draw (Box-Muller); a zero first draw counts as 1e-12. */
  normal(): number {
    const u = Math.max(1e-12, this.next());
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** A Poisson draw (Knuth's method: one uniform per event, fine for the small means of generated worlds). */
  poisson(mean: number): number {
    const l = Math.exp(-mean);
    let k = 0;
    let p = 1;
    do {
      k++;
      p *= this.next();
    } while (p > l);
    return k - 1;
  }
}

/** The generator as a function, for code that takes any `() => number`. */
export function seededRandom(seed: number): () => number {
  const rng = new Rng(seed >>> 0);
  return () => rng.next();
}

export function uniform(rand: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * rand();
}

/** A standard normal draw (Box-Muller) from any generator; a zero first draw is drawn again. */
export function gaussian(rand: () => number): number {
  let u = 0;
  while (u === 0) u = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}
