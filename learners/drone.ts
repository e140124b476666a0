// Drone navigation: obstacle distances around a PXRC drone to throttle, brake and yaw.
//
// `decide(frame)` is a pure function (the core the simulator and the tests drive directly): a
// vector-field-histogram style choice of the most open sector near the goal bearing, a speed that
// can always stop before what is ahead, and time-to-collision (TTC) braking. The learner around it
// keeps per-device state and learns one thing online: the deceleration the vehicle really achieves
// under braking, so a heavier or worn drone gets a more cautious speed envelope.
//
// Conventions (the contract for simulators and device models):
//   distances[i]  metres from the hull to the nearest obstacle in sector i; sector 0 is centred
//                 dead ahead, sectors go clockwise, N sectors of 360/N degrees each; a value >=
//                 maxRange or Infinity means nothing seen; NaN (a failed reading) counts as
//                 an obstacle at 0 m
//   goalBearing   radians relative to the heading, positive clockwise (to the right), like sectors
//   throttle      0..1, the fraction of maxSpeed the vehicle should fly at
//   brake         0..1, the fraction of maxDecel to decelerate with (throttle is 0 when braking)
//   yaw           -1..1, the fraction of maxYawRate to turn at, positive clockwise
import { join } from 'node:path';
import type { DroneSensorFrame } from '../schemas/index.ts';
import { readJson, writeJsonAtomic } from './snapshot.ts';
import type { Learner, LearnerContext, Proposal, VariableDecl } from './types.ts';

export const DRONE_MODEL = 'drone-vfh@1';

export interface DroneParams {
  /** m/s at throttle 1 */
  maxSpeed: number;
  /** m/s² at brake 1 */
  maxDecel: number;
  /** rad/s at |yaw| 1 */
  maxYawRate: number;
  /** metres of hull half-width the flight corridor must clear */
  radius: number;
  /** extra metres kept from every obstacle */
  margin: number;
  /** TTC (s) under which the drone brakes to stop short of what is ahead */
  ttcBrake: number;
  /** TTC (s) under which it brakes fully */
  ttcHard: number;
  /** seconds of flight that must be free for a sector to count as open */
  lookahead: number;
  /** sensor range; readings at or beyond it mean nothing seen */
  maxRange: number;
  /** fraction of maxDecel the speed envelope plans with (the rest is reserve) */
  planDecel: number;
  /** metres a direction must be clear, at least, to be taken */
  minOpen: number;
  /** decisions a detour may last before trying the other side */
  maxDetour: number;
  /** metres a direction must be clear to creep into when nothing is open at cruise */
  creepOpen: number;
  /** m/s while creeping */
  creepSpeed: number;
}

export const DEFAULT_DRONE_PARAMS: DroneParams = {
  maxSpeed: 5,
  maxDecel: 4,
  maxYawRate: 1.5,
  radius: 0.3,
  margin: 0.2,
  ttcBrake: 2,
  ttcHard: 0.7,
  lookahead: 1.2,
  maxRange: 30,
  planDecel: 0.5,
  minOpen: 5,
  maxDetour: 300,
  creepOpen: 1.5,
  creepSpeed: 1,
};

export interface DroneCommand {
  throttle: number;
  brake: number;
  yaw: number;
  /** seconds to reach what is ahead at the current speed (Infinity when nothing is) */
  ttc: number;
  /** metres of clear corridor ahead */
  ahead: number;
  /** chosen direction, radians relative to the heading, positive clockwise */
  target: number;
  /** pass to the next decision of the same vehicle */
  memory: DroneMemory;
  mode: 'cruise' | 'avoid' | 'brake' | 'boxed' | 'arrived' | 'blind';
}

export type DroneInput = Pick<DroneSensorFrame, 'distances' | 'speed' | 'goalBearing' | 'goalDistance'> & {
  heading?: number;
};

/** What one decision leaves for the next: the detour in progress, if any. */
export interface DroneMemory {
  /** 0 heading for the goal; +1 going round an obstacle clockwise (right), -1 anticlockwise */
  side: number;
  /** goal distance where the detour began: it ends only nearer than this */
  hitDist: number;
  /** decisions spent on this detour */
  steps: number;
  /** the direction chosen last, world frame (needs frame.heading), or null */
  worldTarget: number | null;
}

const TAU = 2 * Math.PI;
/** m/s above the wanted speed (for a turn or the goal, not an obstacle) before braking */
const SLOW_SLACK = 2;

/** Angle into (-π, π]. */
export function wrap(a: number): number {
  let x = a % TAU;
  if (x <= -Math.PI) x += TAU;
  else if (x > Math.PI) x -= TAU;
  return x;
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/**
 * One control decision from one sensor frame. Pure: same frame, params and memory, same command.
 * `memory` is the previous command's memory for the same vehicle (undefined at the start).
 */
export function decide(
  frame: DroneInput,
  params: Partial<DroneParams> = {},
  memory?: DroneMemory,
): DroneCommand {
  const p = { ...DEFAULT_DRONE_PARAMS, ...params };
  const n = frame.distances.length;
  const v = Number.isFinite(frame.speed) ? Math.max(0, frame.speed) : 0;
  const heading = frame.heading !== undefined && Number.isFinite(frame.heading) ? frame.heading : 0;
  if (n === 0) {
    return {
      throttle: 0,
      brake: v > 0 ? 1 : 0,
      yaw: 0,
      ttc: 0,
      ahead: 0,
      target: 0,
      memory: memory ?? { side: 0, hitDist: Infinity, steps: 0, worldTarget: null },
      mode: 'blind',
    };
  }
  const width = TAU / n;
  const angle = (i: number) => wrap(i * width);
  // Clearance per sector after the margin; unknown readings are as good as nothing seen.
  const d = frame.distances.map((x) =>
    Math.max(0, (Number.isFinite(x) ? Math.min(x, p.maxRange) : Number.isNaN(x) ? 0 : p.maxRange) - p.margin),
  );
  // Clear corridor along direction i: the nearest reading among sectors with any point within
  // the hull's half-width of the flight line (so a narrow sector never looks open beside a post).
  const half = p.radius + p.margin;
  const corridor = (i: number): number => {
    let c = p.maxRange;
    for (let j = 0; j < n; j++) {
      const off = Math.max(0, Math.abs(wrap((j - i) * width)) - width / 2);
      if (off < Math.PI / 2 && d[j]! * Math.sin(off) < half) c = Math.min(c, d[j]!);
    }
    return c;
  };
  const s = d.map((_, i) => corridor(i));
  const ahead = s[0]!;
  // Front half-plane, side obstacles weighted as nearer the more they face us (speed envelope).
  let front = p.maxRange;
  for (let i = 0; i < n; i++) {
    const nearest = Math.max(0, Math.abs(angle(i)) - width / 2);
    if (nearest < Math.PI / 2) front = Math.min(front, d[i]! / Math.max(0.5, Math.cos(nearest)));
  }
  const ttc = v > 0.05 ? ahead / v : Number.POSITIVE_INFINITY;

  const goal = frame.goalBearing !== null && Number.isFinite(frame.goalBearing) ? wrap(frame.goalBearing) : 0;
  const goalDist =
    frame.goalDistance !== null && Number.isFinite(frame.goalDistance)
      ? Math.max(0, frame.goalDistance)
      : Infinity;
  if (goalDist < 0.3) {
    return {
      throttle: 0,
      brake: v > 0.05 ? 1 : 0,
      yaw: 0,
      ttc,
      ahead,
      target: 0,
      memory: { side: 0, hitDist: Infinity, steps: 0, worldTarget: null },
      mode: 'arrived',
    };
  }

  // A sector is open when it is free for the stopping distance plus lookahead (and never less
  // than minOpen, so the drone does not nose into pockets); the goal's own sector also counts
  // when the goal is nearer than its obstacle.
  const aPlan = p.maxDecel * p.planDecel;
  const vRef = Math.max(v, 1);
  const need = Math.max(p.minOpen, (vRef * vRef) / (2 * aPlan) + vRef * p.lookahead);
  const goalSector = ((Math.round(goal / width) % n) + n) % n;
  let open = s.map((x, i) => x >= need || (i === goalSector && x >= goalDist));
  // Nothing open at cruise: creep (at most creepSpeed) through whatever a slow drone can stop in.
  const creep = !open.some(Boolean);
  if (creep) {
    const creepNeed = Math.max(p.creepOpen, (v * v) / (2 * aPlan) + 0.5);
    open = s.map((x) => x >= creepNeed);
  }
  // Tangent-bug style: fly at the goal while its direction is open; when it is blocked, commit to
  // going round the obstacle on one side (the side with the nearer opening) and keep that side
  // until the goal is open again and nearer than where the detour began. Committing is what stops
  // the side-to-side dithering that traps a memoryless gap chooser in clutter.
  const firstOpen = (from: number, dir: number): number => {
    for (let k = 0; k < n; k++) {
      const i = (((from + dir * k) % n) + n) % n;
      if (!open[i]) continue;
      // One sector into the opening when it is wide enough: its edge borders the obstacle.
      const j = (((i + dir) % n) + n) % n;
      return k > 0 && open[j] ? j : i;
    }
    return -1;
  };
  const mem: DroneMemory = memory
    ? { ...memory }
    : { side: 0, hitDist: Infinity, steps: 0, worldTarget: null };
  let mode: DroneCommand['mode'] = 'cruise';
  let target: number;
  let chosen = -1;
  if (open[goalSector] && (mem.side === 0 || goalDist < mem.hitDist - 0.5)) {
    mem.side = 0;
    mem.steps = 0;
    chosen = goalSector;
    target = Math.abs(wrap(goal - angle(goalSector))) <= width / 2 ? goal : angle(goalSector);
  } else {
    if (mem.side === 0 || mem.steps > p.maxDetour) {
      const right = firstOpen(goalSector, 1);
      const left = firstOpen(goalSector, -1);
      const dr = right < 0 ? n : (right - goalSector + n) % n;
      const dl = left < 0 ? n : (goalSector - left + n) % n;
      // A detour that ran too long turns round: the other side may be the way out.
      const fresh: 1 | -1 = dr < dl || (dr === dl && goal >= 0) ? 1 : -1;
      mem.side = mem.steps > p.maxDetour ? -mem.side : fresh;
      mem.hitDist = goalDist;
      mem.steps = 0;
    }
    mem.steps++;
    chosen = firstOpen(goalSector, mem.side);
    target = chosen >= 0 ? angle(chosen) : 0;
    // Keep the previous detour direction while it stays open, unless the opening nearest the goal
    // is clearly (two sectors) better: switching on one sector of quantisation makes it dither.
    if (chosen >= 0 && mem.worldTarget !== null) {
      const prevRel = wrap(mem.worldTarget - heading);
      const prev = ((Math.round(prevRel / width) % n) + n) % n;
      const fromGoal = (i: number) => ((((i - goalSector) * mem.side) % n) + n) % n;
      // A turn on the spot finishes before anything is reconsidered: the world does not change
      // while the drone rotates in place, only how the sectors cut it.
      const turning = v < 0.3 && Math.abs(prevRel) > width / 2;
      if (open[prev] && (turning || fromGoal(chosen) >= fromGoal(prev) - 1)) {
        chosen = prev;
        target = prevRel;
      }
    }
    mode = 'avoid';
  }
  if (chosen < 0) {
    // Boxed in: stop and turn toward the most open direction.
    let most = 0;
    for (let i = 1; i < n; i++) if (s[i]! > s[most]!) most = i;
    target = angle(most);
    mode = 'boxed';
  }

  const yaw = clamp(target / (p.maxYawRate * 0.5), -1, 1);
  // Speed envelope: stop before the corridor ahead and before side obstacles we may turn into,
  // slow for sharp turns, arrive at the goal without overshooting.
  const vAhead = Math.sqrt(2 * aPlan * Math.max(0, ahead - 0.2));
  const vFront = Math.sqrt(2 * aPlan * Math.max(0, front - 0.2)) + 0.3;
  const c = Math.cos(target);
  const vTurn = c > 0.5 ? p.maxSpeed * (c - 0.5) * 2 : 0;
  const vGoal = Math.sqrt(2 * aPlan * goalDist) + 0.2;
  let vSafe = Math.min(p.maxSpeed, vAhead, vFront, creep ? p.creepSpeed : p.maxSpeed);
  if (mode === 'boxed') vSafe = 0;
  const vWant = Math.min(vSafe, vTurn, vGoal);

  let throttle = clamp(vWant / p.maxSpeed, 0, 1);
  let brake = 0;
  if (ttc < p.ttcHard) {
    brake = 1;
  } else {
    // Deceleration needed to stop short of what is ahead, and to get down to the wanted speed.
    const stopNeed = ttc < p.ttcBrake ? (v * v) / (2 * Math.max(0.05, ahead - 0.1)) / p.maxDecel : 0;
    // Slowing for safety brakes at once; slowing for a turn or the goal brakes only a clear excess
    // and otherwise lets drag do it: the brake is released only after its dwell (250 ms), so
    // small brake pulses while turning on the spot would hold the drone still.
    const over = v > vSafe + 0.1 ? v - vWant : v > vWant + SLOW_SLACK ? v - vWant : 0;
    const slowNeed = over / (p.maxDecel * 0.5);
    brake = clamp(Math.max(stopNeed * 1.2, slowNeed), 0, 1);
  }
  if (brake > 0) {
    throttle = 0;
    if (mode === 'cruise' || mode === 'avoid') mode = 'brake';
  }
  mem.worldTarget = frame.heading !== undefined ? wrap(heading + target) : null;
  return { throttle, brake, yaw, ttc, ahead, target, memory: mem, mode };
}

export const DRONE_VARIABLES: readonly VariableDecl[] = [
  {
    key: 'pxrc.throttle',
    type: 'float',
    unit: 'fraction',
    description: 'throttle: fraction of max speed to fly at (cut at once, raised at most every 100 ms)',
    min: 0,
    max: 1,
    decimals: 3,
    hysteresis: 0.02,
    definition: { kind: 'latest' },
    dwellMs: 100,
    urgent: 'down',
  },
  {
    key: 'pxrc.brake',
    type: 'float',
    unit: 'fraction',
    description: 'brake: fraction of max deceleration (engaged at once, released after 250 ms)',
    min: 0,
    max: 1,
    decimals: 3,
    hysteresis: 0.02,
    definition: { kind: 'latest' },
    dwellMs: 250,
    urgent: 'up',
  },
  {
    key: 'pxrc.yaw',
    type: 'float',
    unit: 'fraction',
    description: 'yaw: fraction of max yaw rate, positive clockwise (toward sector 1)',
    min: -1,
    max: 1,
    decimals: 3,
    hysteresis: 0.03,
    definition: { kind: 'latest' },
    dwellMs: 100,
  },
];

interface DeviceState {
  ts: number;
  speed: number;
  brake: number;
  /** EWMA of the deceleration achieved per unit of brake, m/s² */
  decel: number;
  samples: number;
  /** the previous decision's memory (the detour in progress) */
  memory?: DroneMemory;
}

export interface DroneOptions extends Partial<DroneParams> {}

export class DroneLearner implements Learner {
  readonly name = 'drone';
  readonly needsTf = false;
  readonly variables = DRONE_VARIABLES;
  private devices = new Map<string, DeviceState>();
  private frames = 0;
  private rejected = 0;
  private readonly params: DroneParams;

  constructor(opts: DroneOptions = {}) {
    this.params = { ...DEFAULT_DRONE_PARAMS, ...opts };
  }

  /** The braking this device has shown; the declared maximum until there is evidence. */
  effectiveDecel(device: string): number {
    const s = this.devices.get(device);
    if (!s || s.samples < 5) return this.params.maxDecel;
    return Math.min(this.params.maxDecel, s.decel);
  }

  async onDrone(frames: readonly DroneSensorFrame[]): Promise<Proposal[]> {
    const latest = new Map<string, DroneSensorFrame>();
    for (const f of frames) {
      this.frames++;
      if (!Array.isArray(f.distances) || f.distances.length === 0 || !Number.isFinite(f.speed)) {
        this.rejected++;
        continue;
      }
      this.observe(f);
      const cur = latest.get(f.deviceId);
      if (!cur || f.seq >= cur.seq) latest.set(f.deviceId, f);
    }
    const out: Proposal[] = [];
    for (const [device, f] of latest) {
      const decel = this.effectiveDecel(device);
      const st = this.devices.get(device);
      // Each device's detour memory goes from one decision to the next, so a way round an
      // obstacle is kept instead of being re-chosen (and flipped) every frame.
      const c = decide(f, { ...this.params, maxDecel: decel }, st?.memory);
      if (st) {
        st.brake = c.brake;
        st.memory = c.memory;
      }
      const gb =
        f.goalBearing === null ? 'none' : `${f.goalBearing >= 0 ? '+' : ''}${f.goalBearing.toFixed(2)}rad`;
      const gd = f.goalDistance === null ? '' : `/${f.goalDistance.toFixed(1)}m`;
      const why = `seq=${f.seq} mode=${c.mode} ttc=${Number.isFinite(c.ttc) ? c.ttc.toFixed(2) : 'inf'}s ahead=${c.ahead.toFixed(1)}m speed=${f.speed.toFixed(2)}m/s target=${c.target >= 0 ? '+' : ''}${c.target.toFixed(2)}rad goal=${gb}${gd} sectors=${f.distances.length} decel=${decel.toFixed(2)}`;
      const confidence = c.mode === 'boxed' || c.mode === 'blind' ? 0.5 : 1;
      out.push({
        host: device,
        key: 'pxrc.throttle',
        value: c.throttle,
        why,
        confidence,
        model: DRONE_MODEL,
      });
      out.push({ host: device, key: 'pxrc.brake', value: c.brake, why, confidence, model: DRONE_MODEL });
      out.push({ host: device, key: 'pxrc.yaw', value: c.yaw, why, confidence, model: DRONE_MODEL });
    }
    return out;
  }

  /** Learns the achieved deceleration from consecutive frames after a braking command. */
  private observe(f: DroneSensorFrame): void {
    let s = this.devices.get(f.deviceId);
    if (!s) {
      s = { ts: f.ts, speed: f.speed, brake: 0, decel: this.params.maxDecel, samples: 0 };
      this.devices.set(f.deviceId, s);
      return;
    }
    const dt = (f.ts - s.ts) / 1000;
    if (s.brake >= 0.5 && dt > 0 && dt <= 1 && f.speed > 0.1 && s.speed > f.speed) {
      const perUnit = (s.speed - f.speed) / dt / s.brake;
      s.decel = s.samples === 0 ? perUnit : 0.8 * s.decel + 0.2 * perUnit;
      s.samples++;
    }
    s.ts = f.ts;
    s.speed = f.speed;
  }

  async save(dir: string): Promise<void> {
    writeJsonAtomic(join(dir, 'state.json'), { devices: [...this.devices], frames: this.frames });
  }

  async load(dir: string): Promise<void> {
    const j = readJson<{ devices: [string, DeviceState][]; frames: number }>(join(dir, 'state.json'));
    // JSON has no Infinity: a detour not begun was saved as null
    for (const [, d] of j.devices) if (d.memory) d.memory.hitDist ??= Number.POSITIVE_INFINITY;
    this.devices = new Map(j.devices);
    this.frames = j.frames;
  }

  stats(): Record<string, number | string> {
    return { model: DRONE_MODEL, devices: this.devices.size, frames: this.frames, rejected: this.rejected };
  }

  dispose(): void {}
}

export async function createDroneLearner(
  _ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  return new DroneLearner(opts as DroneOptions);
}
