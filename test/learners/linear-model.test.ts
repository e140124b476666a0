// The plain-JS linear regression takes the steps tfjs's trainOnBatch takes (momentum SGD on mean
// squared error) and moves its state in and out of the tfjs model it is saved as.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';
import { LinearMomentum } from '../../learners/linear-model.ts';
import { LoadLearner } from '../../learners/load.ts';
import type { Tf } from '../../learners/types.ts';
import { Rng } from '../../learners/window.ts';
import { ev } from '../helpers/events.ts';

let tf: Tf;
const dir = mkdtempSync(join(tmpdir(), 'linear-model-'));
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function weightsOf(m: ReturnType<typeof LoadLearner.buildModel>): number[] {
  const [k, b] = m.getWeights();
  return [...k!.dataSync(), b!.dataSync()[0]!];
}

describe('LinearMomentum', () => {
  it('takes the steps tfjs takes, to float32 precision', async () => {
    const model = LoadLearner.buildModel(tf, 0.05, 13);
    const lin = LinearMomentum.of(model);
    const rng = new Rng(3);
    for (let s = 0; s < 120; s++) {
      const xs = Array.from({ length: 1 + (s % 30) }, () => Array.from({ length: 5 }, () => rng.next()));
      const ys = xs.map((x) => 0.02 + 0.3 * x[0]! + 0.08 * x[1]! + rng.next() * 0.01);
      const x = tf.tensor2d(xs);
      const y = tf.tensor2d(ys.map((v) => [v]));
      await model.trainOnBatch(x, y);
      x.dispose();
      y.dispose();
      lin.step(xs, ys);
    }
    const t = weightsOf(model);
    const j = [...lin.w, lin.b];
    for (let i = 0; i < 6; i++)
      expect(Math.abs(t[i]! - j[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(j[i]!)));
    expect(lin.iterations).toBe(120);
  });

  it('writes its state into the tfjs model, which then trains on exactly as it would', async () => {
    const lin = LinearMomentum.of(LoadLearner.buildModel(tf, 0.05, 13));
    for (let s = 0; s < 20; s++) lin.step([[0.1 * s, 0.2, 0.3, 0.4, 0.5]], [0.3]);
    const model = LoadLearner.buildModel(tf, 0.05, 99);
    const before = tf.memory().numTensors;
    await lin.writeTo(tf, model);
    await lin.writeTo(tf, model);
    // the second write frees what the first put in the optimizer
    const after = tf.memory().numTensors;
    await lin.writeTo(tf, model);
    expect(tf.memory().numTensors).toBe(after);
    expect(after).toBeGreaterThanOrEqual(before);
    const back = LinearMomentum.of(model);
    await back.readFrom(model);
    expect([...back.w, back.b, back.iterations]).toEqual([...lin.w, lin.b, 20]);
    // momentum carries over: tfjs's next step from the written state is the JS model's next step
    const x = tf.tensor2d([[1, 0.5, 0.25, 0, 1]]);
    const y = tf.tensor2d([[0.7]]);
    await model.trainOnBatch(x, y);
    lin.step([[1, 0.5, 0.25, 0, 1]], [0.7]);
    const t = weightsOf(model);
    const j = [...lin.w, lin.b];
    for (let i = 0; i < 6; i++) expect(Math.abs(t[i]! - j[i]!)).toBeLessThan(1e-5);
    x.dispose();
    y.dispose();
  });

  it('a load learner saved and loaded predicts and learns on as the one that went on', async () => {
    const mk = () => new LoadLearner(tf, LoadLearner.buildModel(tf, 0.05, 13), { warmup: 4 });
    const a = mk();
    const rng = new Rng(8);
    let t = Date.UTC(2024, 0, 1);
    const batch = () =>
      ['n1', 'n2', 'n3'].map((n) => {
        t += 4_000;
        const load = 1 + rng.next() * 3;
        return ev(
          n,
          t,
          `virgo_load: node=${n} load=${load.toFixed(2)} runq=2 exec_ms=${(20 + 40 * load).toFixed(1)}`,
        );
      });
    for (let i = 0; i < 30; i++) await a.onEvents(batch());
    await a.save(dir);
    const b = mk();
    await b.load(dir);
    const next = batch();
    const pa = await a.onEvents(next);
    const pb = await b.onEvents(next);
    expect(pb.map((p) => p.value)).toEqual(pa.map((p) => p.value));
    expect(b.stats()).toEqual(a.stats());
    a.dispose();
    b.dispose();
  });
});
