// Prequential ("predict, then learn") evaluation: at each step every model predicts its targets
// from what it has seen so far, the predictions are recorded, and only then is the truth revealed
// (to the models that learn from it). A model can never be judged on something it has learnt.
// Also the naive baselines every learner is measured against, and the metrics.

/** One step of a stream: what is observable before predicting, the targets, and their truth. */
export interface Step<X> {
  x: X;
  /** what is predicted: a host, a node, a frame … (the baselines keep their state per target) */
  targets: readonly string[];
  /** the truth per target, revealed after every model predicted */
  y: readonly number[];
}

export interface OnlineModel<X> {
  readonly name: string;
  /** one prediction per target; NaN = no prediction yet (e.g. a learner still warming up) */
  predict(x: X, targets: readonly string[]): readonly number[] | Promise<readonly number[]>;
  /** the truth of the step just predicted */
  learn(x: X, targets: readonly string[], y: readonly number[]): void | Promise<void>;
}

export interface Scored {
  step: number;
  target: string;
  p: number;
  y: number;
}

/** Runs the stream; returns each model's (prediction, truth) pairs in order. */
export async function prequential<X>(
  steps: Iterable<Step<X>>,
  models: readonly OnlineModel<X>[],
): Promise<Map<string, Scored[]>> {
  const out = new Map<string, Scored[]>(models.map((m) => [m.name, []]));
  let i = 0;
  for (const s of steps) {
    // every model predicts before any of them learns this step's truth
    const preds: (readonly number[])[] = [];
    for (const m of models) {
      const p = await m.predict(s.x, s.targets);
      if (p.length !== s.targets.length)
        throw new Error(`${m.name}: ${p.length} predictions for ${s.targets.length} targets`);
      preds.push(p);
    }
    models.forEach((m, k) => {
      const rows = out.get(m.name)!;
      s.targets.forEach((t, j) => {
        rows.push({ step: i, target: t, p: preds[k]![j]!, y: s.y[j]! });
      });
    });
    for (const m of models) await m.learn(s.x, s.targets, s.y);
    i++;
  }
  return out;
}

/** Keeps only the pairs where every model predicted (NaN nowhere), so all are scored alike. */
export function commonlyPredicted(res: Map<string, Scored[]>): Map<string, Scored[]> {
  const lists = [...res.values()];
  const n = lists[0]?.length ?? 0;
  const keep = Array.from({ length: n }, (_, i) => lists.every((l) => Number.isFinite(l[i]!.p)));
  return new Map([...res].map(([k, l]) => [k, l.filter((_, i) => keep[i])]));
}

/** "Next = last": the target's last truth (or the last truth of any target, or `initial`). */
export function persistence<X>(initial: number, name = 'persistence (next = last)'): OnlineModel<X> {
  const last = new Map<string, number>();
  let any = initial;
  return {
    name,
    predict: (_x, targets) => targets.map((t) => last.get(t) ?? any),
    learn: (_x, targets, y) => {
      targets.forEach((t, i) => {
        last.set(t, y[i]!);
        any = y[i]!;
      });
    },
  };
}

/** The running mean of the target's truths so far (of all targets' until it has one; `prior` first). */
export function runningMean<X>(prior: number, name = 'running mean'): OnlineModel<X> {
  const sum = new Map<string, [number, number]>();
  let all: [number, number] = [0, 0];
  return {
    name,
    predict: (_x, targets) =>
      targets.map((t) => {
        const s = sum.get(t) ?? all;
        return s[1] > 0 ? s[0] / s[1] : prior;
      }),
    learn: (_x, targets, y) => {
      targets.forEach((t, i) => {
        const s = sum.get(t) ?? [0, 0];
        sum.set(t, [s[0] + y[i]!, s[1] + 1]);
        all = [all[0] + y[i]!, all[1] + 1];
      });
    },
  };
}

/** Binary truths: the class seen most often so far, over all targets (0 on a tie or before any). */
export function majority<X>(name = 'majority class'): OnlineModel<X> {
  let ones = 0;
  let n = 0;
  return {
    name,
    predict: (_x, targets) => targets.map(() => (ones * 2 > n ? 1 : 0)),
    learn: (_x, _targets, y) => {
      for (const v of y) {
        ones += v >= 0.5 ? 1 : 0;
        n++;
      }
    },
  };
}

// ---- metrics ------------------------------------------------------------------------------

/** Mean log loss of probabilities, each clipped into [eps, 1 - eps] (a hard 0/1 forecast that is
 * wrong would otherwise cost infinity). */
export function logLoss(rows: readonly Scored[], eps = 0.01): number {
  let s = 0;
  for (const r of rows) {
    const p = Math.min(1 - eps, Math.max(eps, r.p));
    s -= r.y >= 0.5 ? Math.log(p) : Math.log(1 - p);
  }
  return s / rows.length;
}

export function brier(rows: readonly Scored[]): number {
  return rows.reduce((a, r) => a + (r.p - r.y) ** 2, 0) / rows.length;
}

export interface Binary {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

/** The decision p >= threshold against truth y >= 0.5. */
export function binary(rows: readonly Scored[], threshold = 0.5): Binary {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let ok = 0;
  for (const r of rows) {
    const p = r.p >= threshold;
    const y = r.y >= 0.5;
    if (p && y) tp++;
    else if (p) fp++;
    else if (y) fn++;
    if (p === y) ok++;
  }
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    accuracy: rows.length ? ok / rows.length : Number.NaN,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
  };
}

export function mae(rows: readonly Scored[]): number {
  return rows.reduce((a, r) => a + Math.abs(r.p - r.y), 0) / rows.length;
}

/** Equal error rate of a score (higher = more likely positive): where false accepts equal false
 * rejects, interpolated between the two thresholds that straddle it. */
export function eer(scores: readonly number[], positive: readonly boolean[]): number {
  const pos = scores.filter((_, i) => positive[i]).sort((a, b) => a - b);
  const neg = scores.filter((_, i) => !positive[i]).sort((a, b) => a - b);
  if (pos.length === 0 || neg.length === 0) return Number.NaN;
  const cuts = [...new Set(scores)].sort((a, b) => a - b);
  let prev: [number, number] | undefined;
  for (const t of cuts) {
    // accept when score >= t
    const frr = lowerBound(pos, t) / pos.length;
    const far = (neg.length - lowerBound(neg, t)) / neg.length;
    if (frr >= far) {
      if (!prev) return (frr + far) / 2;
      // the crossing lies between prev and here: interpolate linearly
      const [pf, pr] = prev;
      const d = pr - pf - (frr - far);
      const a = d === 0 ? 0 : (pr - pf) / d;
      return pf + a * (far - pf);
    }
    prev = [far, frr];
  }
  return prev ? (prev[0] + prev[1]) / 2 : Number.NaN;
}

function lowerBound(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function medianOf(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
