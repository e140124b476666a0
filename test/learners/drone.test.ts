// The drone controller: decide() on hand-made frames (TTC braking, steering to open space and to
// the goal), then flown through seeded obstacle courses of the production simulator
// (actuators/devices/drone-sim.ts): no collisions, ever.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type Course,
  DEFAULT_DRONE,
  type DroneControls,
  DroneSim,
  generateCourse,
  type DroneParams as SimParams,
} from '../../actuators/devices/index.ts';
import { DEFAULT_DRONE_PARAMS, DroneLearner, type DroneMemory, decide } from '../../learners/drone.ts';
import type { DroneSensorFrame } from '../../schemas/index.ts';

const open16 = () => new Array<number>(16).fill(30);

function frame(over: Partial<DroneSensorFrame> = {}): DroneSensorFrame {
  return {
    deviceId: 'drone-1',
    seq: 1,
    ts: 1_000,
    distances: open16(),
    speed: 0,
    heading: 0,
    goalBearing: 0,
    goalDistance: 50,
    ...over,
  };
}

interface SimFrame {
  distances: number[];
  speed: number;
  heading: number;
  goalBearing: number;
  goalDistance: number;
}

interface Flown {
  seed: number;
  collided: boolean;
  reached: boolean;
  minClearance: number;
}

/** One flight on the production simulator (actuators/devices/drone-sim.ts): frames out, controls in. */
async function flyCourse(
  course: Course,
  params: Partial<SimParams>,
  control: (f: SimFrame) => DroneControls | Promise<DroneControls>,
  maxSimMs = 90_000,
): Promise<Flown> {
  const sim = new DroneSim(course, params);
  let minClearance = Number.POSITIVE_INFINITY;
  while (!sim.done && sim.state.t < maxSimMs) {
    const s = sim.sense();
    minClearance = Math.min(minClearance, ...s.distances);
    sim.step(await control({ ...s, speed: sim.state.speed, heading: sim.state.heading }));
  }
  return {
    seed: course.seed,
    collided: sim.state.collisions > 0,
    reached: sim.state.status === 'arrived',
    minClearance,
  };
}

/** decide() with its memory, told the simulated drone's real limits. */
function fly(p: Partial<SimParams>, seeds: number[], maxSimMs?: number) {
  const sp = { ...DEFAULT_DRONE, ...p };
  return Promise.all(
    seeds.map((seed) => {
      let mem: DroneMemory | undefined;
      return flyCourse(
        generateCourse({ seed }),
        p,
        (f) => {
          const c = decide(
            f,
            {
              maxSpeed: sp.maxSpeed,
              maxDecel: sp.maxBrake,
              maxYawRate: sp.maxYawRate,
              maxRange: sp.sensorRange,
              radius: sp.radius,
            },
            mem,
          );
          mem = c.memory;
          return c;
        },
        maxSimMs,
      );
    }),
  );
}

describe('decide', () => {
  it('cruises at full throttle toward an open goal dead ahead', () => {
    const c = decide(frame({ speed: 3 }));
    expect(c).toMatchObject({ mode: 'cruise', brake: 0, yaw: 0, throttle: 1 });
  });

  it('brakes fully when the time to collision ahead is short', () => {
    const d = open16();
    d[0] = 2;
    const c = decide(frame({ distances: d, speed: 4 }));
    expect(c.ttc).toBeLessThan(DEFAULT_DRONE_PARAMS.ttcHard);
    expect(c).toMatchObject({ brake: 1, throttle: 0 });
  });

  it('brakes harder the nearer the obstacle ahead, and plans a speed it can stop from', () => {
    const brakeAt = (dist: number) => {
      const d = open16();
      d[0] = dist;
      return decide(frame({ distances: d, speed: 4 }));
    };
    expect(brakeAt(29).brake).toBe(0);
    const series = [20, 12, 9, 6, 4, 2.5].map((x) => brakeAt(x).brake);
    for (let i = 1; i < series.length; i++) expect(series[i]).toBeGreaterThanOrEqual(series[i - 1]!);
    expect(series.some((b) => b > 0 && b < 1)).toBe(true);
    expect(series.at(-1)).toBe(1);
    for (const x of [6, 4, 2.5]) expect(brakeAt(x).throttle).toBe(0);
    const d = open16();
    d[0] = 9;
    const slow = decide(frame({ distances: d, speed: 0, goalBearing: 0 }));
    // from standstill it may go, but not faster than it can stop within what is ahead
    expect(slow.throttle * DEFAULT_DRONE_PARAMS.maxSpeed).toBeLessThanOrEqual(
      Math.sqrt(2 * DEFAULT_DRONE_PARAMS.maxDecel * DEFAULT_DRONE_PARAMS.planDecel * d[0]!) + 1e-9,
    );
  });

  it('steers toward the goal bearing (positive is clockwise) and slows for the turn', () => {
    const c = decide(frame({ goalBearing: 0.6, speed: 2 }));
    expect(c.yaw).toBeGreaterThan(0);
    expect(c.target).toBeCloseTo(0.6, 9);
    const left = decide(frame({ goalBearing: -1.2, speed: 2 }));
    expect(left.yaw).toBe(-1);
    const behind = decide(frame({ goalBearing: Math.PI, speed: 0 }));
    expect(behind.throttle).toBe(0); // turn on the spot first
  });

  it('goes round an obstacle between it and the goal through the nearer opening', () => {
    const d = open16();
    for (const i of [15, 0, 1, 2]) d[i] = 3; // a wall ahead, a little wider on the right
    const c = decide(frame({ distances: d, speed: 1, goalBearing: 0 }));
    expect(c.yaw).toBeLessThan(0); // left: the opening nearer the goal
    expect(c.memory.side).toBe(-1);
    // committed: with the same wall a little later, it keeps the side
    const next = decide(frame({ distances: d, speed: 1, goalBearing: 0.1, heading: -0.1 }), {}, c.memory);
    expect(next.memory.side).toBe(-1);
  });

  it('stops when boxed in, treats failed readings as obstacles, and stops at the goal', () => {
    const boxed = decide(frame({ distances: new Array(16).fill(0.8), speed: 1 }));
    expect(boxed).toMatchObject({ mode: 'boxed', throttle: 0 });
    expect(boxed.brake).toBeGreaterThan(0);
    const d = open16();
    d[0] = Number.NaN;
    expect(decide(frame({ distances: d, speed: 3 })).brake).toBe(1);
    expect(decide(frame({ goalDistance: 0.1, speed: 1 }))).toMatchObject({
      mode: 'arrived',
      throttle: 0,
      brake: 1,
    });
    expect(decide(frame({ distances: [], speed: 1 }))).toMatchObject({
      mode: 'blind',
      throttle: 0,
      brake: 1,
    });
  });

  it('is pure: the same frame, params and memory give the same command', () => {
    const d = open16();
    d[3] = 4;
    d[4] = 5;
    const f = frame({ distances: d, speed: 2.5, goalBearing: 1, heading: 0.3 });
    expect(decide(f)).toEqual(decide(structuredClone(f)));
  });
});

describe('seeded obstacle courses (the production simulator, y north)', () => {
  it('flies 30 courses (8 sectors, 4 m/s) without a collision and reaches the goal in nearly all', async () => {
    const res = await fly(
      {},
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    expect(res.filter((r) => r.collided).map((r) => r.seed)).toEqual([]);
    expect(res.filter((r) => r.reached).length).toBeGreaterThanOrEqual(29);
    expect(Math.min(...res.map((r) => r.minClearance))).toBeGreaterThan(0.05);
  });

  it('never collides with finer (16, 36) sensors, slow or fast', async () => {
    for (const sectors of [16, 36]) {
      for (const maxSpeed of [3, 8]) {
        const res = await fly(
          { sectors, maxSpeed },
          Array.from({ length: 10 }, (_, i) => 100 + i),
          45_000,
        );
        expect(
          res.filter((r) => r.collided).map((r) => r.seed),
          `${sectors} sectors at ${maxSpeed} m/s`,
        ).toEqual([]);
      }
    }
  });
});

describe('drone learner', () => {
  it('proposes throttle, brake and yaw per device from its latest frame', async () => {
    const l = new DroneLearner();
    const d = open16();
    d[0] = 1.5;
    const out = await l.onDrone([
      frame({ deviceId: 'd1', seq: 1, speed: 3 }),
      frame({ deviceId: 'd1', seq: 2, speed: 3, distances: d }),
      frame({ deviceId: 'd2', seq: 7, goalBearing: 0.5 }),
    ]);
    const get = (h: string, k: string) => out.find((p) => p.host === h && p.key === k)!;
    expect(get('d1', 'pxrc.brake').value).toBe(1);
    expect(get('d1', 'pxrc.throttle').value).toBe(0);
    expect(get('d1', 'pxrc.brake').why).toMatch(/seq=2 mode=\w+ ttc=0\.\d+s ahead=1\.\dm/);
    expect(get('d2', 'pxrc.yaw').value as number).toBeGreaterThan(0);
    expect(out).toHaveLength(6);
  });

  it('learns the deceleration a device really achieves and plans with it', async () => {
    const l = new DroneLearner({ maxDecel: 4 });
    const d = open16();
    d[0] = 1.5; // close: it brakes fully every frame
    let speed = 5;
    for (let seq = 0; seq < 20; seq++) {
      await l.onDrone([frame({ deviceId: 'heavy', seq, ts: seq * 100, speed, distances: d })]);
      speed = Math.max(0.5, speed - 0.2); // 2 m/s² at full brake: half what was declared
    }
    expect(l.effectiveDecel('heavy')).toBeCloseTo(2, 1);
    expect(l.effectiveDecel('unknown')).toBe(4);
  });

  it('flies seeded courses itself, carrying each device detour memory between frames', async () => {
    const told = {
      maxSpeed: DEFAULT_DRONE.maxSpeed,
      maxDecel: DEFAULT_DRONE.maxBrake,
      maxYawRate: DEFAULT_DRONE.maxYawRate,
      maxRange: DEFAULT_DRONE.sensorRange,
      radius: DEFAULT_DRONE.radius,
    };
    const l = new DroneLearner(told);
    const seeds = [1, 2, 3, 5, 6, 8];
    const results: Flown[] = [];
    for (const seed of seeds) {
      let seq = 0;
      const device = `drone-${seed}`;
      results.push(
        await flyCourse(generateCourse({ seed }), {}, async (f) => {
          seq++;
          const out = await l.onDrone([{ deviceId: device, seq, ts: seq * 50, ...f }]);
          const v = (k: string) => out.find((p) => p.key === k)!.value as number;
          return { throttle: v('pxrc.throttle'), brake: v('pxrc.brake'), yaw: v('pxrc.yaw') };
        }),
      );
    }
    expect(results.filter((r) => r.collided)).toEqual([]);
    expect(results.filter((r) => r.reached).length).toBeGreaterThanOrEqual(seeds.length - 1);
    // the memory survives a save and load (Infinity included)
    const dir = mkdtempSync(join(tmpdir(), 'virgo-drone-'));
    await l.save(dir);
    const back = new DroneLearner(told);
    await back.load(dir);
    const f = frame({ deviceId: 'drone-1', seq: 1e6 });
    expect(await back.onDrone([f])).toEqual(await l.onDrone([f]));
  });

  it('rejects frames without distances', async () => {
    const l = new DroneLearner();
    expect(await l.onDrone([frame({ distances: [] })])).toEqual([]);
    expect(l.stats()).toMatchObject({ frames: 1, rejected: 1 });
  });
});
