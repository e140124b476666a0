// One Dense unit (kernel [inputs, 1], bias [1]) whose training runs in plain JS while a tfjs
// LayersModel stays its saved form. For a model of a handful of weights tfjs costs ~0.5 ms per
// call however few the numbers (its op dispatch, not arithmetic); plain JS costs microseconds per
// step. The weights and the optimizer's slots are kept in float32 like the tfjs variables, and
// `writeTo` / `readFrom` move them (and the step count) into and out of the model in the order
// tfjs saves them, so snapshots move between a plain-JS and a tfjs-trained model unchanged.
// linear-model.ts (momentum SGD, the load learner) and logistic-model.ts (RMSProp, netbw) are the
// optimizers; `SavedUnit` is the pair a learner holds, with its `LearnerState.model` hook.
import type * as tfjs from '@tensorflow/tfjs';
import type { Tf } from './types.ts';

/** One optimizer slot of the unit (tfjs keeps one variable per weight: kernel and bias). */
export interface Slot {
  readonly w: Float32Array;
  b: number;
}

export abstract class DenseUnit {
  readonly w: Float32Array;
  b = 0;
  /** optimizer steps taken (tfjs's `iter`) */
  iterations = 0;
  /** the optimizer's slots, in the order its getWeights lists them */
  protected readonly slots: readonly Slot[];

  /** `slotNames`: the suffixes tfjs names the slots by (`<weight>/<suffix>`), in its order */
  constructor(
    readonly inputs: number,
    private readonly slotNames: readonly string[],
  ) {
    this.w = new Float32Array(inputs);
    this.slots = slotNames.map(() => ({ w: new Float32Array(inputs), b: 0 }));
  }

  /** One optimizer step on the batch (rows `xs`, targets `ys`). */
  abstract step(xs: readonly ArrayLike<number>[], ys: readonly number[]): unknown;

  /** `steps` optimizer steps on one batch of examples (a learner's training round). */
  train(batch: readonly { x: ArrayLike<number>; y: number }[], steps: number): void {
    const xs = batch.map((b) => b.x);
    const ys = batch.map((b) => b.y);
    for (let i = 0; i < steps; i++) this.step(xs, ys);
  }

  /** w·x + b */
  protected linear(x: ArrayLike<number>): number {
    let y = this.b;
    for (let j = 0; j < this.inputs; j++) y += this.w[j]! * x[j]!;
    return y;
  }

  protected readWeights(model: tfjs.LayersModel): void {
    const [k, b] = model.getWeights();
    if (!k || !b || k.size !== this.inputs || b.size !== 1)
      throw new Error(`expected a one-unit dense layer over ${this.inputs} inputs`);
    this.w.set(k.dataSync());
    this.b = Math.fround(b.dataSync()[0]!);
  }

  /** Takes the weights, optimizer slots and step count of `model`; a model that never took a
   * step holds no slots, which then start at zero as tfjs's would. */
  async readFrom(model: tfjs.LayersModel): Promise<void> {
    this.readWeights(model);
    const opt = await model.optimizer.getWeights();
    const iter = opt.find((o) => o.name === 'iter');
    this.iterations = iter ? iter.tensor.dataSync()[0]! : 0;
    const s = opt.filter((o) => o.name !== 'iter');
    // per slot, the kernel's then the bias's
    const fits =
      s.length === 2 * this.slots.length &&
      this.slots.every((_, i) => s[2 * i]!.tensor.size === this.inputs && s[2 * i + 1]!.tensor.size === 1);
    this.slots.forEach((slot, i) => {
      if (fits) {
        slot.w.set(s[2 * i]!.tensor.dataSync());
        slot.b = Math.fround(s[2 * i + 1]!.tensor.dataSync()[0]!);
      } else {
        slot.w.fill(0);
        slot.b = 0;
      }
    });
  }

  /** Puts the weights, optimizer slots and step count into `model`, ready to be saved. */
  async writeTo(tf: Tf, model: tfjs.LayersModel): Promise<void> {
    const k = tf.tensor2d(this.w, [this.inputs, 1]);
    const b = tf.tensor1d([this.b]);
    model.setWeights([k, b]);
    k.dispose();
    b.dispose();
    const [kv, bv] = model.trainableWeights;
    // setWeights replaces the slot variables without freeing the old ones: free them here
    for (const o of await model.optimizer.getWeights()) o.tensor.dispose();
    const given: { name: string; tensor: tfjs.Tensor }[] = [
      { name: 'iter', tensor: tf.scalar(this.iterations, 'int32') },
    ];
    this.slots.forEach((slot, i) => {
      const suffix = this.slotNames[i]!;
      given.push(
        { name: `${kv!.originalName}/${suffix}`, tensor: tf.tensor2d(slot.w, [this.inputs, 1]) },
        { name: `${bv!.originalName}/${suffix}`, tensor: tf.tensor1d([slot.b]) },
      );
    });
    await model.optimizer.setWeights(given);
    for (const o of given) o.tensor.dispose();
  }
}

/**
 * A learner's unit and the tfjs model it is saved as. The plain-JS unit is the truth: its state is
 * written into the model before the model is saved or handed on (`get`), and a loaded model is
 * read into a new unit (`set`), so a model that fails to read leaves both as they were.
 */
export class SavedUnit<U extends DenseUnit> {
  unit: U;

  constructor(
    private readonly tf: Tf,
    public model: tfjs.LayersModel,
    /** a unit that trains like `model` (its optimizer's settings), with its current weights */
    private readonly of: (model: tfjs.LayersModel) => U,
  ) {
    this.unit = of(model);
  }

  /** The model with the unit's state written into it, to save or hand on (`LearnerState.model.get`). */
  async get(): Promise<tfjs.LayersModel> {
    await this.unit.writeTo(this.tf, this.model);
    return this.model;
  }

  /** Takes a loaded model and its state (`LearnerState.model.set`). */
  async set(m: tfjs.LayersModel): Promise<void> {
    const unit = this.of(m);
    await unit.readFrom(m);
    this.model.dispose();
    this.model = m;
    this.unit = unit;
  }

  dispose(): void {
    this.model.dispose();
  }
}
