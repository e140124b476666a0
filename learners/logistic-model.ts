// Logistic regression p = σ(w·x + b) trained by RMSProp on binary cross-entropy, in plain JS: the
// update tf.train.rmsprop (not centered) applies to a one-unit sigmoid Dense layer compiled with
// binaryCrossentropy. tfjs-layers clips p to [ε, 1 − ε] (ε = 1e-7) before the loss, so a saturated
// unit gets no gradient from that row; inside, d loss / d logit = p − y per row, averaged over the
// batch. Then rms = ρ·rms + (1 − ρ)·g², moment = μ·moment + lr·g / √(rms + ε_opt),
// value = value − moment. Computed in float64 and kept in float32 like the tfjs variables; the
// tfjs LayersModel stays the saved form (dense-unit.ts: weights, rms and moment slots, step count).
import type * as tfjs from '@tensorflow/tfjs';
import { DenseUnit } from './dense-unit.ts';

const CLIP = Math.fround(1e-7);
const CLIP_HIGH = Math.fround(1 - CLIP);

export class LogisticRmsprop extends DenseUnit {
  constructor(
    inputs: number,
    readonly learningRate: number,
    readonly decay: number,
    readonly momentum: number,
    readonly epsilon: number,
  ) {
    // tfjs's slot order: mean squares, then moments
    super(inputs, ['rms', 'momentum']);
  }

  predict(x: ArrayLike<number>): number {
    return Math.fround(1 / (1 + Math.exp(-this.linear(x))));
  }

  /** One optimizer step on the batch (rows `xs`, labels `ys` in {0, 1}). */
  step(xs: readonly ArrayLike<number>[], ys: readonly number[]): void {
    const n = xs.length;
    if (n === 0) return;
    const d = this.inputs;
    const gw = new Float64Array(d);
    let gb = 0;
    for (let i = 0; i < n; i++) {
      const x = xs[i]!;
      const p = this.predict(x);
      if (p < CLIP || p > CLIP_HIGH) continue;
      const g = (p - ys[i]!) / n;
      for (let j = 0; j < d; j++) gw[j]! += g * x[j]!;
      gb += g;
    }
    const { learningRate: lr, decay, momentum, epsilon } = this;
    const rms = this.slots[0]!;
    const mom = this.slots[1]!;
    for (let j = 0; j < d; j++) {
      rms.w[j] = decay * rms.w[j]! + (1 - decay) * gw[j]! * gw[j]!;
      mom.w[j] = momentum * mom.w[j]! + (lr * gw[j]!) / Math.sqrt(rms.w[j]! + epsilon);
      this.w[j]! -= mom.w[j]!;
    }
    rms.b = Math.fround(decay * rms.b + (1 - decay) * gb * gb);
    mom.b = Math.fround(momentum * mom.b + (lr * gb) / Math.sqrt(rms.b + epsilon));
    this.b = Math.fround(this.b - mom.b);
    this.iterations++;
  }

  /**
   * A model to train like `model` (a one-unit sigmoid Dense layer compiled with tf.train.rmsprop,
   * not centered, and binaryCrossentropy) with its current weights; `readFrom` takes a loaded
   * model's optimizer slots too. tfjs fixes a null epsilon to the backend's when the optimizer is
   * made, so the config holds a number; `backendEpsilon` stands in if it does not.
   */
  static of(model: tfjs.LayersModel, backendEpsilon: number): LogisticRmsprop {
    const c = model.optimizer.getConfig() as {
      learningRate?: number;
      decay?: number;
      momentum?: number;
      epsilon?: number | null;
      centered?: boolean;
    };
    if (typeof c.learningRate !== 'number' || c.centered || typeof c.decay !== 'number')
      throw new Error('expected a model compiled with tf.train.rmsprop (not centered)');
    const [k] = model.getWeights();
    const m = new LogisticRmsprop(
      k?.size ?? 0,
      c.learningRate,
      c.decay,
      c.momentum ?? 0,
      typeof c.epsilon === 'number' ? c.epsilon : backendEpsilon,
    );
    m.readWeights(model);
    return m;
  }
}
