// The evaluation harness of `npm run eval -- learners`: every model predicts a step before any
// learns its truth, and the naive baselines and metrics compute what they say on tiny sequences.
import { describe, expect, it } from 'vitest';
import {
  binary,
  brier,
  commonlyPredicted,
  eer,
  logLoss,
  mae,
  majority,
  type OnlineModel,
  persistence,
  prequential,
  runningMean,
  type Step,
} from '../../bench/lib/prequential.ts';

const seq = (ys: number[], target = 'h'): Step<number>[] =>
  ys.map((y, i) => ({ x: i, targets: [target], y: [y] }));

describe('prequential harness', () => {
  it('judges each step before any model learns it, and never shows a prediction the truth', async () => {
    const calls: string[] = [];
    const spy = (name: string): OnlineModel<number> => ({
      name,
      predict(x, targets) {
        calls.push(`${name} predict ${x}`);
        return targets.map(() => x);
      },
      learn(x, _t, y) {
        calls.push(`${name} learn ${x}=${y[0]}`);
      },
    });
    const res = await prequential(seq([1, 0]), [spy('a'), spy('b')]);
    expect(calls).toEqual([
      'a predict 0',
      'b predict 0',
      'a learn 0=1',
      'b learn 0=1',
      'a predict 1',
      'b predict 1',
      'a learn 1=0',
      'b learn 1=0',
    ]);
    expect(res.get('a')).toEqual([
      { step: 0, target: 'h', p: 0, y: 1 },
      { step: 1, target: 'h', p: 1, y: 0 },
    ]);
  });

  it('a model that would cheat by reading the truth in predict cannot: it only has x', async () => {
    // an "oracle" that remembers the last truth it was taught is exactly persistence: one step late
    const res = await prequential(seq([1, 1, 0, 1]), [persistence(0)]);
    expect(res.get('persistence (next = last)')!.map((r) => r.p)).toEqual([0, 1, 1, 0]);
  });

  it('computes the naive baselines on a known sequence', async () => {
    const ys = [1, 0, 1, 1];
    const res = await prequential(seq(ys), [persistence(0.25, 'p'), runningMean(0.5, 'm'), majority('maj')]);
    expect(res.get('p')!.map((r) => r.p)).toEqual([0.25, 1, 0, 1]);
    expect(res.get('m')!.map((r) => r.p)).toEqual([0.5, 1, 0.5, 2 / 3]);
    // majority: none seen -> 0; {1} -> 1; {1,0} tie -> 0; {1,0,1} -> 1
    expect(res.get('maj')!.map((r) => r.p)).toEqual([0, 1, 0, 1]);
  });

  it('keeps per-target state, falling back to what any target showed', async () => {
    const steps: Step<number>[] = [
      { x: 0, targets: ['a'], y: [10] },
      { x: 1, targets: ['b', 'a'], y: [30, 20] },
      { x: 2, targets: ['a', 'b'], y: [0, 0] },
    ];
    const res = await prequential(steps, [persistence(Number.NaN, 'p'), runningMean(Number.NaN, 'm')]);
    // b is new at step 1: the last truth of any target (10), then its own
    expect(res.get('p')!.map((r) => r.p)).toEqual([Number.NaN, 10, 10, 20, 30]);
    expect(res.get('m')!.map((r) => r.p)).toEqual([Number.NaN, 10, 10, 15, 30]);
    // only pairs every model predicted are scored
    const common = commonlyPredicted(res);
    expect(common.get('p')!.map((r) => r.step)).toEqual([1, 1, 2, 2]);
    expect(mae(common.get('p')!)).toBeCloseTo((20 + 10 + 20 + 30) / 4, 12);
  });

  it('rejects a model that answers for the wrong number of targets', async () => {
    const bad: OnlineModel<number> = { name: 'bad', predict: () => [], learn: () => {} };
    await expect(prequential(seq([1]), [bad])).rejects.toThrow(/0 predictions for 1 targets/);
  });
});

describe('metrics', () => {
  const rows = (ps: number[], ys: number[]) => ps.map((p, i) => ({ step: i, target: 't', p, y: ys[i]! }));

  it('log loss (clipped), Brier, F1', () => {
    expect(logLoss(rows([0.5, 0.5], [1, 0]))).toBeCloseTo(Math.log(2), 12);
    // a confident wrong 0 costs -log(0.01), not infinity
    expect(logLoss(rows([0], [1]))).toBeCloseTo(-Math.log(0.01), 12);
    expect(brier(rows([1, 0.5], [1, 0]))).toBeCloseTo(0.125, 12);
    const b = binary(rows([0.9, 0.6, 0.2, 0.1], [1, 0, 1, 0]));
    expect(b).toEqual({ accuracy: 0.5, precision: 0.5, recall: 0.5, f1: 0.5 });
    expect(binary(rows([0, 0], [1, 1])).f1).toBe(0);
  });

  it('equal error rate: 0 when separable, 0.5 for a constant, the crossing in between', () => {
    expect(eer([0.9, 0.8, 0.2, 0.1], [true, true, false, false])).toBe(0);
    expect(eer([0.5, 0.5, 0.5, 0.5], [true, true, false, false])).toBe(0.5);
    // one impostor above one genuine of two each: FAR = FRR = 0.5 at the crossing
    expect(eer([0.9, 0.3, 0.6, 0.1], [true, true, false, false])).toBeCloseTo(0.5, 12);
    const e = eer([0.9, 0.7, 0.5, 0.65, 0.3, 0.1], [true, true, true, false, false, false]);
    expect(e).toBeGreaterThan(0);
    expect(e).toBeLessThan(0.5);
  });
});
