import { describe, expect, it } from 'vitest';
import {
  bearing,
  type Course,
  DEFAULT_DRONE,
  DroneSim,
  generateCourse,
  rayCircle,
  rayWalls,
  wrapAngle,
} from '../../../actuators/devices/index.ts';

function open(obstacles: Course['obstacles'] = [], goal = { x: 50, y: 90 }): Course {
  return {
    seed: 0,
    width: 100,
    height: 100,
    start: { x: 50, y: 10, heading: 0 },
    goal,
    goalRadius: 1.5,
    obstacles,
  };
}

describe('geometry', () => {
  it('ray casts against circles and walls', () => {
    expect(rayCircle({ x: 0, y: 0 }, 0, 1, { x: 0, y: 10, r: 2 })).toBeCloseTo(8, 12);
    expect(rayCircle({ x: 0, y: 0 }, 0, -1, { x: 0, y: 10, r: 2 })).toBe(Number.POSITIVE_INFINITY);
    expect(rayCircle({ x: 0, y: 0 }, 1, 0, { x: 0, y: 10, r: 2 })).toBe(Number.POSITIVE_INFINITY);
    expect(rayCircle({ x: 0, y: 9 }, 0, 1, { x: 0, y: 10, r: 2 })).toBe(0);
    expect(rayWalls({ x: 10, y: 20 }, 0, 1, 100, 50)).toBeCloseTo(30, 12);
    expect(rayWalls({ x: 10, y: 20 }, -Math.SQRT1_2, -Math.SQRT1_2, 100, 50)).toBeCloseTo(
      10 * Math.SQRT2,
      12,
    );
  });

  it('uses compass angles: clockwise from north', () => {
    expect(bearing({ x: 0, y: 0 }, { x: 0, y: 5 })).toBeCloseTo(0, 12);
    expect(bearing({ x: 0, y: 0 }, { x: 5, y: 0 })).toBeCloseTo(Math.PI / 2, 12);
    expect(bearing({ x: 0, y: 0 }, { x: -5, y: 0 })).toBeCloseTo(-Math.PI / 2, 12);
    expect(wrapAngle(3 * Math.PI)).toBeCloseTo(Math.PI, 12);
    expect(wrapAngle(-Math.PI)).toBeCloseTo(Math.PI, 12);
  });
});

describe('DroneSim', () => {
  it('flies: throttle reaches a speed, yaw turns clockwise, brake stops', () => {
    const sim = new DroneSim(open());
    for (let i = 0; i < 60; i++) sim.step({ throttle: 0.5, brake: 0, yaw: 0 });
    expect(sim.state.speed).toBeCloseTo(DEFAULT_DRONE.maxSpeed * 0.5, 9);
    expect(sim.state.y).toBeGreaterThan(10 + 4);
    expect(sim.state.x).toBeCloseTo(50, 9);
    // a quarter turn right at full yaw: pi/2 / 1.5 rad/s = 1.047 s = 21 ticks of 50 ms
    for (let i = 0; i < 21; i++) sim.step({ throttle: 0.5, brake: 0, yaw: 1 });
    expect(sim.state.heading).toBeCloseTo(Math.PI / 2, 1);
    const x = sim.state.x;
    for (let i = 0; i < 10; i++) sim.step({ throttle: 0.5, brake: 0, yaw: 0 });
    expect(sim.state.x).toBeGreaterThan(x + 0.9); // now flying east
    for (let i = 0; i < 20; i++) sim.step({ throttle: 1, brake: 1, yaw: 0 });
    expect(sim.state.speed).toBe(0);
    expect(sim.state.t).toBe(111 * 50);
  });

  it('caps speed at maxSpeed (the pxrc.max_speed variable)', () => {
    const sim = new DroneSim(open());
    for (let i = 0; i < 80; i++) sim.step({ throttle: 1, brake: 0, yaw: 0 });
    expect(sim.state.speed).toBeCloseTo(DEFAULT_DRONE.maxSpeed, 9);
    for (let i = 0; i < 40; i++) sim.step({ throttle: 1, brake: 0, yaw: 0, maxSpeed: 1.5 });
    expect(sim.state.speed).toBeCloseTo(1.5, 9);
  });

  it('senses sector clearances from the hull, clockwise from dead ahead', () => {
    // obstacle 10 m north (ahead), another 6 m east (to the right: sector 2 of 8)
    const sim = new DroneSim(
      open([
        { x: 50, y: 20, r: 1 },
        { x: 56, y: 10, r: 1 },
      ]),
    );
    const s = sim.sense();
    expect(s.distances).toHaveLength(8);
    expect(s.distances[0]).toBeCloseTo(10 - 1 - DEFAULT_DRONE.radius, 9);
    expect(s.distances[2]).toBeCloseTo(6 - 1 - DEFAULT_DRONE.radius, 9);
    // west: the wall, 50 m, beyond the 15 m range
    expect(s.distances[6]).toBe(DEFAULT_DRONE.sensorRange);
    expect(s.goalBearing).toBeCloseTo(0, 9);
    expect(s.goalDistance).toBeCloseTo(80, 9);
    const east = new DroneSim(open([], { x: 90, y: 10 }));
    expect(east.sense().goalBearing).toBeCloseTo(Math.PI / 2, 9);
  });

  it('detects a collision along the move (no tunnelling) and stops at contact', () => {
    const sim = new DroneSim(open([{ x: 50, y: 14, r: 0.5 }]), { dtMs: 1000 });
    sim.step({ throttle: 1, brake: 0, yaw: 0 });
    sim.step({ throttle: 1, brake: 0, yaw: 0 }); // 2.5 then 4 m/s over whole seconds: would jump it
    expect(sim.state.status).toBe('crashed');
    expect(sim.state.collisions).toBe(1);
    expect(sim.state.hit).toMatch(/^obstacle 0/);
    expect(Math.hypot(sim.state.x - 50, sim.state.y - 14)).toBeCloseTo(0.5 + DEFAULT_DRONE.radius, 9);
    const y = sim.state.y;
    sim.step({ throttle: 1, brake: 0, yaw: 0 });
    expect(sim.state.y).toBe(y); // a crashed drone stays put
  });

  it('walls count as obstacles', () => {
    const sim = new DroneSim({ ...open(), start: { x: 50, y: 97, heading: 0 } });
    for (let i = 0; i < 40 && !sim.done; i++) sim.step({ throttle: 1, brake: 0, yaw: 0 });
    expect(sim.state.status).toBe('crashed');
    expect(sim.state.hit).toBe('arena wall');
    expect(sim.state.y).toBeCloseTo(100 - DEFAULT_DRONE.radius, 9);
  });

  it('arrives within the goal radius', () => {
    const sim = new DroneSim(open([], { x: 50, y: 15 }));
    for (let i = 0; i < 200 && !sim.done; i++) sim.step({ throttle: 0.5, brake: 0, yaw: 0 });
    expect(sim.state.status).toBe('arrived');
    expect(sim.state.y).toBeGreaterThanOrEqual(15 - 1.5);
  });

  it('is deterministic: same course and controls, same flight', () => {
    const fly = () => {
      const sim = new DroneSim(generateCourse({ seed: 9 }));
      const trace: number[] = [];
      for (let i = 0; i < 300 && !sim.done; i++) {
        sim.step({ throttle: 0.7, brake: 0, yaw: Math.sin(i / 17) });
        trace.push(sim.state.x, sim.state.y, ...sim.sense().distances);
      }
      return trace;
    };
    expect(fly()).toEqual(fly());
  });
});

describe('generateCourse', () => {
  it('is seeded, and every gap is at least minGap (so a way through exists)', () => {
    expect(generateCourse({ seed: 3 })).toEqual(generateCourse({ seed: 3 }));
    expect(generateCourse({ seed: 3 })).not.toEqual(generateCourse({ seed: 4 }));
    for (let seed = 1; seed <= 50; seed++) {
      const c = generateCourse({ seed, minGap: 2.5, clearance: 5 });
      expect(c.obstacles.length).toBeGreaterThan(8);
      for (const [i, o] of c.obstacles.entries()) {
        expect(o.x - o.r).toBeGreaterThanOrEqual(2.5);
        expect(c.width - o.x - o.r).toBeGreaterThanOrEqual(2.5);
        expect(Math.hypot(o.x - c.start.x, o.y - c.start.y) - o.r).toBeGreaterThanOrEqual(5);
        expect(Math.hypot(o.x - c.goal.x, o.y - c.goal.y) - o.r).toBeGreaterThanOrEqual(5);
        for (const q of c.obstacles.slice(i + 1))
          expect(Math.hypot(o.x - q.x, o.y - q.y) - o.r - q.r).toBeGreaterThanOrEqual(2.5);
      }
    }
  });

  it('blocks the straight line to the goal, so every course needs a detour', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const c = generateCourse({ seed });
      const o = c.obstacles[0]!;
      // distance from the first obstacle's centre to the start-goal segment is 0
      const dx = c.goal.x - c.start.x;
      const dy = c.goal.y - c.start.y;
      const t = ((o.x - c.start.x) * dx + (o.y - c.start.y) * dy) / (dx * dx + dy * dy);
      expect(Math.hypot(c.start.x + t * dx - o.x, c.start.y + t * dy - o.y)).toBeLessThan(1e-9);
    }
  });
});
