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
//  - context lines (context-line.ts: register dumps, stack frames, `Code:` bytes) describe the
//    event they follow and carry its level: their severity is not counted, only their statistics;
//  - a critical template (crit or worse: KERN_CRIT/ALERT/EMERG, HPC FATAL/FAILURE) keeps its
//    prior while it recurs, unless the fleet logged it during the baseline (the learner's first
//    `baselineSec` of event time, taken as the fleet's usual state) or this host has logged it for
//    `critRoutineSec` (a day): a node raising FATAL TLB errors for six hours is faulty for six
//    hours, while a hot rack's thermal-throttling crit lines, there from the start, are this
//    fleet's normal on whichever host they appear. Err and warning fade as above;
//  - the window's volume (lines) against the host's usual.
// Surprises are corrected for the number of pieces looked at (− ln m, Bonferroni); priors are not.
// The score is the strongest piece; the window is anomalous when it reaches `threshold` (6 nats:
// p ≈ 0.0025 after the correction for a line of no special level). Explanations name the
// templates behind the score with their count, expected count and what each term added, and say
// when a line was taken as context.
//
// Measured and left out (learners/README.md): the host's recent activity (how many of its windows
// over the last hour had any line) is shown in the explanation but is not evidence of its own: on
// real HPC logs it flagged nodes that repeat a corrected-error INFO line, and added no detection
// elsewhere; the first version's tfjs autoencoder over the window's template mix drove no verdict
// on any data set and was removed, so this learner needs no tfjs model.
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
import { type ContextShape, contextShape } from './context-line.ts';
import { severityName, severityOf, severityWeight } from './severity.ts';
import { readJson, writeJsonAtomic } from './snapshot.ts';
import type { Learner, LearnerContext, Proposal, VariableDecl } from './types.ts';

export const ANOMALY_ARCH = 'anomaly-surprise@3';
const STATE_VERSION = 3;

export interface AnomalyOptions {
  windowSec?: number;
  /** evidence (nats) at which a window is anomalous */
  threshold?: number;
  /** half-lives (s) of the recent counts (an hour) and of the long-run ones (a week) */
  shortHalfLifeSec?: number;
  longHalfLifeSec?: number;
  /** windows with a template that halve its severity prior each (it is proving routine) */
  routineAfter?: number;
  /** event time (s) from the learner's first window during which what the fleet logs is its baseline */
  baselineSec?: number;
  /** how long (s) a host must have logged a critical template not in its baseline before it fades */
  critRoutineSec?: number;
  /** context lines' severity discounted (context-line.ts): off only to measure what it adds */
  context?: boolean;
  /** called for every judged window (the evaluation uses it) */
  onWindow?: (w: ScoredWindow) => void;
}

/** One template's part in a window's score: its surprises and the verdict decide() completes. */
export type TemplateEvidence = TemplateSurprise;

export interface ScoredWindow {
  host: string;
  /** window start, epoch ms (event time) */
  start: number;
  events: number;
  score: number;
  threshold: number;
  anomalous: boolean;
  /** what the score came from */
  driver: 'template' | 'volume';
  /** templates by evidence, strongest first (at most 5) */
  top: TemplateEvidence[];
  volume: CountSurprise;
  /** the host's other active windows over the last hour against its usual (explanation only) */
  activity: CountSurprise;
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
      'evidence that the last window of kernel lines is an incident: −ln p of its most surprising template (plus its severity prior) or of its volume',
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
  windows: number;
  anomalies: number;
  late: number;
}

const TEXT_MAX = 90;

function quote(s: string): string {
  const t = s.replace(/\s+/g, ' ').replace(/"/g, "'");
  return `"${t.length > TEXT_MAX ? `${t.slice(0, TEXT_MAX - 1)}…` : t}"`;
}

function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 1 ? `${h.toFixed(1)} h` : `${Math.round(ms / 60_000)} min`;
}

/** Counts one line into its window's template: event lines set the severity, context lines not. */
function addLine(
  t: Map<string, WindowTemplate>,
  id: string,
  text: string,
  sev: number | null,
  shape: ContextShape | null,
): void {
  let x = t.get(id);
  if (!x) {
    x = { n: 0, sev: null, text, ctx: 0, ctxSev: null, shape: null };
    t.set(id, x);
  }
  x.n++;
  if (shape) {
    x.ctx++;
    x.shape ??= shape;
    if (worse(sev, x.ctxSev)) x.ctxSev = sev;
  } else if (worse(sev, x.sev)) x.sev = sev;
}

// Module-level, not a closure in addLine: addLine runs per line, and a closure made per call is
// garbage per line (and, under tsx, a `__name` property definition per line: 3% of a pass).
/** whether severity `sev` is worse (lower) than `than`, none being the least */
function worse(sev: number | null, than: number | null): boolean {
  return sev !== null && (than === null || sev < than);
}

function num(x: number): string {
  if (x === 0) return '0';
  if (x >= 100) return x.toFixed(0);
  if (x >= 1) return x.toFixed(1);
  return x.toPrecision(2);
}

export class AnomalyLearner implements Learner {
  readonly name = 'anomaly';
  readonly needsTf = false;
  readonly variables = ANOMALY_VARIABLES;
  readonly threshold: number;
  private readonly routineAfter: number;
  private readonly critRoutineWindows: number;
  private readonly windowMs: number;
  private readonly useContext: boolean;
  private counts: CountModel;
  private open = new Map<string, Open>();
  /** newest event time seen (ms): windows of quiet hosts close once it is a window past them */
  private watermark = Number.NEGATIVE_INFINITY;
  private windows = 0;
  private anomalies = 0;
  /** events that arrived after their window had closed (counted into the host's next window) */
  private late = 0;

  constructor(private readonly opts: AnomalyOptions = {}) {
    const windowSec = opts.windowSec ?? 60;
    this.windowMs = windowSec * 1000;
    this.threshold = opts.threshold ?? 6;
    this.routineAfter = opts.routineAfter ?? 3;
    this.critRoutineWindows = (opts.critRoutineSec ?? 86_400) / windowSec;
    this.useContext = opts.context ?? true;
    this.counts = new CountModel(AnomalyLearner.countOptions(opts));
  }

  static countOptions(o: AnomalyOptions) {
    const w = o.windowSec ?? 60;
    return {
      ...COUNT_DEFAULTS,
      shortHalfLife: (o.shortHalfLifeSec ?? 3600) / w,
      longHalfLife: (o.longHalfLifeSec ?? 7 * 86_400) / w,
      baselineWindows: (o.baselineSec ?? 7200) / w,
      activityPrior: 86_400 / w,
    };
  }

  /** `arch.windows judged`: what a proposal came from */
  get modelVersion(): string {
    return `${ANOMALY_ARCH}.${this.windows}`;
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
      const shape = this.useContext ? contextShape(e.message) : null;
      addLine(s.t, id, e.template || e.message, severityOf(e), shape);
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
    for (const id of templateIds) addLine(t, id, id, null, null);
    const c: Closed = {
      host,
      w: Math.floor(ts / this.windowMs),
      total: templateIds.length,
      events: templateIds.length,
      templates: t,
    };
    return this.decide(c, this.counts.judge(c));
  }

  /** Judges closed windows in event-time order, each before it is learnt. */
  private async judge(closed: Closed[]): Promise<Proposal[]> {
    closed.sort((a, b) => a.w - b.w || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
    const out: Proposal[] = [];
    for (const c of closed) {
      const scored = this.decide(c, this.counts.judge(c));
      this.counts.learn(c);
      this.windows++;
      if (scored.anomalous) this.anomalies++;
      this.opts.onWindow?.(scored);
      const margin = Math.abs(scored.score - this.threshold);
      const confidence = Number((1 - Math.exp(-margin)).toFixed(3));
      const model = this.modelVersion;
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
    }
    return out;
  }

  private decide(c: Closed, j: WindowSurprise): ScoredWindow {
    // Surprises are corrected for the number of pieces of evidence looked at (Bonferroni: by
    // chance alone the best of m p-values is m times likelier to be small), so a busy window is
    // no anomaly for being busy: its templates and its volume. Priors are not chance events.
    const lnTests = Math.log(j.templates.length + 1);
    const corrected = (s: number) => Math.max(0, s - lnTests);
    // The severity prior (of the template's event lines: context lines carry none) fades as the
    // template proves routine: halved for every `routineAfter` windows it had on this host before
    // the last hour. A critical one fades only once it is routine: logged by the fleet during the
    // baseline, or by this host for a day; until then a fault that keeps recurring stays a fault.
    // judge's objects are this call's own: completed in place (their slots for it are in the
    // literal, anomaly-counts.ts) rather than copied, which was the learner's largest cost (a
    // spread of 18 fields per template), and sorted in their own array
    for (const t of j.templates) {
      const crit = t.sev !== null && t.sev <= 2;
      const routine = !crit || t.baseline || t.age >= this.critRoutineWindows;
      const fade = routine ? 2 ** (-t.familiar / this.routineAfter) : 1;
      const prior = severityWeight(t.sev) * (this.threshold + 1) * fade;
      t.prior = prior;
      t.kept = !routine && t.familiar >= 0.5;
      t.evidence = prior + corrected(t.occurrence + t.burst);
    }
    const evidence: TemplateEvidence[] = j.templates.sort((a, b) => b.evidence - a.evidence || b.n - a.n);
    // Window-level evidence is statistical only: the severity prior belongs to its template.
    const byTemplate = evidence[0]?.evidence ?? 0;
    const byVolume = corrected(j.volume.surprise);
    const driver: ScoredWindow['driver'] = byVolume > byTemplate ? 'volume' : 'template';
    const score = Math.max(byTemplate, byVolume);
    const anomalous = score >= this.threshold;
    // The flag is attributed to the templates that reach the threshold on their own evidence;
    // only when none does (a volume surge of ordinary lines) to those most above their usual count.
    let flagged: string[] = [];
    if (anomalous) {
      flagged = evidence.filter((e) => e.evidence >= this.threshold).map((e) => e.templateId);
      if (flagged.length === 0)
        flagged = [...evidence]
          .sort((a, b) => b.n - b.expected - (a.n - a.expected))
          .slice(0, 3)
          .map((e) => e.templateId);
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
      flagged,
      why: '',
    };
    w.why = this.explain(c, w, lnTests);
    return w;
  }

  private explain(c: Closed, w: ScoredWindow, lnTests: number): string {
    const verdict = w.anomalous ? `anomalous, by ${w.driver}` : 'normal';
    const head = `${this.windowMs / 1000}s window ${new Date(w.start).toISOString()}, ${c.events} lines: ${w.score.toFixed(2)} nats ${w.anomalous ? '>=' : '<'} ${this.threshold} (${verdict}; prior + surprise - ln ${Math.round(Math.exp(lnTests))} tests)`;
    const parts = w.top.slice(0, 3).map((e) => {
      const what = e.fleetNew ? 'new' : e.hostNew ? 'new on host' : `expected ${num(e.expected)}`;
      const level =
        e.ctx >= e.n
          ? `context line (${e.shape}; its ${severityName(e.ctxSev)} belongs to the event it describes) +0.0`
          : `${severityName(e.sev)} +${e.prior.toFixed(1)}${e.kept ? ` kept: recurring for ${hours(e.age * this.windowMs)}, not in the fleet's baseline` : ''}${e.ctx > 0 ? `, ${e.ctx} context lines` : ''}`;
      const terms = [
        level,
        `rate +${e.occurrence.toFixed(1)}`,
        ...(e.burst > 0 ? [`burst +${e.burst.toFixed(1)}`] : []),
      ];
      return `${quote(e.text)} x${e.n} ${what} (${terms.join(', ')})`;
    });
    const ctx = [...c.templates.values()].filter((t) => t.ctx > 0);
    if (ctx.length > 0) {
      const shapes = [...new Set(ctx.map((t) => t.shape))].join(', ');
      const lines = ctx.reduce((a, t) => a + t.ctx, 0);
      parts.push(
        `${lines} context line${lines > 1 ? 's' : ''} (${shapes}) taken as part of the event they describe`,
      );
    }
    parts.push(`volume ${c.events} expected ${num(w.volume.expected)} (+${w.volume.surprise.toFixed(1)})`);
    parts.push(
      `host active in ${num(w.activity.n)} other windows of the last hour, usually ${num(w.activity.expected)} (not scored)`,
    );
    return `${head}; ${parts.join('; ')}`;
  }

  async save(dir: string): Promise<void> {
    const j: AnomalyStateJson = {
      version: STATE_VERSION,
      arch: ANOMALY_ARCH,
      open: [...this.open].map(([h, s]) => [h, { window: s.window, events: s.events, t: [...s.t] }]),
      watermark: Number.isFinite(this.watermark) ? this.watermark : null,
      counts: this.counts.toJSON(),
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
    this.counts = CountModel.fromJSON(j.counts, this.counts.opts);
    this.open = new Map(j.open.map(([h, s]) => [h, { window: s.window, events: s.events, t: new Map(s.t) }]));
    this.watermark = j.watermark ?? Number.NEGATIVE_INFINITY;
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

  dispose(): void {}
}

export async function createAnomalyLearner(
  _ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  return new AnomalyLearner(opts as AnomalyOptions);
}
