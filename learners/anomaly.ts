// Kernel log anomaly score: an online tfjs autoencoder over per-window template-count vectors.
// Each host's events are cut into event-time windows; a window is the vector of its template ids
// (from the miner) hashed into `dims` slots, TF-IDF weighted (log1p count × an inverse window
// frequency learnt online, so a template normal windows never show weighs most) and scaled to unit
// length. The score is the reconstruction error; a window is anomalous when it exceeds
// median + k·MAD of recent normal scores (robust: one odd window does not move it). Windows are
// scored before the model trains on them (prequential), and anomalous ones are not learnt.
import { join } from 'node:path';
import type { KernelEvent } from '../schemas/index.ts';
import { ReplayBuffer } from './replay-buffer.ts';
import { readJson, writeJsonAtomic } from './snapshot.ts';
import { loadModel, type Model, predictRows, requireTf, saveModel, trainSteps } from './tf-util.ts';
import type { Learner, LearnerContext, Proposal, Tf, VariableDecl } from './types.ts';
import { fnv1a, Rng } from './window.ts';

export const ANOMALY_ARCH = 'anomaly-ae@1';

export interface AnomalyOptions {
  windowSec?: number;
  /** hashed template-count vector size */
  dims?: number;
  /** autoencoder bottleneck */
  hidden?: number;
  /** threshold = median + k·(1.4826·MAD) of recent normal scores */
  k?: number;
  /** windows learnt before any is called anomalous */
  warmup?: number;
  /** score floor of the threshold, so a perfectly learnt log does not flag noise */
  minThreshold?: number;
  steps?: number;
  learningRate?: number;
  seed?: number;
  /** called for every scored window (the evaluation uses it) */
  onWindow?: (w: ScoredWindow) => void;
}

export interface ScoredWindow {
  host: string;
  /** window start, epoch ms */
  start: number;
  events: number;
  score: number;
  threshold: number;
  anomalous: boolean;
  warm: boolean;
}

export const ANOMALY_VARIABLES: readonly VariableDecl[] = [
  {
    key: 'kernel.anomaly_score',
    type: 'float',
    unit: null,
    description: 'autoencoder reconstruction error of the last window of template counts',
    min: 0,
    max: 1000,
    decimals: 4,
    hysteresis: 0.001,
    dwellMs: 0,
  },
  {
    key: 'kernel.anomaly',
    type: 'bool',
    unit: null,
    description:
      'the last window scored above the learnt threshold (raised at once, cleared after the dwell)',
    dwellMs: 60_000,
    urgent: 'true',
  },
];

const REPLAY = 256;
const HISTORY = 200;
const BATCH = 32;
/** windows scored (and learnt) per tfjs round, while the model is young and once it is mature */
const YOUNG_GROUP = 4;
const MATURE_GROUP = 16;

interface Closed {
  host: string;
  start: number;
  counts: Record<number, number>;
  events: number;
}

interface HostWin {
  window: number;
  counts: Record<number, number>;
  events: number;
}

interface AnomalyStateJson {
  hosts: [string, HostWin][];
  replay: number[][];
  history: number[];
  df: number[];
  learnt: number;
  rng: number;
  steps: number;
  windows: number;
  anomalies: number;
}

export class AnomalyLearner implements Learner {
  readonly name = 'anomaly';
  readonly needsTf = true;
  readonly variables = ANOMALY_VARIABLES;
  readonly dims: number;
  private readonly windowMs: number;
  private readonly k: number;
  private readonly warmup: number;
  private readonly minThreshold: number;
  private readonly stepsPerBatch: number;
  private hosts = new Map<string, HostWin>();
  private replay = new ReplayBuffer<number[]>(REPLAY);
  /** scores of recent windows judged normal */
  private history: number[] = [];
  /** per slot: normal windows learnt that contained it (the IDF's document frequency) */
  private df: number[];
  /** normal windows learnt */
  private learnt = 0;
  private rng: Rng;
  private steps = 0;
  private windows = 0;
  private anomalies = 0;

  constructor(
    private readonly tf: Tf,
    private model: Model,
    private readonly opts: AnomalyOptions,
  ) {
    this.windowMs = (opts.windowSec ?? 60) * 1000;
    this.dims = opts.dims ?? 64;
    this.k = opts.k ?? 3;
    this.warmup = opts.warmup ?? 10;
    this.minThreshold = opts.minThreshold ?? 0.02;
    this.stepsPerBatch = opts.steps ?? 8;
    this.rng = new Rng(opts.seed ?? 11);
    this.df = new Array<number>(this.dims).fill(0);
  }

  static buildModel(tf: Tf, dims: number, hidden: number, learningRate: number, seed: number): Model {
    const m = tf.sequential();
    m.add(
      tf.layers.dense({
        units: hidden,
        inputShape: [dims],
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
    );
    m.add(
      tf.layers.dense({
        units: dims,
        activation: 'linear',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    );
    m.compile({ optimizer: tf.train.rmsprop(learningRate), loss: 'meanSquaredError' });
    return m;
  }

  get modelVersion(): string {
    return `${ANOMALY_ARCH}.${this.steps}`;
  }

  slot(templateId: string): number {
    return fnv1a(templateId) % this.dims;
  }

  vector(counts: Record<number, number>): number[] {
    const v = new Array<number>(this.dims).fill(0);
    let norm = 0;
    for (const [k, c] of Object.entries(counts)) {
      const i = Number(k);
      const x = Math.log1p(c) * (1 + Math.log((this.learnt + 1) / (this.df[i]! + 1)));
      v[i] = x;
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    if (norm > 0) for (let i = 0; i < v.length; i++) v[i]! /= norm;
    return v;
  }

  /** Inference only: the score a window with these template ids would get (nothing is learnt). */
  scoreTemplates(templateIds: readonly string[]): number {
    const counts: Record<number, number> = {};
    for (const t of templateIds) {
      const i = this.slot(t);
      counts[i] = (counts[i] ?? 0) + 1;
    }
    const v = this.vector(counts);
    const r = predictRows(this.tf, this.model, [v])[0]!;
    let score = 0;
    for (let j = 0; j < this.dims; j++) score += (v[j]! - r[j]!) ** 2;
    return score;
  }

  threshold(): number {
    const h = this.history;
    if (h.length === 0) return Number.POSITIVE_INFINITY;
    const sorted = [...h].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)]!;
    const dev = h.map((x) => Math.abs(x - med)).sort((a, b) => a - b);
    const mad = dev[Math.floor(dev.length / 2)]! * 1.4826;
    return Math.max(this.minThreshold, med + this.k * mad);
  }

  async onEvents(events: readonly KernelEvent[]): Promise<Proposal[]> {
    const closed: Closed[] = [];
    for (const e of events) {
      const w = Math.floor(e.ts / this.windowMs);
      let s = this.hosts.get(e.host);
      if (!s) {
        s = { window: w, counts: {}, events: 0 };
        this.hosts.set(e.host, s);
      }
      if (w > s.window) {
        if (s.events > 0) {
          closed.push({
            host: e.host,
            start: s.window * this.windowMs,
            counts: s.counts,
            events: s.events,
          });
        }
        s.window = w;
        s.counts = {};
        s.events = 0;
      }
      // Without a template id (no miner upstream) the message itself stands in for it.
      const i = this.slot(e.templateId || e.template || e.message);
      s.counts[i] = (s.counts[i] ?? 0) + 1;
      s.events++;
    }
    return this.score(closed);
  }

  /** Scores and then learns closed windows; the eval flushes the open ones at the end with this. */
  async flush(): Promise<Proposal[]> {
    const closed: Closed[] = [];
    for (const [host, s] of this.hosts) {
      if (s.events === 0) continue;
      closed.push({ host, start: s.window * this.windowMs, counts: s.counts, events: s.events });
      s.counts = {};
      s.events = 0;
      s.window++;
    }
    return this.score(closed);
  }

  /**
   * Scores closed windows and learns the normal ones, a few windows at a time: a replayed log closes
   * hundreds of windows in one batch, and each group must meet a model trained on the groups
   * before it (as live windows would), while tfjs still runs once per group, never per event.
   */
  private async score(closedWindows: Closed[]): Promise<Proposal[]> {
    const out: Proposal[] = [];
    let i = 0;
    while (i < closedWindows.length) {
      // A young model must learn between small groups; a mature one changes slowly and can take
      // bigger groups (fewer tfjs rounds when a replayed log closes many windows at once).
      const group = this.windows < this.warmup * 5 ? YOUNG_GROUP : MATURE_GROUP;
      out.push(...(await this.scoreGroup(closedWindows.slice(i, i + group))));
      i += group;
    }
    return out;
  }

  private async scoreGroup(closedWindows: Closed[]): Promise<Proposal[]> {
    if (closedWindows.length === 0) return [];
    // Vectors are made now, with the IDF as it stands when the windows are scored.
    const closed = closedWindows.map((c) => ({ ...c, v: this.vector(c.counts) }));
    const rec = predictRows(
      this.tf,
      this.model,
      closed.map((c) => c.v),
    );
    const out: Proposal[] = [];
    const learn: number[][] = [];
    const model = this.modelVersion;
    for (let i = 0; i < closed.length; i++) {
      const c = closed[i]!;
      const r = rec[i]!;
      let score = 0;
      for (let j = 0; j < this.dims; j++) score += (c.v[j]! - r[j]!) ** 2;
      const warm = this.windows >= this.warmup;
      const thr = this.threshold();
      const anomalous = warm && score > thr;
      this.windows++;
      if (anomalous) this.anomalies++;
      else {
        learn.push(c.v);
        // Scores of a model still learning what normal is would inflate the threshold.
        if (this.windows > this.warmup / 2) {
          this.history.push(score);
          if (this.history.length > HISTORY) this.history.shift();
        }
        this.learnt++;
        for (const k of Object.keys(c.counts)) this.df[Number(k)]!++;
      }
      this.opts.onWindow?.({
        host: c.host,
        start: c.start,
        events: c.events,
        score,
        threshold: thr,
        anomalous,
        warm,
      });
      const why = `window=${this.windowMs / 1000}s start=${new Date(c.start).toISOString()} events=${c.events} score=${score.toFixed(4)} threshold=${Number.isFinite(thr) ? thr.toFixed(4) : 'none'}${warm ? '' : ` warming up ${this.windows}/${this.warmup}`}`;
      const confidence = warm ? Math.min(1, Math.abs(score - thr) / Math.max(thr, 1e-6)) : 0;
      out.push({ host: c.host, key: 'kernel.anomaly_score', value: score, why, confidence, model });
      out.push({ host: c.host, key: 'kernel.anomaly', value: anomalous, why, confidence, model });
    }
    if (learn.length > 0) await this.train(learn);
    return out;
  }

  private async train(fresh: number[][]): Promise<void> {
    const batch = this.replay.mix(fresh, BATCH, this.rng);
    this.replay.add(fresh, this.rng);
    // More steps while warming up: the first windows teach what normal looks like.
    const steps = this.windows <= this.warmup ? this.stepsPerBatch * 3 : this.stepsPerBatch;
    await trainSteps(this.tf, this.model, batch, batch, steps);
    this.steps += steps;
  }

  async save(dir: string): Promise<void> {
    await saveModel(this.model, dir, this.tf);
    const j: AnomalyStateJson = {
      hosts: [...this.hosts],
      replay: this.replay.toJSON(),
      history: this.history,
      df: this.df,
      learnt: this.learnt,
      rng: this.rng.state,
      steps: this.steps,
      windows: this.windows,
      anomalies: this.anomalies,
    };
    writeJsonAtomic(join(dir, 'state.json'), j);
  }

  async load(dir: string): Promise<void> {
    const model = await loadModel(this.tf, dir);
    this.model.dispose();
    this.model = model;
    const j = readJson<AnomalyStateJson>(join(dir, 'state.json'));
    this.hosts = new Map(j.hosts);
    this.replay = ReplayBuffer.fromJSON(REPLAY, j.replay);
    this.history = j.history;
    this.df = j.df;
    this.learnt = j.learnt;
    this.rng = new Rng(j.rng);
    this.steps = j.steps;
    this.windows = j.windows;
    this.anomalies = j.anomalies;
  }

  stats(): Record<string, number | string> {
    const thr = this.threshold();
    return {
      model: this.modelVersion,
      hosts: this.hosts.size,
      windows: this.windows,
      anomalies: this.anomalies,
      threshold: Number.isFinite(thr) ? Number(thr.toFixed(4)) : -1,
    };
  }

  dispose(): void {
    this.model.dispose();
  }
}

export async function createAnomalyLearner(
  ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  const tf = requireTf(ctx.tf, 'anomaly');
  const o = opts as AnomalyOptions;
  const dims = o.dims ?? 64;
  return new AnomalyLearner(
    tf,
    AnomalyLearner.buildModel(tf, dims, o.hidden ?? 8, o.learningRate ?? 0.01, o.seed ?? 11),
    o,
  );
}
