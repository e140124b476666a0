// A small deterministic 2-D flight model of a PXRC-controlled drone: position, speed, heading,
// circular obstacles inside a walled arena, and a goal. Pure: no clock, no I/O, no Math.random;
// the same course and the same controls give the same flight on every machine.
//
// Conventions (those of DroneSensorFrame): x east, y north, metres; angles in radians, compass
// style, clockwise positive. Heading 0 flies north (+y), π/2 east. goalBearing and the sectors are
// relative to the heading, clockwise: sector 0 dead ahead, sector S/4 to the right. yaw > 0 turns
// clockwise, i.e. toward a positive bearing.
import { seededRandom, uniform } from '../../runtime/rng.ts';

export interface Point {
  x: number;
  y: number;
}

export interface Obstacle extends Point {
  r: number;
}

export interface Course {
  seed: number;
  width: number;
  height: number;
  start: Point & { heading: number };
  goal: Point;
  /** reached when the drone's centre is this close to the goal */
  goalRadius: number;
  obstacles: Obstacle[];
}

export interface DroneParams {
  /** hull radius, m */
  radius: number;
  /** speed at full throttle, m/s */
  maxSpeed: number;
  /** m/s² at full throttle */
  maxAccel: number;
  /** m/s² at full brake */
  maxBrake: number;
  /** m/s² lost to drag with the throttle below the current speed */
  dragDecel: number;
  /** rad/s at |yaw| = 1 */
  maxYawRate: number;
  /** sensor range, m */
  sensorRange: number;
  sectors: number;
  raysPerSector: number;
  /** simulation step, ms */
  dtMs: number;
}

export const DEFAULT_DRONE: DroneParams = {
  radius: 0.3,
  maxSpeed: 4,
  maxAccel: 2.5,
  maxBrake: 6,
  dragDecel: 1,
  maxYawRate: 1.5,
  sensorRange: 15,
  sectors: 8,
  raysPerSector: 3,
  dtMs: 50,
};

export interface DroneControls {
  /** 0..1: fraction of maxSpeed to reach */
  throttle: number;
  /** 0..1: fraction of maxBrake; any brake overrides the throttle */
  brake: number;
  /** -1..1: fraction of maxYawRate, positive clockwise */
  yaw: number;
  /** optional cap on speed, m/s (an operator's or learner's speed limit) */
  maxSpeed?: number;
}

export type DroneStatus = 'flying' | 'arrived' | 'crashed';

export interface DroneState extends Point {
  heading: number;
  speed: number;
  /** simulated time, ms */
  t: number;
  tick: number;
  status: DroneStatus;
  collisions: number;
  /** metres flown */
  travelled: number;
  /** what the drone hit, when it crashed */
  hit?: string;
}

export interface Senses {
  /** clearance (m, from the hull) to the nearest obstacle or wall per sector, capped at the range */
  distances: number[];
  goalBearing: number;
  goalDistance: number;
}

const TAU = 2 * Math.PI;

/** An angle in (-π, π]. */
export function wrapAngle(a: number): number {
  let x = a % TAU;
  if (x <= -Math.PI) x += TAU;
  else if (x > Math.PI) x -= TAU;
  return x;
}

/** Compass bearing from `a` to `b` (clockwise from north). */
export function bearing(a: Point, b: Point): number {
  return Math.atan2(b.x - a.x, b.y - a.y);
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

/** Distance along the unit direction (dx, dy) from p to circle c, or Infinity; 0 from inside. */
export function rayCircle(p: Point, dx: number, dy: number, c: Obstacle): number {
  const fx = p.x - c.x;
  const fy = p.y - c.y;
  const cc = fx * fx + fy * fy - c.r * c.r;
  if (cc <= 0) return 0;
  const b = fx * dx + fy * dy;
  if (b > 0) return Number.POSITIVE_INFINITY;
  const disc = b * b - cc;
  if (disc < 0) return Number.POSITIVE_INFINITY;
  return -b - Math.sqrt(disc);
}

/** Distance along (dx, dy) from p, inside the arena, to its wall. */
export function rayWalls(p: Point, dx: number, dy: number, width: number, height: number): number {
  const tx = dx > 1e-12 ? (width - p.x) / dx : dx < -1e-12 ? -p.x / dx : Number.POSITIVE_INFINITY;
  const ty = dy > 1e-12 ? (height - p.y) / dy : dy < -1e-12 ? -p.y / dy : Number.POSITIVE_INFINITY;
  return Math.max(0, Math.min(tx, ty));
}

export class DroneSim {
  readonly params: DroneParams;
  readonly state: DroneState;

  constructor(
    readonly course: Course,
    params: Partial<DroneParams> = {},
  ) {
    this.params = { ...DEFAULT_DRONE, ...params };
    if (this.params.sectors < 1 || this.params.raysPerSector < 1)
      throw new RangeError('sectors and rays must be >= 1');
    this.state = {
      x: course.start.x,
      y: course.start.y,
      heading: course.start.heading,
      speed: 0,
      t: 0,
      tick: 0,
      status: 'flying',
      collisions: 0,
      travelled: 0,
    };
  }

  get done(): boolean {
    return this.state.status !== 'flying';
  }

  /** Advances one step of dtMs under the controls. Does nothing once arrived or crashed. */
  step(c: DroneControls): void {
    const s = this.state;
    if (s.status !== 'flying') return;
    const p = this.params;
    const dt = p.dtMs / 1000;
    const yaw = Number.isFinite(c.yaw) ? Math.min(1, Math.max(-1, c.yaw)) : 0;
    const brake = clamp01(c.brake);
    const cap =
      c.maxSpeed !== undefined && Number.isFinite(c.maxSpeed) ? Math.max(0, c.maxSpeed) : p.maxSpeed;
    const target = Math.min(clamp01(c.throttle) * p.maxSpeed, cap);
    s.heading = wrapAngle(s.heading + yaw * p.maxYawRate * dt);
    if (brake > 0) s.speed = Math.max(0, s.speed - brake * p.maxBrake * dt);
    else if (s.speed < target) s.speed = Math.min(target, s.speed + p.maxAccel * dt);
    else if (s.speed > target) s.speed = Math.max(target, s.speed - p.dragDecel * dt);
    if (s.speed > cap) s.speed = Math.max(cap, s.speed - p.maxBrake * dt);
    const dx = Math.sin(s.heading) * s.speed * dt;
    const dy = Math.cos(s.heading) * s.speed * dt;
    const hit = this.sweep(dx, dy);
    const f = hit ? hit.t : 1;
    s.x += dx * f;
    s.y += dy * f;
    s.travelled += Math.hypot(dx, dy) * f;
    s.tick++;
    s.t = s.tick * p.dtMs;
    if (hit) {
      s.status = 'crashed';
      s.collisions++;
      s.speed = 0;
      s.hit = hit.what;
      return;
    }
    if (Math.hypot(this.course.goal.x - s.x, this.course.goal.y - s.y) <= this.course.goalRadius) {
      s.status = 'arrived';
    }
  }

  /** The earliest contact of the hull along the move (dx, dy), as a fraction of it. */
  private sweep(dx: number, dy: number): { t: number; what: string } | undefined {
    const s = this.state;
    const R = this.params.radius;
    const len = Math.hypot(dx, dy);
    let best: { t: number; what: string } | undefined;
    const consider = (t: number, what: string) => {
      if (t <= 1 && (!best || t < best.t)) best = { t: Math.max(0, t), what };
    };
    if (len > 0) {
      const ux = dx / len;
      const uy = dy / len;
      for (let i = 0; i < this.course.obstacles.length; i++) {
        const o = this.course.obstacles[i]!;
        const d = rayCircle(s, ux, uy, { x: o.x, y: o.y, r: o.r + R });
        if (d !== Number.POSITIVE_INFINITY)
          consider(d / len, `obstacle ${i} at (${o.x.toFixed(1)}, ${o.y.toFixed(1)})`);
      }
      const { width, height } = this.course;
      const inner = { x: s.x - R, y: s.y - R };
      const w = rayWalls(inner, ux, uy, width - 2 * R, height - 2 * R);
      consider(w / len, 'arena wall');
    }
    return best;
  }

  /** The sensors now: sector clearances by ray casting, and the goal relative to the heading. */
  sense(): Senses {
    const s = this.state;
    const p = this.params;
    const width = TAU / p.sectors;
    const distances: number[] = [];
    for (let i = 0; i < p.sectors; i++) {
      let nearest = p.sensorRange + p.radius;
      for (let j = 0; j < p.raysPerSector; j++) {
        const rel = i * width + ((j + 0.5) / p.raysPerSector - 0.5) * width;
        const a = s.heading + rel;
        const ux = Math.sin(a);
        const uy = Math.cos(a);
        nearest = Math.min(nearest, rayWalls(s, ux, uy, this.course.width, this.course.height));
        for (const o of this.course.obstacles) nearest = Math.min(nearest, rayCircle(s, ux, uy, o));
      }
      distances.push(Math.min(p.sensorRange, Math.max(0, nearest - p.radius)));
    }
    const g = this.course.goal;
    return {
      distances,
      goalBearing: wrapAngle(bearing(s, g) - s.heading),
      goalDistance: Math.hypot(g.x - s.x, g.y - s.y),
    };
  }
}

export interface CourseOptions {
  seed: number;
  width?: number;
  height?: number;
  obstacles?: number;
  minRadius?: number;
  maxRadius?: number;
  /** free space between any two obstacles, and between an obstacle and a wall, m */
  minGap?: number;
  /** no obstacle within this distance of the start or the goal, m */
  clearance?: number;
  /** put the first obstacle across the straight line from start to goal */
  blockLine?: boolean;
  goalRadius?: number;
}

/**
 * A seeded obstacle course. Every gap (obstacle-obstacle, obstacle-wall) is at least minGap, so
 * with minGap above the hull's diameter the free space is connected: a path to the goal exists.
 */
export function generateCourse(opts: CourseOptions): Course {
  const rand = seededRandom(opts.seed);
  const width = opts.width ?? 40;
  const height = opts.height ?? 60;
  const n = opts.obstacles ?? 14;
  const minR = opts.minRadius ?? 0.8;
  const maxR = opts.maxRadius ?? 2.2;
  const gap = opts.minGap ?? 2.5;
  const clear = opts.clearance ?? 5;
  const start = { x: uniform(rand, width * 0.3, width * 0.7), y: 3, heading: 0 };
  const goal = { x: uniform(rand, width * 0.2, width * 0.8), y: height - 4 };
  const obstacles: Obstacle[] = [];
  const fits = (o: Obstacle) =>
    o.x - o.r >= gap &&
    o.x + o.r <= width - gap &&
    o.y - o.r >= gap &&
    o.y + o.r <= height - gap &&
    Math.hypot(o.x - start.x, o.y - start.y) >= o.r + clear &&
    Math.hypot(o.x - goal.x, o.y - goal.y) >= o.r + clear &&
    obstacles.every((q) => Math.hypot(o.x - q.x, o.y - q.y) >= o.r + q.r + gap);
  if (opts.blockLine !== false && n > 0) {
    for (let tries = 0; tries < 100; tries++) {
      const f = uniform(rand, 0.3, 0.6);
      const o = { x: start.x + (goal.x - start.x) * f, y: start.y + (goal.y - start.y) * f, r: maxR };
      if (fits(o)) {
        obstacles.push(o);
        break;
      }
    }
  }
  for (let tries = 0; obstacles.length < n && tries < 5_000; tries++) {
    const r = uniform(rand, minR, maxR);
    const o = { x: uniform(rand, r + gap, width - r - gap), y: uniform(rand, r + gap, height - r - gap), r };
    if (fits(o)) obstacles.push(o);
  }
  return { seed: opts.seed, width, height, start, goal, goalRadius: opts.goalRadius ?? 1.5, obstacles };
}
