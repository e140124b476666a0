// A small 2D drone world for the controller tests: circular obstacles, a point goal, range
// sensors per sector and first-order dynamics. Angles increase clockwise (y points down), the
// convention of DroneSensorFrame: sector 0 ahead, sectors clockwise, goalBearing positive right.
import { Rng } from '../../learners/window.ts';

export interface Obstacle {
  x: number;
  y: number;
  r: number;
}

export interface Course {
  seed: number;
  obstacles: Obstacle[];
  start: { x: number; y: number; heading: number };
  goal: { x: number; y: number };
}

export interface SimParams {
  sectors: number;
  raysPerSector: number;
  maxRange: number;
  droneRadius: number;
  maxSpeed: number;
  maxDecel: number;
  maxAccel: number;
  /** deceleration with throttle below the speed and no brake (drag) */
  coastDecel: number;
  maxYawRate: number;
  dt: number;
  timeLimit: number;
  goalRadius: number;
}

export const SIM: SimParams = {
  sectors: 16,
  raysPerSector: 7,
  maxRange: 30,
  droneRadius: 0.3,
  maxSpeed: 5,
  maxDecel: 4,
  maxAccel: 3,
  coastDecel: 1,
  maxYawRate: 1.5,
  dt: 0.05,
  timeLimit: 90,
  goalRadius: 0.8,
};

export function makeCourse(seed: number, count = 22): Course {
  const rng = new Rng(seed * 7919 + 17);
  const start = { x: 0, y: 0, heading: (rng.next() - 0.5) * 1.0 };
  const goal = { x: 45, y: (rng.next() - 0.5) * 16 };
  const obstacles: Obstacle[] = [];
  let tries = 0;
  while (obstacles.length < count && tries++ < 10_000) {
    const o = { x: 4 + rng.next() * 38, y: (rng.next() - 0.5) * 26, r: 0.4 + rng.next() * 1.4 };
    if (Math.hypot(o.x - start.x, o.y - start.y) < o.r + 3) continue;
    if (Math.hypot(o.x - goal.x, o.y - goal.y) < o.r + 3) continue;
    obstacles.push(o);
  }
  return { seed, obstacles, start, goal };
}

/** Distance along a ray from (x, y) at angle a to the first obstacle surface, or Infinity. */
function cast(x: number, y: number, a: number, obs: Obstacle[]): number {
  const dx = Math.cos(a);
  const dy = Math.sin(a);
  let best = Number.POSITIVE_INFINITY;
  for (const o of obs) {
    const ox = o.x - x;
    const oy = o.y - y;
    const t = ox * dx + oy * dy;
    const perp2 = ox * ox + oy * oy - t * t;
    const r2 = o.r * o.r;
    if (perp2 > r2) continue;
    const h = Math.sqrt(r2 - perp2);
    const hit = t - h >= 0 ? t - h : t + h >= 0 ? 0 : Number.POSITIVE_INFINITY;
    if (hit < best) best = hit;
  }
  return best;
}

export function sense(p: SimParams, course: Course, x: number, y: number, heading: number): number[] {
  const w = (2 * Math.PI) / p.sectors;
  const out: number[] = [];
  for (let i = 0; i < p.sectors; i++) {
    let d = Number.POSITIVE_INFINITY;
    for (let k = 0; k < p.raysPerSector; k++) {
      const a = heading + i * w - w / 2 + ((k + 0.5) * w) / p.raysPerSector;
      d = Math.min(d, cast(x, y, a, course.obstacles));
    }
    // distance from the hull, as the sensors on it report
    out.push(Math.min(p.maxRange, Math.max(0, d - p.droneRadius)));
  }
  return out;
}

export interface Controls {
  throttle: number;
  brake: number;
  yaw: number;
}

export interface Frame {
  distances: number[];
  speed: number;
  goalBearing: number;
  goalDistance: number;
  heading: number;
}

export interface SimResult {
  seed: number;
  collided: boolean;
  reached: boolean;
  time: number;
  minClearance: number;
  maxSpeed: number;
}

const wrap = (a: number) => {
  let x = a % (2 * Math.PI);
  if (x <= -Math.PI) x += 2 * Math.PI;
  else if (x > Math.PI) x -= 2 * Math.PI;
  return x;
};

/** One flight: frames out, controls in, until the goal, a collision or the time limit. */
class Flight {
  x: number;
  y: number;
  heading: number;
  v = 0;
  t = 0;
  minClearance = Number.POSITIVE_INFINITY;
  vmax = 0;
  constructor(
    readonly course: Course,
    readonly p: SimParams,
  ) {
    ({ x: this.x, y: this.y, heading: this.heading } = course.start);
  }

  /** The next frame, or the result when the flight is over. */
  frame(): Frame | SimResult {
    const { course, p } = this;
    const gd = Math.hypot(course.goal.x - this.x, course.goal.y - this.y);
    if (gd < p.goalRadius) return this.result(false, true);
    if (this.t >= p.timeLimit) return this.result(false, false);
    return {
      distances: sense(p, course, this.x, this.y, this.heading),
      speed: this.v,
      goalBearing: wrap(Math.atan2(course.goal.y - this.y, course.goal.x - this.x) - this.heading),
      goalDistance: gd,
      heading: this.heading,
    };
  }

  /** Flies one step; a result when it collided. */
  step(c: Controls): SimResult | undefined {
    const p = this.p;
    const throttle = Math.min(1, Math.max(0, c.throttle));
    const brake = Math.min(1, Math.max(0, c.brake));
    const yaw = Math.min(1, Math.max(-1, c.yaw));
    if (brake > 0) this.v = Math.max(0, this.v - brake * p.maxDecel * p.dt);
    else {
      const target = throttle * p.maxSpeed;
      this.v += Math.min(p.maxAccel * p.dt, Math.max(-p.coastDecel * p.dt, target - this.v));
    }
    this.heading = wrap(this.heading + yaw * p.maxYawRate * p.dt);
    this.x += this.v * Math.cos(this.heading) * p.dt;
    this.y += this.v * Math.sin(this.heading) * p.dt;
    this.vmax = Math.max(this.vmax, this.v);
    this.t += p.dt;
    for (const o of this.course.obstacles) {
      const clear = Math.hypot(o.x - this.x, o.y - this.y) - o.r - p.droneRadius;
      this.minClearance = Math.min(this.minClearance, clear);
      if (clear < 0) return this.result(true, false);
    }
    return undefined;
  }

  result(collided: boolean, reached: boolean): SimResult {
    return {
      seed: this.course.seed,
      collided,
      reached,
      time: this.t,
      minClearance: this.minClearance,
      maxSpeed: this.vmax,
    };
  }
}

const isFrame = (x: Frame | SimResult): x is Frame => 'distances' in x;

export function simulate(course: Course, control: (f: Frame) => Controls, p: SimParams = SIM): SimResult {
  const flight = new Flight(course, p);
  for (;;) {
    const f = flight.frame();
    if (!isFrame(f)) return f;
    const end = flight.step(control(f));
    if (end) return end;
  }
}

export async function simulateAsync(
  course: Course,
  control: (f: Frame) => Promise<Controls>,
  p: SimParams = SIM,
): Promise<SimResult> {
  const flight = new Flight(course, p);
  for (;;) {
    const f = flight.frame();
    if (!isFrame(f)) return f;
    const end = flight.step(await control(f));
    if (end) return end;
  }
}
