// Face match converges on generated clustered embeddings: enrolled identities are clusters in 64
// dimensions; frames of enrolled people must match, frames of strangers must not.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';
import type { Tf } from '../../learners/types.ts';
import { bestThreshold, EnrolmentError, WebcamLearner } from '../../learners/webcam.ts';
import { Rng } from '../../learners/window.ts';
import type { WebcamFrame } from '../../schemas/index.ts';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});

const DIMS = 64;

function unitVec(v: number[]): number[] {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function people(rng: Rng, count: number): number[][] {
  return Array.from({ length: count }, () => unitVec(Array.from({ length: DIMS }, () => rng.normal())));
}

/** One face sample: the person's centre plus noise (cosine to the centre about 0.85). */
function sample(rng: Rng, centre: number[]): number[] {
  return unitVec(centre.map((c) => c + (rng.normal() * 0.6) / Math.sqrt(DIMS)));
}

function frameOf(deviceId: string, seq: number, embedding: number[], faceDetected = true): WebcamFrame {
  return { deviceId, seq, ts: seq * 40, faceDetected, embedding };
}

describe('webcam learner', () => {
  it('learns a threshold from the gallery that tells enrolled people from strangers', async () => {
    const rng = new Rng(77);
    const enrolled = people(rng, 6);
    const strangers = people(rng, 6);
    const l = new WebcamLearner(tf);
    enrolled.forEach((c, i) => {
      l.enrol(
        `person-${i}`,
        [0, 1, 2, 3, 4].map(() => sample(rng, c)),
      );
    });
    expect(l.threshold).toBeGreaterThan(0.3);
    expect(l.threshold).toBeLessThan(0.9);
    let right = 0;
    let total = 0;
    let seq = 0;
    for (let k = 0; k < 60; k++) {
      const known = k % 2 === 0;
      const c = known ? enrolled[k % 6]! : strangers[k % 6]!;
      const out = await l.onWebcam([frameOf(`cam-${k}`, seq++, sample(rng, c))]);
      const match = out.find((p) => p.key === 'match')!;
      if (match.value === known) right++;
      total++;
      if (known && match.value === true) {
        expect(out.find((p) => p.key === 'webcam.identity')!.value).toBe(`person-${k % 6}`);
      }
    }
    expect(right / total).toBeGreaterThanOrEqual(0.95);
    expect(l.stats()).toMatchObject({ identities: 6, enrolled: 30 });
  });

  it('calibrates the threshold from labelled frames', () => {
    const rng = new Rng(8);
    const [alice, mallory] = people(rng, 2);
    const l = new WebcamLearner(tf, { threshold: 0.99 });
    l.enrol('alice', [sample(rng, alice!), sample(rng, alice!)]);
    const labelled = [
      ...Array.from({ length: 20 }, () => ({ embedding: sample(rng, alice!), match: true })),
      ...Array.from({ length: 20 }, () => ({ embedding: sample(rng, mallory!), match: false })),
    ];
    // 0.99 is far too strict for these faces; calibration fixes it
    expect(l.calibrate(labelled)).toBeGreaterThanOrEqual(0.95);
    expect(l.threshold).toBeLessThan(0.95);
  });

  it('says match=False without a face, and rejects embeddings of the wrong size', async () => {
    const rng = new Rng(3);
    const [a] = people(rng, 1);
    const l = new WebcamLearner(tf, { threshold: 0.8 });
    l.enrol('a', [a!]);
    const out = await l.onWebcam([frameOf('cam', 1, [], false)]);
    expect(out.find((p) => p.key === 'match')).toMatchObject({
      value: false,
      why: expect.stringContaining('no face'),
    });
    expect(await l.onWebcam([frameOf('cam', 2, [1, 2, 3])])).toEqual([]);
    expect(l.rejected).toBe(1);
    expect(() => l.enrol('b', [[1, 2]])).toThrow(EnrolmentError);
    expect(() => l.enrol('with,comma', [a!])).toThrow(/comma/);
  });

  it('picks the threshold with the best balanced accuracy', () => {
    expect(bestThreshold([0.9, 0.8, 0.85], [0.1, 0.3, 0.2])).toBeCloseTo(0.55, 9);
    expect(bestThreshold([0.9], [])).toBeCloseTo(0.85, 9);
  });
});
