// The plain-JS logistic regression of the netbw learner takes the steps tfjs's trainOnBatch takes
// (RMSProp on binary cross-entropy through one sigmoid unit, tfjs-layers' clipping included) and
// moves its state in and out of the tfjs model it is saved as, both ways: a state saved by the
// tfjs-trained learner before it is read on, and its own state trains on in tfjs as it would.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';
import { LogisticRmsprop } from '../../learners/logistic-model.ts';
import { NetbwLearner } from '../../learners/netbw.ts';
import { loadModel, predictRows, saveModel, trainSteps } from '../../learners/tf-util.ts';
import type { Tf } from '../../learners/types.ts';
import { Rng } from '../../learners/window.ts';

let tf: Tf;
const dir = mkdtempSync(join(tmpdir(), 'logistic-model-'));
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOL = 1e-5;
const build = () => NetbwLearner.buildModel(tf, 0.05, 7);
const unitOf = (m: ReturnType<typeof build>) => LogisticRmsprop.of(m, tf.backend().epsilon());

/** Features like the learner's (log counts, many zero) and labels that depend on them. */
function examples(seed: number, d: number, maxCount = 50) {
  const rng = new Rng(seed);
  return (n: number) =>
    Array.from({ length: n }, () => {
      const x = Array.from({ length: d }, () => (rng.next() < 0.5 ? Math.log1p(rng.next() * maxCount) : 0));
      return { x, y: x[0]! + x[1]! > 3 ? 1 : 0 };
    });
}

function maxDiff(a: readonly number[], b: readonly number[]): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
}

/** Kernel, bias and every optimizer slot of a tfjs model, flat. */
async function stateOf(m: ReturnType<typeof build>): Promise<number[]> {
  const w = m.getWeights().flatMap((t) => [...t.dataSync()]);
  const opt = (await m.optimizer.getWeights()).filter((o) => o.name !== 'iter');
  return [...w, ...opt.flatMap((o) => [...o.tensor.dataSync()])];
}

describe('LogisticRmsprop', () => {
  it('takes the steps tfjs takes: weights and RMSProp slots within 1e-5 after 120 steps', async () => {
    const viaTf = build();
    const lin = unitOf(build());
    const gen = examples(9, lin.inputs);
    const probe = gen(20).map((e) => e.x);
    const untrained = probe.map((x) => lin.predict(x));
    for (let g = 0; g < 30; g++) {
      const batch = gen(48);
      const xs = batch.map((b) => b.x);
      const ys = batch.map((b) => b.y);
      await trainSteps(
        tf,
        viaTf,
        xs,
        ys.map((y) => [y]),
        4,
      );
      for (let i = 0; i < 4; i++) lin.step(xs, ys);
    }
    const ours = probe.map((x) => lin.predict(x));
    // it learnt something, and what tfjs learnt
    expect(maxDiff(ours, untrained)).toBeGreaterThan(0.05);
    expect(
      maxDiff(
        ours,
        predictRows(tf, viaTf, probe).map((r) => r[0]!),
      ),
    ).toBeLessThan(TOL);
    const written = build();
    await lin.writeTo(tf, written);
    expect(maxDiff(await stateOf(written), await stateOf(viaTf))).toBeLessThan(TOL);
    expect(lin.iterations).toBe(120);
  });

  it("saturated rows give no gradient, as tfjs-layers' clipping of p to [1e-7, 1 - 1e-7] makes it", async () => {
    // huge counts: the unit saturates on many rows as it learns
    const viaTf = build();
    const lin = unitOf(build());
    const gen = examples(11, lin.inputs, 1e9);
    let saturated = 0;
    for (let g = 0; g < 120; g++) {
      const batch = gen(48);
      const xs = batch.map((b) => b.x);
      const ys = batch.map((b) => b.y);
      saturated += xs.filter((x) => {
        const p = lin.predict(x);
        return p < 1e-7 || p > 1 - 1e-7;
      }).length;
      await trainSteps(
        tf,
        viaTf,
        xs,
        ys.map((y) => [y]),
        1,
      );
      lin.step(xs, ys);
    }
    expect(saturated).toBeGreaterThan(100);
    const written = build();
    await lin.writeTo(tf, written);
    const ours = await stateOf(written);
    const theirs = await stateOf(viaTf);
    expect(maxDiff(ours, theirs) / Math.max(1, ...theirs.map(Math.abs))).toBeLessThan(TOL);
    written.dispose();
    viaTf.dispose();
  });

  it("reads a tfjs-trained model's state (as the learner saved it before) and trains on as tfjs does", async () => {
    const viaTf = build();
    const gen = examples(4, 8);
    for (let g = 0; g < 10; g++) {
      const batch = gen(48);
      await trainSteps(
        tf,
        viaTf,
        batch.map((b) => b.x),
        batch.map((b) => [b.y]),
        4,
      );
    }
    await saveModel(viaTf, dir, tf);
    const loaded = await loadModel(tf, dir);
    const lin = unitOf(loaded);
    await lin.readFrom(loaded);
    expect(lin.iterations).toBe(40);
    const batch = gen(48);
    for (let i = 0; i < 4; i++)
      lin.step(
        batch.map((b) => b.x),
        batch.map((b) => b.y),
      );
    await trainSteps(
      tf,
      viaTf,
      batch.map((b) => b.x),
      batch.map((b) => [b.y]),
      4,
    );
    // the moments carried over: without them the steps would differ by far more
    const written = build();
    await lin.writeTo(tf, written);
    expect(maxDiff(await stateOf(written), await stateOf(viaTf))).toBeLessThan(TOL);
    loaded.dispose();
  });

  it('writes its state into the tfjs model, saved and loaded exactly, and tfjs trains on from it', async () => {
    const lin = unitOf(build());
    const gen = examples(5, lin.inputs);
    for (let g = 0; g < 15; g++) {
      const batch = gen(48);
      lin.step(
        batch.map((b) => b.x),
        batch.map((b) => b.y),
      );
    }
    const model = build();
    await lin.writeTo(tf, model);
    // a second write frees what the first put in the optimizer
    const after = tf.memory().numTensors;
    await lin.writeTo(tf, model);
    expect(tf.memory().numTensors).toBe(after);
    await saveModel(model, dir, tf);
    const loaded = await loadModel(tf, dir);
    const back = unitOf(loaded);
    await back.readFrom(loaded);
    expect(back.iterations).toBe(15);
    const probe = gen(20).map((e) => e.x);
    expect(probe.map((x) => back.predict(x))).toEqual(probe.map((x) => lin.predict(x)));
    const batch = gen(48);
    const xs = batch.map((b) => b.x);
    const ys = batch.map((b) => b.y);
    back.step(xs, ys);
    lin.step(xs, ys);
    // exact: the round trip through the saved form lost nothing
    expect(probe.map((x) => back.predict(x))).toEqual(probe.map((x) => lin.predict(x)));
    await trainSteps(
      tf,
      loaded,
      xs,
      ys.map((y) => [y]),
      1,
    );
    expect(
      maxDiff(
        probe.map((x) => lin.predict(x)),
        predictRows(tf, loaded, probe).map((r) => r[0]!),
      ),
    ).toBeLessThan(TOL);
    model.dispose();
    loaded.dispose();
  });

  it('refuses a model compiled with another optimizer', () => {
    const m = tf.sequential();
    m.add(tf.layers.dense({ units: 1, inputShape: [3], activation: 'sigmoid' }));
    m.compile({ optimizer: tf.train.sgd(0.1), loss: 'binaryCrossentropy' });
    expect(() => unitOf(m)).toThrow(/rmsprop/);
    m.dispose();
  });
});
