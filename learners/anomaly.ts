// Kernel log anomaly score: an online tfjs autoencoder over per-window template-count vectors.
// Each host's events are cut into event-time windows; a window is the vector of its template ids
// (from the miner) hashed into `dims` slots, log1p-scaled. The score is the reconstruction error;
// a window is anomalous when its score exceeds mean + k·std of recent normal windows. Windows are
// scored before the model trains on them (prequential), and anomalous ones are not learnt.
import { join } from 'node:path';
import type { KernelEvent } from '../schemas/index.ts';
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
  /** threshold = mean + k·std of recent normal scores */
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

/** log1p(1000): counts are scaled so a thousand of one template in a window is about 1. */
const SCALE = Math.log1p(1000);
const REPLAY = 256;
const HISTORY = 200;
const BATCH = 32;

interface HostWin {
  window: number;
  counts: Record<number, number>;
  events: number;
}

interface AnomalyStateJson {
  hosts: [string, HostWin][];
  replay: number[][];
  history: number[];
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
  private replay: number[][] = [];
  /** scores of recent windows judged normal */
  private history: number[] = [];
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
    this.k = opts.k ?? 4;
    this.warmup = opts.warmup ?? 10;
    this.minThreshold = opts.minThreshold ?? 0.02;
    this.stepsPerBatch = opts.steps ?? 8;
    this.rng = new Rng(opts.seed ?? 11);
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
    for (const [i, c] of Object.entries(counts)) v[Number(i)] = Math.log1p(c) / SCALE;
    return v;
  }

  threshold(): number {
    const h = this.history;
    if (h.length === 0) return Number.POSITIVE_INFINITY;
    const mean = h.reduce((a, b) => a + b, 0) / h.length;
    const sd = Math.sqrt(h.reduce((a, b) => a + (b - mean) ** 2, 0) / h.length);
    return Math.max(this.minThreshold, mean + this.k * sd);
  }

  async onEvents(events: readonly KernelEvent[]): Promise<Proposal[]> {
    const closed: { host: string; start: number; v: number[]; events: number }[] = [];
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
            v: this.vector(s.counts),
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
    const closed: { host: string; start: number; v: number[]; events: number }[] = [];
    for (const [host, s] of this.hosts) {
      if (s.events === 0) continue;
      closed.push({ host, start: s.window * this.windowMs, v: this.vector(s.counts), events: s.events });
      s.counts = {};
      s.events = 0;
      s.window++;
    }
    return this.score(closed);
  }

  private async score(
    closed: { host: string; start: number; v: number[]; events: number }[],
  ): Promise<Proposal[]> {
    if (closed.length === 0) return [];
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
        this.history.push(score);
        if (this.history.length > HISTORY) this.history.shift();
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
    const batch = [...fresh];
    for (let i = 0; i < Math.min(this.replay.length, Math.max(0, BATCH - fresh.length)); i++) {
      batch.push(this.replay[this.rng.int(this.replay.length)]!);
    }
    for (const f of fresh) {
      if (this.replay.length < REPLAY) this.replay.push(f);
      else this.replay[this.rng.int(REPLAY)] = f;
    }
    // More steps while warming up: the first windows teach what normal looks like.
    const steps = this.windows <= this.warmup ? this.stepsPerBatch * 3 : this.stepsPerBatch;
    await trainSteps(this.tf, this.model, batch, batch, steps);
    this.steps += steps;
  }

  async save(dir: string): Promise<void> {
    await saveModel(this.model, dir, this.tf);
    const j: AnomalyStateJson = {
      hosts: [...this.hosts],
      replay: this.replay,
      history: this.history,
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
    this.replay = j.replay;
    this.history = j.history;
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
