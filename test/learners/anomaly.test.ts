// The anomaly autoencoder converges on generated logs with a known answer: windows drawn from a
// stable mix of templates are normal; planted windows with error templates (or a burst of one
// template) are the anomalies it must flag, after a short warm-up, without flagging the rest.
import { beforeAll, describe, expect, it } from 'vitest';
import { AnomalyLearner, type ScoredWindow } from '../../learners/anomaly.ts';
import { loadBackend } from '../../learners/backend.ts';
import type { Tf } from '../../learners/types.ts';
import { Rng } from '../../learners/window.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { ev } from './events.ts';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});

const MIN = 60_000;
const NORMAL = ['sshd-accept', 'cron-run', 'dhcp-renew', 'systemd-start', 'kernel-usb', 'ntp-sync'];
const WEIGHTS = [0.35, 0.2, 0.15, 0.15, 0.1, 0.05];
const ERRORS = ['ext4-error', 'oom-kill', 'kernel-bug'];

function pick(rng: Rng): string {
  let x = rng.next();
  for (let i = 0; i < NORMAL.length; i++) {
    x -= WEIGHTS[i]!;
    if (x <= 0) return NORMAL[i]!;
  }
  return NORMAL[0]!;
}

function windowOf(host: string, w: number, kind: 'normal' | 'errors' | 'burst', rng: Rng): KernelEvent[] {
  const out: KernelEvent[] = [];
  const n = 30 + rng.int(20);
  for (let i = 0; i < n; i++) out.push(ev(host, w * MIN + rng.int(MIN - 1), 'x', { templateId: pick(rng) }));
  if (kind === 'errors') {
    for (let i = 0, k = 2 + rng.int(6); i < k; i++) {
      out.push(ev(host, w * MIN + rng.int(MIN - 1), 'x', { templateId: ERRORS[rng.int(ERRORS.length)]! }));
    }
  }
  if (kind === 'burst') {
    for (let i = 0; i < 400; i++)
      out.push(ev(host, w * MIN + rng.int(MIN - 1), 'x', { templateId: 'ntp-sync' }));
  }
  return out.sort((a, b) => a.ts - b.ts);
}

describe('anomaly learner', () => {
  it('flags the planted anomalous windows and not the normal ones', async () => {
    const rng = new Rng(5);
    const scored: ScoredWindow[] = [];
    const l = new AnomalyLearner(tf, AnomalyLearner.buildModel(tf, 64, 8, 0.01, 11), {
      warmup: 10,
      onWindow: (w) => scored.push(w),
    });
    const truth = new Map<number, boolean>();
    const W = 90;
    for (let w0 = 0; w0 < W; w0 += 5) {
      const batch: KernelEvent[] = [];
      for (let w = w0; w < w0 + 5; w++) {
        const kind = w >= 20 && w % 7 === 3 ? (w % 2 ? 'errors' : 'burst') : 'normal';
        truth.set(w * MIN, kind !== 'normal');
        batch.push(...windowOf('db-1', w, kind, rng));
      }
      await l.onEvents(batch);
    }
    const tail = await l.flush();
    expect(scored).toHaveLength(W);
    const judged = scored.filter((s) => s.warm);
    const tp = judged.filter((s) => s.anomalous && truth.get(s.start)).length;
    const fp = judged.filter((s) => s.anomalous && !truth.get(s.start)).length;
    const fn = judged.filter((s) => !s.anomalous && truth.get(s.start)).length;
    const precision = tp / Math.max(1, tp + fp);
    const recall = tp / Math.max(1, tp + fn);
    expect(tp + fn).toBe(10);
    expect(recall).toBeGreaterThanOrEqual(0.9);
    expect(precision).toBeGreaterThanOrEqual(0.8);
    // The score separates: every anomaly scores above the median normal window by a wide margin.
    const normal = judged
      .filter((s) => !truth.get(s.start))
      .map((s) => s.score)
      .sort((a, b) => a - b);
    const median = normal[Math.floor(normal.length / 2)]!;
    for (const s of judged.filter((x) => truth.get(x.start))) expect(s.score).toBeGreaterThan(median * 3);
    // The proposals carry both variables with the evidence.
    expect(tail.map((p) => p.key).sort()).toEqual(['kernel.anomaly', 'kernel.anomaly_score']);
    expect(tail[0]!.why).toMatch(/window=60s start=\S+ events=\d+ score=\d\.\d{4} threshold=\d\.\d{4}/);
    expect(tail[0]!.model).toMatch(/^anomaly-ae@1\.\d+$/);
  });

  it('does not call anything anomalous while warming up', async () => {
    const rng = new Rng(9);
    const l = new AnomalyLearner(tf, AnomalyLearner.buildModel(tf, 64, 8, 0.01, 11), { warmup: 10 });
    const events: KernelEvent[] = [];
    for (let w = 0; w < 6; w++) events.push(...windowOf('h', w, w === 3 ? 'errors' : 'normal', rng));
    const out = await l.onEvents(events);
    expect(out.filter((p) => p.key === 'kernel.anomaly').map((p) => p.value)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(out[0]!.why).toContain('warming up');
  });
});
