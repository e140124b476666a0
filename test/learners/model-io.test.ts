// tfjs file IO: the directory IOHandler (and the file:// route it registers) saves a model as
// model.json + weights.bin, loads it back with identical predictions, and fails with the path.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';
import { fileIO, ModelFileError } from '../../learners/model-io.ts';
import { currentSnapshot, writeSnapshot } from '../../learners/snapshot.ts';
import type { Tf } from '../../learners/types.ts';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});

function model() {
  const m = tf.sequential();
  m.add(
    tf.layers.dense({
      units: 3,
      inputShape: [4],
      activation: 'tanh',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
    }),
  );
  m.add(tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.compile({ optimizer: tf.train.rmsprop(0.01), loss: 'meanSquaredError' });
  return m;
}

const X = [
  [0.1, 0.2, 0.3, 0.4],
  [1, -1, 0.5, 0],
];

describe('model file IO', () => {
  it('saves to a directory in the tfjs-node layout and loads identical predictions and optimiser', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'virgo-model-')), 'm');
    const m = model();
    await m.trainOnBatch(
      tf.tensor2d(X),
      tf.tensor2d([
        [1, 0],
        [0, 1],
      ]),
    );
    await m.save(fileIO(tf, dir), { includeOptimizer: true });
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    expect(json.weightsManifest[0].paths).toEqual(['./weights.bin']);
    expect(json.format).toBe('layers-model');
    expect(json.trainingConfig.optimizer_config.class_name).toBe('RMSProp');
    expect(existsSync(join(dir, 'weights.bin'))).toBe(true);
    const back = await tf.loadLayersModel(fileIO(tf, dir));
    const a = (m.predict(tf.tensor2d(X)) as ReturnType<typeof tf.tensor2d>).arraySync();
    const b = (back.predict(tf.tensor2d(X)) as ReturnType<typeof tf.tensor2d>).arraySync();
    expect(b).toEqual(a);
    // both keep training identically (the optimiser's slots came back too)
    await m.trainOnBatch(
      tf.tensor2d(X),
      tf.tensor2d([
        [0, 1],
        [1, 0],
      ]),
    );
    await back.trainOnBatch(
      tf.tensor2d(X),
      tf.tensor2d([
        [0, 1],
        [1, 0],
      ]),
    );
    expect((back.predict(tf.tensor2d(X)) as ReturnType<typeof tf.tensor2d>).arraySync()).toEqual(
      (m.predict(tf.tensor2d(X)) as ReturnType<typeof tf.tensor2d>).arraySync(),
    );
  });

  it('answers file:// URLs like tfjs-node does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-model-'));
    const m = model();
    await m.save(`file://${dir}`);
    const back = await tf.loadLayersModel(`file://${dir}/model.json`);
    expect((back.predict(tf.tensor2d(X)) as ReturnType<typeof tf.tensor2d>).arraySync()).toEqual(
      (m.predict(tf.tensor2d(X)) as ReturnType<typeof tf.tensor2d>).arraySync(),
    );
  });

  it('names the file when there is no model to load', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-model-'));
    await expect(tf.loadLayersModel(fileIO(tf, dir))).rejects.toThrow(ModelFileError);
    await expect(tf.loadLayersModel(fileIO(tf, dir))).rejects.toThrow(join(dir, 'model.json'));
  });
});

describe('snapshots', () => {
  it('a failed save leaves the previous snapshot current', async () => {
    const base = mkdtempSync(join(tmpdir(), 'virgo-snap-'));
    const first = await writeSnapshot(base, async () => {});
    await expect(
      writeSnapshot(base, async () => {
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(currentSnapshot(base)).toBe(first);
    const second = await writeSnapshot(base, async () => {});
    const third = await writeSnapshot(base, async () => {});
    expect(currentSnapshot(base)).toBe(third);
    expect(existsSync(second)).toBe(true); // the previous one stays as a fallback
    expect(existsSync(first)).toBe(false);
  });
});
