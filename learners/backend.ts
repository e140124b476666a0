// The TensorFlow.js backend: @tensorflow/tfjs-node (native) when it is already importable, else
// pure-JS @tensorflow/tfjs on its CPU backend. tfjs-node is never required or installed
// (docs/design.md §7.5); whichever runs is logged and reported in stats and benchmarks.
import { createLogger } from '../runtime/log.ts';
import { registerFileRouter } from './model-io.ts';
import type { Tf } from './types.ts';

const log = createLogger('learners.backend');

export interface Backend {
  tf: Tf;
  /** 'tensorflow' (tfjs-node) or 'cpu' (pure JS) */
  name: string;
  package: '@tensorflow/tfjs-node' | '@tensorflow/tfjs';
  version: string;
}

let loading: Promise<Backend> | undefined;

export function loadBackend(): Promise<Backend> {
  loading ??= (async () => {
    // A variable specifier: TypeScript must not try to resolve a package that is not installed.
    const nodeSpec = '@tensorflow/tfjs-node';
    let tf: Tf;
    let pkg: Backend['package'] = '@tensorflow/tfjs-node';
    try {
      tf = (await import(nodeSpec)) as Tf;
    } catch {
      tf = await import('@tensorflow/tfjs');
      pkg = '@tensorflow/tfjs';
    }
    // Production mode drops tfjs's per-op debug checks and its console banner about tfjs-node.
    tf.enableProdMode();
    if (pkg === '@tensorflow/tfjs') await tf.setBackend('cpu');
    await tf.ready();
    // tfjs-node brings its own file:// handler; two would make every file:// URL ambiguous.
    if (pkg === '@tensorflow/tfjs') registerFileRouter(tf);
    const b: Backend = { tf, name: tf.getBackend(), package: pkg, version: tf.version.tfjs };
    log.info('tensorflow.js backend', { backend: b.name, package: b.package, version: b.version });
    return b;
  })();
  return loading;
}
