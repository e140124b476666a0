// A linear model y = w·x + b trained by momentum SGD on mean squared error, in plain JS: the update
// tf.train.momentum applies to a one-unit Dense layer compiled with meanSquaredError
// (accumulation = m·accumulation + gradient; value = value − lr·accumulation), computed in float64
// and kept in float32 like the tfjs variables, so a saved and loaded model is the same model. The
// tfjs LayersModel stays the saved form (dense-unit.ts: the weights, the optimizer's accumulations
// and its step count move into and out of it).
import type * as tfjs from '@tensorflow/tfjs';
import { DenseUnit } from './dense-unit.ts';

export class LinearMomentum extends DenseUnit {
  constructor(
    inputs: number,
    readonly learningRate: number,
    readonly momentum: number,
  ) {
    super(inputs, ['momentum']);
  }

  predict(x: ArrayLike<number>): number {
    return this.linear(x);
  }

  /** One optimizer step on the batch (rows `xs`, targets `ys`); returns the batch's loss before it. */
  step(xs: readonly ArrayLike<number>[], ys: readonly number[]): number {
    const n = xs.length;
    if (n === 0) return Number.NaN;
    const d = this.inputs;
    const gw = new Float64Array(d);
    let gb = 0;
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const x = xs[i]!;
      const e = this.predict(x) - ys[i]!;
      loss += e * e;
      // d(mean of e²)/dŷ = 2e/n
      const g = (2 * e) / n;
      for (let j = 0; j < d; j++) gw[j]! += g * x[j]!;
      gb += g;
    }
    const m = this.momentum;
    const lr = this.learningRate;
    const a = this.slots[0]!;
    for (let j = 0; j < d; j++) {
      a.w[j] = m * a.w[j]! + gw[j]!;
      this.w[j]! -= lr * a.w[j]!;
    }
    a.b = Math.fround(m * a.b + gb);
    this.b = Math.fround(this.b - lr * a.b);
    this.iterations++;
    return loss / n;
  }

  /**
   * A model to train like `model` (a one-unit Dense layer compiled with tf.train.momentum and
   * meanSquaredError): its learning rate, momentum and current weights (a fresh model's optimizer
   * holds nothing else; `readFrom` takes a loaded one's accumulations too).
   */
  static of(model: tfjs.LayersModel): LinearMomentum {
    const c = model.optimizer.getConfig() as {
      learningRate?: number;
      momentum?: number;
      useNesterov?: boolean;
    };
    if (typeof c.learningRate !== 'number' || typeof c.momentum !== 'number' || c.useNesterov)
      throw new Error('expected a model compiled with tf.train.momentum (not Nesterov)');
    const [k] = model.getWeights();
    const lin = new LinearMomentum(k?.size ?? 0, c.learningRate, c.momentum);
    lin.readWeights(model);
    return lin;
  }
}
