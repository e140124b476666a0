// Backend selection: the order (default, VIRGO_TF_BACKEND), the first that starts wins, the ones
// passed over are reported with the reason, and each backend really computes.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { BackendError, backendOrder, DEFAULT_BACKENDS, selectBackend } from '../../learners/backend.ts';

const nativeInstalled = (() => {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
})();

describe('tfjs backend selection', () => {
  it('reads the order from VIRGO_TF_BACKEND, always closing it with cpu', () => {
    expect(backendOrder(undefined)).toEqual([...DEFAULT_BACKENDS]);
    expect(backendOrder('')).toEqual([...DEFAULT_BACKENDS]);
    expect(DEFAULT_BACKENDS.at(-1)).toBe('cpu');
    expect(backendOrder('wasm')).toEqual(['wasm', 'cpu']);
    expect(backendOrder(' tensorflow , wasm ')).toEqual(['tensorflow', 'wasm', 'cpu']);
    expect(backendOrder('cpu,wasm')).toEqual(['cpu', 'wasm']);
    expect(() => backendOrder('gpu')).toThrow(BackendError);
    expect(() => backendOrder('gpu')).toThrow(/unknown backend "gpu"/);
  });

  it('falls back past tfjs-node when it is not installed, and says why', async () => {
    const b = await selectBackend(['tensorflow', 'cpu']);
    if (nativeInstalled) {
      expect(b.name).toBe('tensorflow');
      return;
    }
    expect(b).toMatchObject({ name: 'cpu', package: '@tensorflow/tfjs', version: '4.22.0' });
    expect(b.skipped).toHaveLength(1);
    expect(b.skipped[0]!.name).toBe('tensorflow');
    expect(b.skipped[0]!.reason).toMatch(/tfjs-node/);
  });

  it('runs the wasm backend from node_modules (no network), then switches back to cpu', async () => {
    const w = await selectBackend(['wasm']);
    expect(w).toMatchObject({ name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', skipped: [] });
    expect(w.tf.getBackend()).toBe('wasm');
    // it computes: a matMul and one training step of a dense layer
    const tf = w.tf;
    expect(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync())).toEqual([11]);
    const m = tf.sequential();
    m.add(tf.layers.dense({ units: 1, inputShape: [2], kernelInitializer: 'zeros' }));
    m.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const loss = await m.trainOnBatch(tf.tensor2d([[1, 1]]), tf.tensor2d([[1]]));
    expect(loss).toBeCloseTo(1, 6);
    const c = await selectBackend(['cpu']);
    expect(c.tf.getBackend()).toBe('cpu');
  });

  it('fails with every reason when nothing in the order starts', async () => {
    await expect(selectBackend(['tensorflow'])).rejects.toThrow(
      nativeInstalled ? /^$/ : /no tensorflow.js backend started: tensorflow: .*tfjs-node/,
    );
  });
});
