// The TensorFlow.js backend, chosen once per process, the first of an order that works:
//   tensorflow  @tensorflow/tfjs-node (native libtensorflow), only when it is importable: it is
//               never a dependency (docs/design.md §7.5; `npm run backend:native` installs it)
//   wasm        @tensorflow/tfjs-backend-wasm, its .wasm files read from node_modules (no network)
//   cpu         pure-JS @tensorflow/tfjs, always there: the fallback
// The default order is DEFAULT_BACKENDS; VIRGO_TF_BACKEND (a name or a comma list, e.g. `wasm,cpu`)
// overrides it. Whichever runs is logged and reported in stats, benchmarks and evaluations.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createLogger } from '../runtime/log.ts';
import { registerFileRouter } from './model-io.ts';
import type { Tf } from './types.ts';

const log = createLogger('learners.backend');

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/**
 * tfjs-node when installed; else wasm, which trains the learners' models 1.3-3x faster than pure
 * JS (npm run bench -- learners measures both in one run; learners/README.md, "Backends"); else
 * the pure-JS cpu backend. VIRGO_TF_BACKEND=cpu keeps pure JS.
 */
export const DEFAULT_BACKENDS: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

export interface Backend {
  tf: Tf;
  /** the tfjs backend in use: 'tensorflow' (tfjs-node), 'wasm' or 'cpu' (pure JS) */
  name: BackendName;
  package: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-backend-wasm' | '@tensorflow/tfjs';
  version: string;
  /** backends tried before this one, and why each was passed over */
  skipped: { name: BackendName; reason: string }[];
}

export class BackendError extends Error {
  override readonly name = 'BackendError';
}

/** The order from VIRGO_TF_BACKEND, or the default; unknown names are an error, cpu always closes it. */
export function backendOrder(env: string | undefined = process.env.VIRGO_TF_BACKEND): BackendName[] {
  if (env === undefined || env.trim() === '') return [...DEFAULT_BACKENDS];
  const names = env
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!BACKEND_NAMES.includes(n as BackendName)) {
      throw new BackendError(
        `VIRGO_TF_BACKEND: unknown backend ${JSON.stringify(n)} (use ${BACKEND_NAMES.join(', ')})`,
      );
    }
  }
  const order = names as BackendName[];
  return order.includes('cpu') ? order : [...order, 'cpu'];
}

const PACKAGES: Record<BackendName, Backend['package']> = {
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs',
};

/** Where the wasm backend's .wasm files are: VIRGO_TF_WASM_DIR, else its package's dist/ in node_modules. */
export function wasmDir(): string {
  const dir = process.env.VIRGO_TF_WASM_DIR;
  if (dir) return dir.endsWith('/') ? dir : `${dir}/`;
  const req = createRequire(import.meta.url);
  return `${join(dirname(req.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')}/`;
}

/** Tries one backend; undefined (and why) when it cannot run here. */
async function tryBackend(name: BackendName): Promise<{ tf: Tf } | { reason: string }> {
  try {
    if (name === 'tensorflow') {
      // A variable specifier: TypeScript must not try to resolve a package that is not installed.
      const spec = PACKAGES.tensorflow;
      const tf = (await import(spec)) as Tf;
      if (!(await tf.setBackend('tensorflow')))
        return { reason: 'tfjs-node loaded but its backend did not start' };
      return { tf };
    }
    const tf = await import('@tensorflow/tfjs');
    if (name === 'wasm') {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      wasm.setWasmPaths(wasmDir());
      // setBackend resolves false (tfjs logs the cause) when the module does not instantiate
      if (!(await tf.setBackend('wasm'))) return { reason: `wasm module did not start from ${wasmDir()}` };
      return { tf };
    }
    if (!(await tf.setBackend('cpu'))) return { reason: 'cpu backend did not start' };
    return { tf };
  } catch (err) {
    return { reason: (err as Error).message.split('\n')[0] ?? String(err) };
  }
}

/** The first backend of `order` that starts. Tests call it with an explicit order; the learners use loadBackend(). */
export async function selectBackend(order: readonly BackendName[] = backendOrder()): Promise<Backend> {
  const skipped: Backend['skipped'] = [];
  for (const name of order) {
    const r = await tryBackend(name);
    if ('reason' in r) {
      skipped.push({ name, reason: r.reason });
      continue;
    }
    const tf = r.tf;
    // Production mode drops tfjs's per-op debug checks (and, on pure JS, its banner about tfjs-node).
    tf.enableProdMode();
    await tf.ready();
    // tfjs-node brings its own file:// handler; two would make every file:// URL ambiguous.
    if (name !== 'tensorflow') registerFileRouter(tf);
    const b: Backend = { tf, name, package: PACKAGES[name], version: tf.version.tfjs, skipped };
    log.info('tensorflow.js backend', {
      backend: b.name,
      package: b.package,
      version: b.version,
      ...(skipped.length ? { skipped: skipped.map((s) => `${s.name}: ${s.reason}`).join('; ') } : {}),
    });
    return b;
  }
  throw new BackendError(
    `no tensorflow.js backend started: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`,
  );
}

let loading: Promise<Backend> | undefined;

/** The process's backend (selected once, from VIRGO_TF_BACKEND or the default order). */
export function loadBackend(): Promise<Backend> {
  loading ??= selectBackend();
  return loading;
}
