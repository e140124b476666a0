// The drone learner flies courses it has never seen: seeds drawn afresh each run (printed, so a
// failure is reproducible with `npm run eval -- drone --first SEED --courses 1`), through the same
// emission gate the host applies. Target (issue 16): >= 98% arrive, 0 collisions.
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { flyFleet, learnerPilot } from '../../bench/eval-drone.ts';

// 1,000 courses (~15 s): at the measured 99.0% arrival, P(more than 20 failures) is about 0.2%;
// 500 would fail by chance about 1.4% of runs.
const COURSES = 1000;

describe('drone learner on freshly drawn courses', () => {
  it(`reaches the goal on >= 98% of ${COURSES} random courses with no collision`, async () => {
    const seeds = Array.from({ length: COURSES }, () => randomInt(1, 2 ** 31 - 1));
    console.log(`drone courses, seeds: ${seeds.join(' ')}`);
    const s = await flyFleet(seeds, learnerPilot);
    console.log(
      `arrived ${s.arrived}/${s.courses}, collisions ${s.collisions}, mean time to goal ${s.meanTimeToGoalS.toFixed(1)} s; failed seeds: ${s.failedSeeds.join(' ') || 'none'}`,
    );
    expect(s.collisions).toBe(0);
    expect(s.arrivalRate, `failed seeds: ${s.failedSeeds.join(' ')}`).toBeGreaterThanOrEqual(0.98);
  }, 120_000);
});
