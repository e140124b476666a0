// kernel.anomaly: is this host's last window of kernel lines evidence of an incident?
//
// Each host's events are cut into event-time windows. A closed window is judged, then learnt
// (prequential), never with a label. Every piece of evidence is in nats (−ln p), so they compare:
//  - per template (anomaly-counts.ts): a severity prior (severity.ts: an err-or-worse line is an
//    alarm by itself, threshold + 1 nats, a warning half that) that halves for every
//    `routineAfter` windows the host logged the template before the last hour (routine errors
//    fall silent; errors recurring within the hour do not), plus how surprising the template's
//    occurrence is (new ones by how rarely new templates appear; known ones by how far the last
//    hour departs from the host's usual share) and its number of lines (bursts);
//  - the window's volume and the host's recent activity against their usual;
//  - the mix (anomaly-mix.ts, tfjs autoencoder): the window's composition in the templates the
//    host already knows, as a normal tail of the reconstruction error.
// Surprises are corrected for the number of pieces looked at (− ln m, Bonferroni); priors are not.
// The score is the strongest piece; the window is anomalous when it reaches `threshold` (6 nats:
// p ≈ 0.0025 after the correction for a line of no special level). Explanations name the
// templates behind the score with their count, expected count and what each term added.
import { join } from 'node:path';
import type { KernelEvent } from '../schemas/index.ts';
import {
  COUNT_DEFAULTS,
  CountModel,
  type CountModelJson,
  type CountSurprise,
  type TemplateSurprise,
  type WindowCounts,
  type WindowSurprise,
  type WindowTemplate,
} from './anomaly-counts.ts';
import { MIX_DEFAULTS, type MixJson, MixModel, type MixOptions, type MixScore } from './anomaly-mix.ts';
import { severityName, severityOf, severityWeight } from './severity.ts';
import { readJson, writeJsonAtomic } from './snapshot.ts';
import { loadModel, requireTf, saveModel } from './tf-util.ts';
import type { Learner, LearnerContext, Proposal, Tf, VariableDecl } from './types.ts';
import { Rng } from './window.ts';

export const ANOMALY_ARCH = 'anomaly-surprise@2';
const STATE_VERSION = 2;

export interface AnomalyOptions {
  windowSec?: number;
  /** evidence (nats) at which a window is anomalous */
  threshold?: number;
  /** half-lives (s) of the recent counts (an hour) and of the long-run ones (a week) */
  shortHalfLifeSec?: number;
  longHalfLifeSec?: number;
  /** windows with a template that halve its severity prior each (it is proving routine) */
  routineAfter?: number;
  /** the tfjs mix model: off only to measure what it adds */
  mix?: boolean;
  dims?: number;
  hidden?: number;
  learningRate?: number;
  steps?: number;
  seed?: number;
  /** windows judged per tfjs round (one predict and one training call per group) */
  group?: number;
  /** called for every judged window (the evaluation uses it) */
  onWindow?: (w: ScoredWindow) => void;
}

/** One template's part in a window's score. */
export interface TemplateEvidence extends TemplateSurprise {
  /** severity prior + occurrence + burst, nats */
  evidence: number;
  prior: number;
}

export interface ScoredWindow {
  host: string;
  /** window start, epoch ms (event time) */
  start: number;
  events: number;
  score: number;
  threshold: number;
  anomalous: boolean;
  /** what the score came from */
  driver: 'template' | 'volume' | 'activity' | 'mix';
  /** templates by evidence, strongest first (at most 5) */
  top: TemplateEvidence[];
  volume: CountSurprise;
  activity: CountSurprise;
  mix: { z: number; surprise: number } | null;
  /** template ids the flag is attributed to (their lines are the flagged lines); empty if normal */
  flagged: string[];
  why: string;
}

export const ANOMALY_VARIABLES: readonly VariableDecl[] = [
  {
    key: 'kernel.anomaly_score',
    type: 'float',
    unit: 'nats',
    description:
      'evidence that the last window of kernel lines is an incident: −ln p of its most surprising template (plus its severity prior), volume or mix',
    min: 0,
    max: 100,
    decimals: 3,
    hysteresis: 0.05,
    definition: { kind: 'window', seconds: 60, tumbling: true },
    dwellMs: 0,
  },
  {
    key: 'kernel.anomaly',
    type: 'bool',
    unit: null,
    description:
      'the last window of kernel lines reached the evidence threshold (raised at once, cleared after the dwell)',
    definition: { kind: 'window', seconds: 60, tumbling: true },
    dwellMs: 60_000,
    urgent: 'true',
  },
];

interface Open {
  window: number;
  events: number;
  t: Map<string, WindowTemplate>;
}

interface Closed extends WindowCounts {
  events: number;
}

interface AnomalyStateJson {
  version: number;
  arch: string;
  open: [string, { window: number; events: number; t: [string, WindowTemplate][] }][];
  watermark: number | null;
  counts: CountModelJson;
  mix: MixJson;
  rng: number;
  windows: number;
  anomalies: number;
  late: number;
}

const TEXT_MAX = 90;

function quote(s: string): string {
  const t = s.replace(/\s+/g, ' ').replace(/"/g, "'");
  return `"${t.length > TEXT_MAX ? `${t.slice(0, TEXT_MAX - 1)}…` : t}"`;
}

function num(x: number): string {
  if (x === 0) return '0';
  if (x >= 100) return x.toFixed(0);
  if (x >= 1) return x.toFixed(1);
  return x.toPrecision(2);
}

export class AnomalyLearner implements Learner {
  readonly name = 'anomaly';
  readonly needsTf = true;
  readonly variables = ANOMALY_VARIABLES;
  readonly threshold: number;
  private readonly routineAfter: number;
  private readonly windowMs: number;
  private readonly group: number;
  private readonly useMix: boolean;
  private counts: CountModel;
  private readonly mix: MixModel;
  private open = new Map<string, Open>();
  /** newest event time seen (ms): windows of quiet hosts close once it is a window past them */
  private watermark = Number.NEGATIVE_INFINITY;
  private rng: Rng;
  private windows = 0;
  private anomalies = 0;
  /** events that arrived after their window had closed (counted into the host's next window) */
  private late = 0;

  constructor(
    private readonly tf: Tf,
    model: ReturnType<typeof MixModel.build>,
    private readonly opts: AnomalyOptions = {},
  ) {
    const windowSec = opts.windowSec ?? 60;
    this.windowMs = windowSec * 1000;
    this.threshold = opts.threshold ?? 6;
    this.routineAfter = opts.routineAfter ?? 3;
    this.group = opts.group ?? 32;
    this.useMix = opts.mix ?? true;
    this.counts = new CountModel(AnomalyLearner.countOptions(opts));
    this.mix = new MixModel(tf, model, AnomalyLearner.mixOptions(opts));
    this.rng = new Rng(opts.seed ?? 11);
  }

  static countOptions(o: AnomalyOptions) {
    const w = o.windowSec ?? 60;
    return {
      ...COUNT_DEFAULTS,
      shortHalfLife: (o.shortHalfLifeSec ?? 3600) / w,
      longHalfLife: (o.longHalfLifeSec ?? 7 * 86_400) / w,
      activityPrior: 86_400 / w,
    };
  }

  static mixOptions(o: AnomalyOptions): MixOptions {
    return {
      ...MIX_DEFAULTS,
      ...(o.dims !== undefined ? { dims: o.dims } : {}),
      ...(o.hidden !== undefined ? { hidden: o.hidden } : {}),
      ...(o.learningRate !== undefined ? { learningRate: o.learningRate } : {}),
      ...(o.steps !== undefined ? { steps: o.steps } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
    };
  }

  static buildModel(tf: Tf, o: AnomalyOptions = {}): ReturnType<typeof MixModel.build> {
    return MixModel.build(tf, AnomalyLearner.mixOptions(o));
  }

  get modelVersion(): string {
    return `${ANOMALY_ARCH}.${this.mix.steps}`;
  }

  async onEvents(events: readonly KernelEvent[]): Promise<Proposal[]> {
    const closed: Closed[] = [];
    for (const e of events) {
      if (e.ts > this.watermark) this.watermark = e.ts;
      let w = Math.floor(e.ts / this.windowMs);
      let s = this.open.get(e.host);
      if (s && w > s.window) {
        closed.push(this.close(e.host, s));
        s = undefined;
      }
      if (!s) {
        // A line for a window already judged goes into the next one.
        const last = this.counts.lastWindow(e.host);
        if (last !== undefined && w <= last) {
          w = last + 1;
          this.late++;
        }
        s = { window: w, events: 0, t: new Map() };
        this.open.set(e.host, s);
      } else if (w < s.window) this.late++;
      // Without a template id (no miner upstream) the template or the message stands in.
      const id = e.templateId || e.template || e.message;
      const sev = severityOf(e);
      const t = s.t.get(id);
      if (t) {
        t.n++;
        if (sev !== null && (t.sev === null || sev < t.sev)) t.sev = sev;
      } else s.t.set(id, { n: 1, sev, text: e.template || e.message });
      s.events++;
    }
    // Windows of hosts that went quiet close once event time is a whole window past their end.
    for (const [host, s] of this.open) {
      if ((s.window + 2) * this.windowMs <= this.watermark) closed.push(this.close(host, s));
    }
    return this.judge(closed);
  }

  /** Judges every open window now (end of a replayed log; the evaluation's last step). */
  async flush(): Promise<Proposal[]> {
    const closed = [...this.open].map(([host, s]) => this.close(host, s));
    return this.judge(closed);
  }

  private close(host: string, s: Open): Closed {
    this.open.delete(host);
    return { host, w: s.window, total: s.events, events: s.events, templates: s.t };
  }

  /**
   * Inference only: how the window of these lines (template ids) on `host` starting at `ts` would be
   * judged now. Nothing is learnt (benchmarks, what-if checks).
   */
  scoreWindow(host: string, ts: number, templateIds: readonly string[]): ScoredWindow {
    const t = new Map<string, WindowTemplate>();
    for (const id of templateIds) {
      const x = t.get(id);
      if (x) x.n++;
      else t.set(id, { n: 1, sev: null, text: id });
    }
    const c: Closed = {
      host,
      w: Math.floor(ts / this.windowMs),
      total: templateIds.length,
      events: templateIds.length,
      templates: t,
    };
    const vector = this.useMix
      ? this.mix.vector(
          [...t].map(([id, x]) => [id, x.n] as [string, number]),
          (id) => this.counts.knows(host, id),
        )
      : null;
    const m = this.useMix ? (this.mix.score([vector])[0] ?? null) : null;
    return this.decide(c, this.counts.judge(c), m);
  }

  /**
   * Judges closed windows in event-time order, a group at a time: the count model judges and then
   * learns each window in turn; the mix model scores the group in one tfjs call, then learns it.
   */
  private async judge(closed: Closed[]): Promise<Proposal[]> {
    closed.sort((a, b) => a.w - b.w || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
    const out: Proposal[] = [];
    for (let i = 0; i < closed.length; i += this.group) {
      out.push(...(await this.judgeGroup(closed.slice(i, i + this.group))));
    }
    return out;
  }

  private async judgeGroup(group: Closed[]): Promise<Proposal[]> {
    const counted = group.map((c) => {
      const vector = this.useMix
        ? this.mix.vector(
            [...c.templates].map(([id, t]) => [id, t.n] as [string, number]),
            (id) => this.counts.knows(c.host, id),
          )
        : null;
      const j = this.counts.judge(c);
      this.counts.learn(c);
      return { c, j, vector };
    });
    const mixed = this.useMix ? this.mix.score(counted.map((x) => x.vector)) : counted.map(() => null);
    const out: Proposal[] = [];
    const learn: { v: number[]; error: number }[] = [];
    const model = this.modelVersion;
    counted.forEach(({ c, j, vector }, i) => {
      const m = mixed[i] ?? null;
      const scored = this.decide(c, j, m);
      this.windows++;
      if (scored.anomalous) this.anomalies++;
      else if (vector && m) learn.push({ v: vector, error: m.error });
      this.opts.onWindow?.(scored);
      const margin = Math.abs(scored.score - this.threshold);
      const confidence = Number((1 - Math.exp(-margin)).toFixed(3));
      out.push({
        host: c.host,
        key: 'kernel.anomaly_score',
        value: Number(scored.score.toFixed(3)),
        why: scored.why,
        confidence,
        model,
      });
      out.push({
        host: c.host,
        key: 'kernel.anomaly',
        value: scored.anomalous,
        why: scored.why,
        confidence,
        model,
      });
    });
    if (learn.length > 0) await this.mix.learn(learn, this.rng);
    return out;
  }

  private decide(c: Closed, j: WindowSurprise, m: MixScore | null): ScoredWindow {
    // Surprises are corrected for the number of pieces of evidence looked at (Bonferroni: by
    // chance alone the best of m p-values is m times likelier to be small), so a busy window is
    // no anomaly for being busy. Priors are not chance events and stay whole.
    const lnTests = Math.log(j.templates.length + (m ? 3 : 2));
    const corrected = (s: number) => Math.max(0, s - lnTests);
    // The severity prior fades as the template proves routine: halved for every `routineAfter`
    // windows it had on this host before the last hour (other hosts' count a quarter).
    const evidence: TemplateEvidence[] = j.templates
      .map((t) => {
        const prior = severityWeight(t.sev) * (this.threshold + 1) * 2 ** (-t.familiar / this.routineAfter);
        return { ...t, prior, evidence: prior + corrected(t.occurrence + t.burst) };
      })
      .sort((a, b) => b.evidence - a.evidence || b.n - a.n);
    // Window-level evidence is statistical only: the severity prior belongs to its template.
    const candidates: [ScoredWindow['driver'], number][] = [
      ['template', evidence[0]?.evidence ?? 0],
      ['volume', corrected(j.volume.surprise)],
      ['activity', corrected(j.activity.surprise)],
      ['mix', m ? corrected(m.surprise) : 0],
    ];
    let [driver, score] = candidates[0]!;
    for (const [d, s] of candidates) if (s > score) [driver, score] = [d, s];
    const anomalous = score >= this.threshold;
    let flagged: string[] = [];
    if (anomalous) {
      if (driver === 'template')
        flagged = evidence.filter((e) => e.evidence >= this.threshold).map((e) => e.templateId);
      else if (driver === 'volume')
        // the templates whose lines exceed their expected count the most
        flagged = [...evidence]
          .sort((a, b) => b.n - b.expected - (a.n - a.expected))
          .slice(0, 3)
          .map((e) => e.templateId);
      else if (driver === 'activity')
        // the templates that kept coming back over the last hour, worst first
        flagged = [...evidence]
          .sort((a, b) => b.prior - a.prior || b.recent - a.recent)
          .slice(0, 3)
          .map((e) => e.templateId);
      else if (m)
        flagged = this.mixSlots(c, m)
          .filter((s) => s.present)
          .slice(0, 3)
          .map((s) => s.id);
    }
    const w: ScoredWindow = {
      host: c.host,
      start: c.w * this.windowMs,
      events: c.events,
      score,
      threshold: this.threshold,
      anomalous,
      driver,
      top: evidence.slice(0, 5),
      volume: j.volume,
      activity: j.activity,
      mix: m ? { z: m.z, surprise: m.surprise } : null,
      flagged,
      why: '',
    };
    w.why = this.explain(c, w, lnTests, m);
    return w;
  }

  /** The slots the autoencoder got most wrong, named by the template behind them. */
  private mixSlots(
    c: Closed,
    m: MixScore,
  ): { id: string; text: string; present: boolean; n: number; usual: number; off: number }[] {
    const order = m.residual
      .map((r, slot) => ({ slot, off: r }))
      .sort((a, b) => Math.abs(b.off) - Math.abs(a.off));
    const out: { id: string; text: string; present: boolean; n: number; usual: number; off: number }[] = [];
    for (const { slot, off } of order.slice(0, 3)) {
      if (Math.abs(off) < 1e-3) break;
      const here = [...c.templates].filter(([id]) => this.mix.slot(id) === slot);
      if (here.length > 0) {
        here.sort((a, b) => b[1].n - a[1].n);
        const [id, t] = here[0]!;
        out.push({ id, text: t.text, present: true, n: t.n, usual: this.counts.usualCount(c.host, id), off });
      } else {
        const u = this.counts.usualTemplate(c.host, (id) => this.mix.slot(id) === slot);
        if (u) out.push({ ...u, present: false, n: 0, usual: this.counts.usualCount(c.host, u.id), off });
      }
    }
    return out;
  }

  private explain(c: Closed, w: ScoredWindow, lnTests: number, m: MixScore | null): string {
    const verdict = w.anomalous ? `anomalous, by ${w.driver}` : 'normal';
    const head = `${this.windowMs / 1000}s window ${new Date(w.start).toISOString()}, ${c.events} lines: ${w.score.toFixed(2)} nats ${w.anomalous ? '>=' : '<'} ${this.threshold} (${verdict}; prior + surprise - ln ${Math.round(Math.exp(lnTests))} tests)`;
    const parts = w.top.slice(0, 3).map((e) => {
      const what = e.fleetNew ? 'new' : e.hostNew ? 'new on host' : `expected ${num(e.expected)}`;
      const terms = [
        `${severityName(e.sev)} +${e.prior.toFixed(1)}`,
        `rate +${e.occurrence.toFixed(1)}`,
        ...(e.burst > 0 ? [`burst +${e.burst.toFixed(1)}`] : []),
      ];
      return `${quote(e.text)} x${e.n} ${what} (${terms.join(', ')})`;
    });
    parts.push(`volume ${c.events} expected ${num(w.volume.expected)} (+${w.volume.surprise.toFixed(1)})`);
    parts.push(
      `active in ${num(w.activity.n)} other recent windows, expected ${num(w.activity.expected)} (+${w.activity.surprise.toFixed(1)})`,
    );
    if (m && (w.driver === 'mix' || m.surprise > 1)) {
      const off = this.mixSlots(c, m)
        .slice(0, 2)
        .map((s) => `${quote(s.text)} x${s.n} usually ${num(s.usual)}`);
      parts.push(
        `mix z=${m.z.toFixed(1)} (+${m.surprise.toFixed(1)})${off.length ? `: ${off.join(', ')}` : ''}`,
      );
    }
    return `${head}; ${parts.join('; ')}`;
  }

  async save(dir: string): Promise<void> {
    await saveModel(this.mix.model, dir, this.tf);
    const j: AnomalyStateJson = {
      version: STATE_VERSION,
      arch: ANOMALY_ARCH,
      open: [...this.open].map(([h, s]) => [h, { window: s.window, events: s.events, t: [...s.t] }]),
      watermark: Number.isFinite(this.watermark) ? this.watermark : null,
      counts: this.counts.toJSON(),
      mix: this.mix.toJSON(),
      rng: this.rng.state,
      windows: this.windows,
      anomalies: this.anomalies,
      late: this.late,
    };
    writeJsonAtomic(join(dir, 'state.json'), j);
  }

  async load(dir: string): Promise<void> {
    const j = readJson<AnomalyStateJson>(join(dir, 'state.json'));
    if (j.version !== STATE_VERSION || j.arch !== ANOMALY_ARCH) {
      throw new Error(
        `anomaly state in ${dir} is ${j.arch ?? 'anomaly-ae@1'} (version ${j.version ?? 1}); this learner is ${ANOMALY_ARCH}`,
      );
    }
    const model = await loadModel(this.tf, dir);
    this.mix.restore(j.mix, model);
    this.counts = CountModel.fromJSON(j.counts, this.counts.opts);
    this.open = new Map(j.open.map(([h, s]) => [h, { window: s.window, events: s.events, t: new Map(s.t) }]));
    this.watermark = j.watermark ?? Number.NEGATIVE_INFINITY;
    this.rng = new Rng(j.rng);
    this.windows = j.windows;
    this.anomalies = j.anomalies;
    this.late = j.late;
  }

  stats(): Record<string, number | string> {
    return {
      model: this.modelVersion,
      hosts: this.counts.hostCount,
      templates: this.counts.templateCount,
      windows: this.windows,
      anomalies: this.anomalies,
      late: this.late,
      threshold: this.threshold,
    };
  }

  dispose(): void {
    this.mix.dispose();
  }
}

export async function createAnomalyLearner(
  ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  const tf = requireTf(ctx.tf, 'anomaly');
  const o = opts as AnomalyOptions;
  return new AnomalyLearner(tf, AnomalyLearner.buildModel(tf, o), o);
}
