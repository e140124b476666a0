// The mix model behind kernel.anomaly: a small tfjs autoencoder (dims → hidden → dims) over the
// composition of a host-window in the templates that host already knows. The count model judges
// each template on its own; this one sees what no per-template count can: a window whose known
// lines come in an unusual proportion, or that lacks lines that usually come together (a
// heartbeat gone quiet while the rest goes on). New templates are left out of its input, since
// the count model already judges novelty, so the two do not count the same evidence twice.
//
// Its reconstruction error becomes nats like every other piece of evidence: the log error's
// robust z-score against recent errors of windows judged normal (median, 1.4826·MAD), as a
// one-sided normal tail. Windows are scored before the model trains on them (prequential); the
// ones judged anomalous are not learnt. One fleet-wide model: hosts differ in their template
// mix, and the inputs carry the host's own templates.
import { ReplayBuffer } from './replay-buffer.ts';
import { normalSurprise } from './tail.ts';
import { type Model, predictRows, trainSteps } from './tf-util.ts';
import type { Tf } from './types.ts';
import { fnv1a, type Rng } from './window.ts';

export interface MixOptions {
  dims: number;
  hidden: number;
  learningRate: number;
  seed: number;
  /** optimiser steps per group of windows learnt */
  steps: number;
  /** normal windows whose errors must be known before the model gives evidence */
  minHistory: number;
}

export const MIX_DEFAULTS: MixOptions = {
  dims: 64,
  hidden: 8,
  learningRate: 0.01,
  seed: 11,
  steps: 4,
  minHistory: 50,
};

const REPLAY = 256;
const HISTORY = 500;
const BATCH = 32;

export interface MixScore {
  /** squared reconstruction error of the unit-length vector */
  error: number;
  z: number;
  /** nats; 0 until minHistory normal windows were seen */
  surprise: number;
  /** slot → reconstruction minus input (positive: expected more of that slot's template) */
  residual: number[];
}

export interface MixJson {
  replay: number[][];
  history: number[];
  steps: number;
}

export class MixModel {
  private replay = new ReplayBuffer<number[]>(REPLAY);
  /** ln error of recent windows judged normal */
  private history: number[] = [];
  steps = 0;

  constructor(
    private readonly tf: Tf,
    public model: Model,
    readonly opts: MixOptions = MIX_DEFAULTS,
  ) {}

  static build(tf: Tf, o: MixOptions = MIX_DEFAULTS): Model {
    const m = tf.sequential();
    m.add(
      tf.layers.dense({
        units: o.hidden,
        inputShape: [o.dims],
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: o.seed }),
      }),
    );
    m.add(
      tf.layers.dense({
        units: o.dims,
        activation: 'linear',
        kernelInitializer: tf.initializers.glorotUniform({ seed: o.seed + 1 }),
      }),
    );
    m.compile({ optimizer: tf.train.rmsprop(o.learningRate), loss: 'meanSquaredError' });
    return m;
  }

  slot(templateId: string): number {
    return fnv1a(templateId) % this.opts.dims;
  }

  /** log1p counts of the known templates, hashed into slots, unit length; null when none is known. */
  vector(counts: Iterable<[string, number]>, known: (id: string) => boolean): number[] | null {
    const v = new Array<number>(this.opts.dims).fill(0);
    let any = false;
    for (const [id, n] of counts) {
      if (!known(id)) continue;
      v[this.slot(id)]! += Math.log1p(n);
      any = true;
    }
    if (!any) return null;
    const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    return v.map((x) => x / norm);
  }

  /** One predict call for the whole group. */
  score(vectors: (number[] | null)[]): (MixScore | null)[] {
    const rows = vectors.filter((v): v is number[] => v !== null);
    const rec = predictRows(this.tf, this.model, rows);
    const { med, scale } = this.spread();
    let k = 0;
    return vectors.map((v) => {
      if (!v) return null;
      const r = rec[k++]!;
      let error = 0;
      const residual = new Array<number>(v.length);
      for (let j = 0; j < v.length; j++) {
        residual[j] = r[j]! - v[j]!;
        error += residual[j]! ** 2;
      }
      const ready = this.history.length >= this.opts.minHistory;
      const z = ready ? (Math.log(Math.max(error, 1e-12)) - med) / scale : 0;
      return { error, z, surprise: ready ? normalSurprise(z) : 0, residual };
    });
  }

  private spread(): { med: number; scale: number } {
    if (this.history.length === 0) return { med: 0, scale: 1 };
    const s = [...this.history].sort((a, b) => a - b);
    const med = s[Math.floor(s.length / 2)]!;
    const dev = s.map((x) => Math.abs(x - med)).sort((a, b) => a - b);
    // floor: a model that reconstructs everything alike must not turn noise into many sigmas
    return { med, scale: Math.max(0.25, 1.4826 * dev[Math.floor(dev.length / 2)]!) };
  }

  /** Learns the windows judged normal, with their (pre-training) errors joining the history. */
  async learn(fresh: { v: number[]; error: number }[], rng: Rng): Promise<void> {
    if (fresh.length === 0) return;
    for (const f of fresh) {
      this.history.push(Math.log(Math.max(f.error, 1e-12)));
      if (this.history.length > HISTORY) this.history.shift();
    }
    const vs = fresh.map((f) => f.v);
    const batch = this.replay.mix(vs, BATCH, rng);
    this.replay.add(vs, rng);
    await trainSteps(this.tf, this.model, batch, batch, this.opts.steps);
    this.steps += this.opts.steps;
  }

  toJSON(): MixJson {
    return { replay: this.replay.toJSON(), history: this.history, steps: this.steps };
  }

  restore(j: MixJson, model: Model): void {
    this.model.dispose();
    this.model = model;
    this.replay = ReplayBuffer.fromJSON(REPLAY, j.replay);
    this.history = j.history;
    this.steps = j.steps;
  }

  dispose(): void {
    this.model.dispose();
  }
}
