// Webcam face match: frames carry face embeddings; a tfjs similarity classifier compares each
// against the enrolled gallery (cosine similarity, one batched matMul per batch of frames) and
// says `match=True|False` (the original's spelling). The threshold is set, or learnt: from the
// gallery itself (genuine leave-one-out pairs against impostor pairs between identities) or from
// labelled examples, as the cut that best separates them (balanced accuracy).
import type { WebcamFrame } from '../schemas/index.ts';
import { confValueProblem } from '../schemas/variable.ts';
import { type LearnerState, loadLearnerState, saveLearnerState } from './learner-state.ts';
import { requireTf } from './tf-util.ts';
import type { Learner, LearnerContext, Proposal, Tf, VariableDecl } from './types.ts';

export const WEBCAM_ARCH = 'webcam-cosine@1';

export interface WebcamOptions {
  /** fixed threshold on cosine similarity; learnt from the gallery when absent */
  threshold?: number;
  /** identity -> embeddings, enrolled at start */
  gallery?: Record<string, number[][]>;
  /** a threshold learnt from the gallery rejects at most this share of its own genuine pairs */
  targetFrr?: number;
}

export const WEBCAM_VARIABLES: readonly VariableDecl[] = [
  {
    key: 'match',
    type: 'bool',
    boolStyle: 'python',
    unit: null,
    description:
      'the face in front of the camera matches an enrolled identity (dropped at once, granted after 1 s)',
    definition: { kind: 'latest' },
    dwellMs: 1_000,
    urgent: 'False',
  },
  {
    key: 'webcam.similarity',
    type: 'float',
    unit: 'cosine',
    description: 'cosine similarity of the face to its nearest enrolled embedding',
    min: -1,
    max: 1,
    decimals: 3,
    hysteresis: 0.02,
    definition: { kind: 'latest' },
    dwellMs: 250,
  },
  {
    key: 'webcam.identity',
    type: 'string',
    unit: null,
    description: 'enrolled identity of the nearest embedding when it matches, else none',
    definition: { kind: 'latest' },
    dwellMs: 1_000,
  },
];

export class EnrolmentError extends Error {
  override readonly name = 'EnrolmentError';
}

interface WebcamShared {
  gallery: Record<string, number[][]>;
  threshold: number;
  learnt: boolean;
  frames: number;
  matches: number;
}

function unit(v: readonly number[]): number[] {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  return n > 0 ? v.map((x) => x / n) : v.map(() => 0);
}

/**
 * The threshold that best separates genuine from impostor scores (balanced accuracy); among
 * equally good cuts, the middle of the best run of them (the widest margin), not its low edge:
 * a gallery separates its own identities perfectly, and a cut just above the nearest impostor
 * pair lets in every stranger who merely resembles someone enrolled.
 */
export function bestThreshold(genuine: number[], impostor: number[]): number {
  if (genuine.length === 0) throw new EnrolmentError('no genuine scores to learn a threshold from');
  if (impostor.length === 0) return Math.min(...genuine) - 0.05;
  const cuts = [...new Set([...genuine, ...impostor])].sort((a, b) => a - b);
  let bestAcc = -1;
  let lo = cuts[0]!;
  let hi = cuts[0]!;
  let inRun = false;
  for (let i = 0; i < cuts.length; i++) {
    // Midpoints between neighbouring scores generalise better than the scores themselves.
    const t = i + 1 < cuts.length ? (cuts[i]! + cuts[i + 1]!) / 2 : cuts[i]! + 1e-6;
    const tpr = genuine.filter((g) => g >= t).length / genuine.length;
    const tnr = impostor.filter((x) => x < t).length / impostor.length;
    const acc = (tpr + tnr) / 2;
    if (acc > bestAcc + 1e-12) {
      bestAcc = acc;
      lo = t;
      hi = t;
      inRun = true;
    } else if (inRun && Math.abs(acc - bestAcc) <= 1e-12) hi = t;
    else inRun = false;
  }
  return (lo + hi) / 2;
}

export class WebcamLearner implements Learner {
  readonly name = 'webcam';
  readonly needsTf = true;
  readonly variables = WEBCAM_VARIABLES;
  private gallery = new Map<string, number[][]>();
  private labels: string[] = [];
  private matrix: ReturnType<Tf['tensor2d']> | undefined;
  private dims = 0;
  threshold: number;
  private learnt: boolean;
  private readonly targetFrr: number;
  private frames = 0;
  private matches = 0;
  rejected = 0;

  constructor(
    private readonly tf: Tf,
    opts: WebcamOptions = {},
  ) {
    this.threshold = opts.threshold ?? 0.8;
    this.targetFrr = opts.targetFrr ?? 0.02;
    this.learnt = opts.threshold === undefined;
    for (const [id, embs] of Object.entries(opts.gallery ?? {})) this.enrol(id, embs);
  }

  get modelVersion(): string {
    return `${WEBCAM_ARCH}.n${this.labels.length}.t${this.threshold.toFixed(3)}`;
  }

  /** Adds embeddings of one identity; relearns the threshold unless it was set. */
  enrol(identity: string, embeddings: readonly (readonly number[])[]): void {
    // An identity is emitted as a value: it must fit the wire and the conf file.
    const problem = confValueProblem(identity);
    if (!identity || problem)
      throw new EnrolmentError(
        `identity ${JSON.stringify(identity)}: ${problem ? `value ${problem.message}` : 'empty'}`,
      );
    if (embeddings.length === 0) throw new EnrolmentError(`identity ${identity}: no embeddings`);
    for (const e of embeddings) {
      if (e.length === 0 || !e.every(Number.isFinite)) {
        throw new EnrolmentError(
          `identity ${identity}: embeddings must be non-empty arrays of finite numbers`,
        );
      }
      const d = this.dims || e.length;
      if (e.length !== d)
        throw new EnrolmentError(`identity ${identity}: embedding has ${e.length} dims, the gallery ${d}`);
      this.dims = d;
    }
    const list = this.gallery.get(identity) ?? [];
    list.push(...embeddings.map((e) => unit(e)));
    this.gallery.set(identity, list);
    this.rebuild();
    if (this.learnt) this.learnFromGallery();
  }

  private rebuild(): void {
    this.matrix?.dispose();
    const rows: number[][] = [];
    this.labels = [];
    for (const [id, embs] of this.gallery) {
      for (const e of embs) {
        rows.push(e);
        this.labels.push(id);
      }
    }
    this.matrix = rows.length > 0 ? this.tf.tensor2d(rows) : undefined;
  }

  /** Cosine similarity of each embedding to its nearest enrolled one: [score, identity]. */
  nearest(embeddings: readonly (readonly number[])[]): { score: number; identity: string; row: number }[] {
    if (!this.matrix || embeddings.length === 0)
      return embeddings.map(() => ({ score: -1, identity: '', row: -1 }));
    const tf = this.tf;
    const sims = tf.tidy(
      () =>
        tf
          .matMul(tf.tensor2d(embeddings.map((e) => unit(e))), this.matrix!, false, true)
          .arraySync() as number[][],
    );
    return sims.map((row) => {
      let best = -1;
      let bi = -1;
      for (let j = 0; j < row.length; j++) {
        if (row[j]! > best) {
          best = row[j]!;
          bi = j;
        }
      }
      return { score: best, identity: bi >= 0 ? this.labels[bi]! : '', row: bi };
    });
  }

  /** Threshold from the gallery: each embedding against the rest of its identity (genuine) and
   * the other identities (impostor). */
  learnFromGallery(): void {
    if (!this.matrix || this.labels.length < 2) return;
    const tf = this.tf;
    const sims = tf.tidy(() => tf.matMul(this.matrix!, this.matrix!, false, true).arraySync() as number[][]);
    const genuine: number[] = [];
    const impostor: number[] = [];
    sims.forEach((row, i) => {
      let g = -1;
      let im = -1;
      row.forEach((s, j) => {
        if (i === j) return;
        if (this.labels[j] === this.labels[i]) g = Math.max(g, s);
        else im = Math.max(im, s);
      });
      if (g > -1) genuine.push(g);
      if (im > -1) impostor.push(im);
    });
    if (genuine.length === 0) return;
    // The balanced cut separates the enrolled identities from each other, but strangers who merely
    // resemble someone enrolled are not in the gallery and score between the two: the threshold
    // also goes up to where only targetFrr of the gallery's own genuine pairs would be refused.
    const sorted = [...genuine].sort((a, b) => a - b);
    const frrCut = sorted[Math.min(sorted.length - 1, Math.floor(this.targetFrr * sorted.length))]!;
    this.threshold = Math.max(bestThreshold(genuine, impostor), frrCut);
    this.learnt = true;
  }

  /** Threshold from labelled frames (embedding, should it match); returns the training accuracy. */
  calibrate(samples: readonly { embedding: readonly number[]; match: boolean }[]): number {
    const scores = this.nearest(samples.map((s) => s.embedding));
    const genuine = scores.filter((_, i) => samples[i]!.match).map((s) => s.score);
    const impostor = scores.filter((_, i) => !samples[i]!.match).map((s) => s.score);
    this.threshold = bestThreshold(genuine, impostor);
    this.learnt = true;
    const ok = scores.filter((s, i) => s.score >= this.threshold === samples[i]!.match).length;
    return ok / samples.length;
  }

  async onWebcam(frames: readonly WebcamFrame[]): Promise<Proposal[]> {
    const latest = new Map<string, WebcamFrame>();
    for (const f of frames) {
      this.frames++;
      const cur = latest.get(f.deviceId);
      if (!cur || f.seq >= cur.seq) latest.set(f.deviceId, f);
    }
    const withFace: WebcamFrame[] = [];
    const out: Proposal[] = [];
    const model = this.modelVersion;
    for (const f of latest.values()) {
      const usable = f.faceDetected && f.embedding.length > 0;
      if (usable && this.dims > 0 && f.embedding.length !== this.dims) {
        this.rejected++;
        continue;
      }
      if (usable && this.matrix) withFace.push(f);
      else {
        const why = `seq=${f.seq} ${f.faceDetected ? 'no gallery enrolled' : 'no face in frame'}`;
        out.push({ host: f.deviceId, key: 'match', value: false, why, confidence: 1, model });
        out.push({ host: f.deviceId, key: 'webcam.identity', value: 'none', why, confidence: 1, model });
      }
    }
    const res = this.nearest(withFace.map((f) => f.embedding));
    withFace.forEach((f, i) => {
      const r = res[i]!;
      const match = r.score >= this.threshold;
      if (match) this.matches++;
      const why = `seq=${f.seq} similarity=${r.score.toFixed(3)} nearest=${r.identity} threshold=${this.threshold.toFixed(3)}${this.learnt ? ' (learnt)' : ' (set)'} gallery=${this.labels.length}`;
      const confidence = Math.min(1, Math.abs(r.score - this.threshold) / 0.1);
      out.push({ host: f.deviceId, key: 'match', value: match, why, confidence, model });
      out.push({ host: f.deviceId, key: 'webcam.similarity', value: r.score, why, confidence, model });
      out.push({
        host: f.deviceId,
        key: 'webcam.identity',
        value: match ? r.identity : 'none',
        why,
        confidence,
        model,
      });
    });
    return out;
  }

  /** Everything is the instance's: the gallery and its threshold; no host (camera) keeps state. */
  readonly state: LearnerState<WebcamShared, never> = {
    learner: 'webcam',
    version: 1,
    shared: () => ({
      gallery: Object.fromEntries(this.gallery),
      threshold: this.threshold,
      learnt: this.learnt,
      frames: this.frames,
      matches: this.matches,
    }),
    restoreShared: (j) => {
      this.gallery = new Map(Object.entries(j.gallery));
      this.dims = [...this.gallery.values()][0]?.[0]?.length ?? 0;
      this.rebuild();
      this.threshold = j.threshold;
      this.learnt = j.learnt;
      this.frames = j.frames;
      this.matches = j.matches;
    },
    hosts: () => [],
    host: () => undefined,
    restoreHost: () => {},
    dropHost: () => {},
    legacy: (j) => ({ shared: j as unknown as WebcamShared, hosts: [] }),
  };

  save(dir: string): Promise<void> {
    return saveLearnerState(dir, this.state);
  }

  load(dir: string): Promise<void> {
    return loadLearnerState(dir, this.state);
  }

  stats(): Record<string, number | string> {
    return {
      model: this.modelVersion,
      identities: this.gallery.size,
      enrolled: this.labels.length,
      threshold: Number(this.threshold.toFixed(4)),
      frames: this.frames,
      matches: this.matches,
      rejected: this.rejected,
    };
  }

  dispose(): void {
    this.matrix?.dispose();
  }
}

export async function createWebcamLearner(
  ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  return new WebcamLearner(requireTf(ctx.tf, 'webcam'), opts as WebcamOptions);
}
