// A tf.io IOHandler that saves and loads model artifacts in a directory, in the layout tfjs-node's
// `file://` handler and the Python converter use (model.json + weights.bin, weightsManifest), so
// models move between them. Pure @tensorflow/tfjs has no file handler in Node; this is it.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as tfjs from '@tensorflow/tfjs';
import type { Tf } from './types.ts';

type ModelArtifacts = tfjs.io.ModelArtifacts;
type ModelJSON = tfjs.io.ModelJSON;

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

export class ModelFileError extends Error {
  override readonly name = 'ModelFileError';
}

function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** `model.save(fileIO(tf, dir))` / `tf.loadLayersModel(fileIO(tf, dir))`. */
export function fileIO(tf: Tf, dir: string): tfjs.io.IOHandler {
  const root = resolve(dir);
  return {
    async save(artifacts: ModelArtifacts): Promise<tfjs.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new ModelFileError('binary model topologies are not supported; save a LayersModel');
      }
      mkdirSync(root, { recursive: true });
      const weights = artifacts.weightData
        ? new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData))
        : new Uint8Array(0);
      writeAtomic(join(root, WEIGHTS_BIN), weights);
      const json: ModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
        ...(artifacts.signature ? { signature: artifacts.signature } : {}),
      };
      // model.json last: a reader never sees a manifest whose weights are not yet on disk.
      writeAtomic(join(root, MODEL_JSON), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<ModelArtifacts> {
      const path = join(root, MODEL_JSON);
      let json: ModelJSON;
      try {
        json = JSON.parse(readFileSync(path, 'utf8')) as ModelJSON;
      } catch (err) {
        throw new ModelFileError(`cannot read model ${path}: ${(err as Error).message}`);
      }
      if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
        throw new ModelFileError(`${path} is not a tfjs model.json (no modelTopology/weightsManifest)`);
      }
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tfjs.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const b = readFileSync(join(root, p));
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
          }
        }
        return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
      });
    },
  };
}

/** A model with its optimiser slots as one JSON-able value (the learner-state changelog's). */
export interface ModelBlob {
  model: ModelJSON;
  /** base64 of the weights (model's, then optimiser's), in weightsManifest order */
  weights: string;
}

export async function modelToBlob(tf: Tf, model: tfjs.LayersModel): Promise<ModelBlob> {
  let blob: ModelBlob | undefined;
  await model.save(
    {
      async save(artifacts: ModelArtifacts): Promise<tfjs.io.SaveResult> {
        if (artifacts.modelTopology instanceof ArrayBuffer)
          throw new ModelFileError('binary model topologies are not supported; save a LayersModel');
        const weights = artifacts.weightData
          ? Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData))
          : Buffer.alloc(0);
        blob = {
          model: {
            modelTopology: artifacts.modelTopology ?? {},
            format: artifacts.format ?? 'layers-model',
            generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
            convertedBy: artifacts.convertedBy ?? null,
            weightsManifest: [{ paths: [], weights: artifacts.weightSpecs ?? [] }],
            ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
          },
          weights: weights.toString('base64'),
        };
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
      },
    },
    { includeOptimizer: true },
  );
  if (!blob) throw new ModelFileError('the model saved nothing');
  return blob;
}

export function modelFromBlob(tf: Tf, blob: ModelBlob): Promise<tfjs.LayersModel> {
  return tf.loadLayersModel({
    load: () =>
      tf.io.getModelArtifactsForJSON(blob.model, async (manifest) => {
        const b = Buffer.from(blob.weights, 'base64');
        return [
          manifest.flatMap((g) => g.weights),
          b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer,
        ];
      }),
  });
}

let routed = false;

/** Makes `model.save('file:///dir')` and `tf.loadLayersModel('file:///dir')` work on pure tfjs. */
export function registerFileRouter(tf: Tf): void {
  if (routed) return;
  routed = true;
  // tfjs's registry skips routers that answer null; its type just does not say so.
  const route = (url: string | string[]): tfjs.io.IOHandler => {
    const u = Array.isArray(url) ? url[0] : url;
    if (typeof u !== 'string' || !u.startsWith('file://')) return null as unknown as tfjs.io.IOHandler;
    // tfjs-node style: file:///dir or file://dir/model.json
    const p = u.slice('file://'.length).replace(/\/model\.json$/, '');
    return fileIO(tf, p);
  };
  tf.io.registerSaveRouter(route);
  tf.io.registerLoadRouter(route);
}
