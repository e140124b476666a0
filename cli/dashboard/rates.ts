// The live rates of the pipeline's stages, read from this process's Prometheus registry (the same
// counters /metrics serves), sampled on processing time: each sample's per-second rate is the
// counters' increase over the wall-clock time since the previous sample. A counter this process
// does not have (under --split each process holds only its own stage's) is absent, not zero.
import type { Registry } from 'prom-client';

export interface RateDef {
  /** what the dashboard calls it */
  name: string;
  /** counters summed over all their labels… */
  metrics?: readonly string[];
  /** …or every counter whose name matches (e.g. the late counters other stages add) */
  match?: RegExp;
}

/** The stages' rates, in the order the data flows. */
export const STAGE_RATES: readonly RateDef[] = [
  { name: 'logs published', metrics: ['virgo_publish_lines_total'] },
  { name: 'lines in', metrics: ['virgo_ingest_lines_total'] },
  { name: 'dead letters', metrics: ['virgo_ingest_dead_letters_total'] },
  // "late" as a word of the name: virgo_ingest_late_total, virgo_learner_late_events_total (not "template")
  { name: 'late', match: /^virgo_(?:[a-z0-9]+_)*late(?:_[a-z0-9]+)*_total$/ },
  { name: 'variables out', metrics: ['virgo_learner_published_total'] },
  { name: 'ring pairs', metrics: ['virgo_consumer_pairs_total'] },
  { name: 'queue appends', metrics: ['virgo_kingcobra_log_appends_total'] },
];

export interface Rate {
  name: string;
  /** the counters' sum now */
  total: number;
  /** per second over the last sample interval */
  perSec: number;
  /** per-second rates of the last samples, oldest first */
  history: number[];
}

interface Track {
  def: RateDef;
  last?: number;
  history: number[];
}

export class RateSampler {
  private readonly tracks: Track[];
  private lastAt: number | undefined;
  private current: Rate[] = [];

  constructor(
    private readonly registry: Registry,
    defs: readonly RateDef[] = STAGE_RATES,
    private readonly keep = 60,
  ) {
    this.tracks = defs.map((def) => ({ def, history: [] }));
  }

  /** Reads the counters; `now` is processing time (ms). */
  async sample(now: number): Promise<Rate[]> {
    const names = this.registry.getMetricsAsArray().map((m) => m.name);
    const dt = this.lastAt === undefined ? 0 : (now - this.lastAt) / 1000;
    this.lastAt = now;
    const out: Rate[] = [];
    for (const t of this.tracks) {
      const { metrics, match } = t.def;
      const chosen = names.filter((n) => (metrics ? metrics.includes(n) : match ? match.test(n) : false));
      if (chosen.length === 0) continue;
      let total = 0;
      for (const n of chosen) {
        const got = await this.registry.getSingleMetric(n)?.get();
        if (!got || String(got.type) !== 'counter') continue;
        for (const v of got.values) total += v.value;
      }
      const perSec = t.last === undefined || dt <= 0 ? 0 : Math.max(0, total - t.last) / dt;
      t.last = total;
      t.history.push(perSec);
      if (t.history.length > this.keep) t.history.shift();
      out.push({ name: t.def.name, total, perSec, history: [...t.history] });
    }
    this.current = out;
    return out;
  }

  /** The rates of the last sample. */
  latest(): Rate[] {
    return this.current;
  }
}
