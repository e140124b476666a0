// A linear model y = w·x + b trained by momentum SGD on mean squared error, in plain JS: the update
// tf.train.momentum applies to a one-unit Dense layer compiled with meanSquaredError
// (accumulation = m·accumulation + gradient; value = value − lr·accumulation), computed in float64
// and kept in float32 like the tfjs variables, so a saved and loaded model is the same model. For a
// model of a handful of weights tfjs costs ~0.5 ms per call however few the numbers (its op
// dispatch, not arithmetic); this costs microseconds per step, so a learner can take every step
// its window asks for. The tfjs LayersModel stays the saved form: `writeTo` puts the weights and
// the optimizer's accumulations (and step count) into it before a save, `readFrom` takes them from
// a loaded one, so snapshots move between this and a tfjs-trained model unchanged.
import type * as tfjs from '@tensorflow/tfjs';
import type { Tf } from './types.ts';

export class LinearMomentum {
  readonly w: Float32Array;
  b = 0;
  private readonly aw: Float32Array;
  private ab = 0;
  /** optimizer steps taken (tfjs's `iter`) */
  iterations = 0;

  constructor(
    readonly inputs: number,
    readonly learningRate: number,
    readonly momentum: number,
  ) {
    this.w = new Float32Array(inputs);
    this.aw = new Float32Array(inputs);
  }

  predict(x: ArrayLike<number>): number {
    let y = this.b;
    for (let j = 0; j < this.inputs; j++) y += this.w[j]! * x[j]!;
    return y;
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
    for (let j = 0; j < d; j++) {
      this.aw[j] = m * this.aw[j]! + gw[j]!;
      this.w[j]! -= lr * this.aw[j]!;
    }
    this.ab = Math.fround(m * this.ab + gb);
    this.b = Math.fround(this.b - lr * this.ab);
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

  private readWeights(model: tfjs.LayersModel): void {
    const [k, b] = model.getWeights();
    if (!k || !b || k.size !== this.inputs || b.size !== 1)
      throw new Error(`expected a one-unit dense layer over ${this.inputs} inputs`);
    this.w.set(k.dataSync());
    this.b = Math.fround(b.dataSync()[0]!);
  }

  /** Takes the weights, accumulations and step count of `model` (kernel [inputs,1], bias [1]). */
  async readFrom(model: tfjs.LayersModel): Promise<void> {
    this.readWeights(model);
    const opt = await model.optimizer.getWeights();
    const iter = opt.find((o) => o.name === 'iter');
    this.iterations = iter ? iter.tensor.dataSync()[0]! : 0;
    const acc = opt.filter((o) => o.name !== 'iter');
    // in the order of the trainable weights (kernel, bias), as tfjs applies and saves them
    if (acc.length === 2 && acc[0]!.tensor.size === this.inputs && acc[1]!.tensor.size === 1) {
      this.aw.set(acc[0]!.tensor.dataSync());
      this.ab = Math.fround(acc[1]!.tensor.dataSync()[0]!);
    } else {
      this.aw.fill(0);
      this.ab = 0;
    }
  }

  /** Puts the weights, accumulations and step count into `model`, ready to be saved. */
  async writeTo(tf: Tf, model: tfjs.LayersModel): Promise<void> {
    const k = tf.tensor2d(Array.from(this.w), [this.inputs, 1]);
    const b = tf.tensor1d([this.b]);
    model.setWeights([k, b]);
    k.dispose();
    b.dispose();
    const [kv, bv] = model.trainableWeights;
    // setWeights replaces the accumulation variables without freeing the old ones: free them here
    for (const o of await model.optimizer.getWeights()) o.tensor.dispose();
    const given = [
      { name: 'iter', tensor: tf.scalar(this.iterations, 'int32') },
      { name: `${kv!.originalName}/momentum`, tensor: tf.tensor2d(Array.from(this.aw), [this.inputs, 1]) },
      { name: `${bv!.originalName}/momentum`, tensor: tf.tensor1d([this.ab]) },
    ];
    await model.optimizer.setWeights(given);
    for (const o of given) o.tensor.dispose();
  }
}
