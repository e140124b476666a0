// Latency per hop of the pipeline, recorded where the data passes (the consumer stage, the learner
// host) and read by `npm run bench -- e2e` and the stages' stats. A record is a few arithmetic
// operations on a fixed array (no allocation, no Prometheus label lookup), so the hot paths can
// record every line: a Prometheus histogram's observe() per line cost more than the parse.
// Buckets are log-spaced, 16 per doubling (each ~4.4% wide), from 1 µs to ~12 days: percentiles
// read back within 4.4%; count, sum, min and max are exact.

const PER_DOUBLING = 16;
const MIN_MS = 0.001;
const BUCKETS = PER_DOUBLING * 40;

export interface LatencySummary {
  n: number;
  /** ms */
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  min: number;
  max: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  n = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  /** One observation of `ms` milliseconds (negative ones, a clock step, count as 0). */
  record(ms: number, times = 1): void {
    const v = ms > 0 ? ms : 0;
    const i = v <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(v / MIN_MS) * PER_DOUBLING));
    this.counts[i]! += times;
    this.n += times;
    this.sum += v * times;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** The value below which `p` percent of the observations fall (a bucket's geometric middle). */
  percentile(p: number): number {
    if (this.n === 0) return Number.NaN;
    const want = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= want) {
        const mid = MIN_MS * 2 ** ((i + 0.5) / PER_DOUBLING);
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  summary(): LatencySummary {
    const r = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(x < 10 ? 3 : 1)) : Number.NaN);
    return {
      n: this.n,
      mean: r(this.n ? this.sum / this.n : Number.NaN),
      p50: r(this.percentile(50)),
      p90: r(this.percentile(90)),
      p99: r(this.percentile(99)),
      p999: r(this.percentile(99.9)),
      min: r(this.n ? this.min : Number.NaN),
      max: r(this.n ? this.max : Number.NaN),
    };
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.sum = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = Number.NEGATIVE_INFINITY;
  }
}

/**
 * The hops, one histogram each, process-wide (like the Prometheus registry): a stage records into
 * `hop(name)`; names are fixed strings in the code, so the set stays small.
 */
const hops = new Map<string, LatencyHistogram>();

export function hop(name: string): LatencyHistogram {
  let h = hops.get(name);
  if (!h) {
    h = new LatencyHistogram();
    hops.set(name, h);
  }
  return h;
}

/** Every hop recorded so far, summarised. */
export function hopLatencies(): Record<string, LatencySummary> {
  return Object.fromEntries([...hops].map(([k, h]) => [k, h.summary()]));
}

/** Starts every hop afresh (a benchmark's measured phase). */
export function resetHopLatencies(): void {
  for (const h of hops.values()) h.reset();
}
