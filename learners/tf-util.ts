// Small helpers around tfjs LayersModels: batched training and inference from plain arrays, and
// save/load through the directory IOHandler. One tfjs call per batch, never per event: on the
// pure-JS backend each call costs about a millisecond however small the tensors are.
import { join } from 'node:path';
import type * as tfjs from '@tensorflow/tfjs';
import { fileIO } from './model-io.ts';
import type { Tf } from './types.ts';

export type Model = tfjs.LayersModel;

/** `steps` optimiser steps on one batch; returns the last loss. */
export async function trainSteps(
  tf: Tf,
  model: Model,
  xs: number[][],
  ys: number[][],
  steps: number,
): Promise<number> {
  if (xs.length === 0 || steps <= 0) return Number.NaN;
  const x = tf.tensor2d(xs);
  const y = tf.tensor2d(ys);
  let loss = Number.NaN;
  try {
    for (let i = 0; i < steps; i++) {
      const l = await model.trainOnBatch(x, y);
      loss = Array.isArray(l) ? (l[0] as number) : (l as number);
    }
  } finally {
    x.dispose();
    y.dispose();
  }
  return loss;
}

/** Rows in, rows out, in one predict call. */
export function predictRows(tf: Tf, model: Model, xs: number[][]): number[][] {
  if (xs.length === 0) return [];
  return tf.tidy(() => {
    const out = model.predict(tf.tensor2d(xs)) as tfjs.Tensor2D;
    return out.arraySync();
  });
}

/** Saves with the optimiser's slots (RMSProp/momentum restore exactly; Adam's do not, see README). */
export async function saveModel(model: Model, dir: string, tf: Tf): Promise<void> {
  await model.save(fileIO(tf, join(dir, 'model')), { includeOptimizer: true });
}

export async function loadModel(tf: Tf, dir: string): Promise<Model> {
  return tf.loadLayersModel(fileIO(tf, join(dir, 'model')));
}

export function requireTf(tf: Tf | undefined, learner: string): Tf {
  if (!tf) throw new Error(`learner ${learner} needs tfjs but the host did not load a backend`);
  return tf;
}
