// npm run eval -- drone [--courses N] [--first SEED]
// The drone learner over many generated obstacle courses (actuators/devices/drone-sim.ts,
// generateCourse({ seed })), beside a naive baseline in the same run: fly straight at the goal and
// brake before what is ahead (never steers round). Both fly through the same emission gate as the
// learner host applies (dwell, hysteresis, urgent direction, on the simulated clock), in lock step:
// frame -> controller -> gate -> controls -> next tick, as runClosedLoop does over the bus, without
// the bus (its path is tested in test/actuators/devices/closed-loop.test.ts).
// Reports arrival rate, collisions, time to goal, and the seeds of every failed course.
import { type Course, type DroneControls, DroneSim, generateCourse } from '../actuators/devices/index.ts';
import { DRONE_MODEL, DRONE_VARIABLES, DroneLearner } from '../learners/drone.ts';
import { EmissionGate } from '../learners/gate.ts';
import type { Proposal } from '../learners/types.ts';
import type { DroneSensorFrame } from '../schemas/index.ts';
import { median } from './util.ts';

export type Pilot = (frame: DroneSensorFrame) => Promise<Proposal[]>;

export interface Flight {
  seed: number;
  status: 'arrived' | 'crashed' | 'timeout';
  /** simulated ms, when arrived */
  timeMs: number | undefined;
  collisions: number;
  hit: string | undefined;
}

/** The drone learner as the host runs it (per-device memory, learnt braking). */
export function learnerPilot(): Pilot {
  const l = new DroneLearner();
  return (f) => l.onDrone([f]);
}

/** The naive baseline: yaw toward the goal, full throttle, brake to stop short of what is ahead. */
export function straightPilot(): Pilot {
  return async (f) => {
    const ahead = Math.min(f.distances[0] ?? 0, f.distances[1] ?? 0, f.distances.at(-1) ?? 0);
    const bearing = f.goalBearing ?? 0;
    // 6 m/s² brake of the simulated drone, half of it planned, plus half a metre
    const stop = (f.speed * f.speed) / 6 + 0.5;
    const brake = ahead < stop ? 1 : 0;
    const throttle = brake ? 0 : Math.max(0, Math.cos(bearing));
    const yaw = Math.max(-1, Math.min(1, bearing / 0.75));
    return (
      [
        ['pxrc.throttle', throttle],
        ['pxrc.brake', brake],
        ['pxrc.yaw', yaw],
      ] as const
    ).map(([key, value]) => ({
      host: f.deviceId,
      key,
      value,
      why: 'straight',
      confidence: 1,
      model: 'straight',
    }));
  };
}

/** One course flown by `pilot` through the declared variables' gate; the simulation's clock. */
export async function flyGated(course: Course, pilot: Pilot, maxSimMs = 180_000): Promise<Flight> {
  const sim = new DroneSim(course);
  const declared = new Map(DRONE_VARIABLES.map((d) => [d.key, { decl: d, learner: 'drone' }]));
  const gate = new EmissionGate(declared, () => undefined);
  // what the drone reads: failsafe (full brake) until a command arrives
  const controls: DroneControls = { throttle: 0, brake: 1, yaw: 0 };
  const set = (key: string, value: string) => {
    const n = Number(value);
    if (key === 'pxrc.throttle') controls.throttle = n;
    else if (key === 'pxrc.brake') controls.brake = n;
    else if (key === 'pxrc.yaw') controls.yaw = n;
  };
  const decideNow = async () => {
    const s = sim.sense();
    const st = sim.state;
    const f: DroneSensorFrame = {
      deviceId: `pxrc-${course.seed}`,
      seq: st.tick,
      ts: st.t,
      distances: s.distances,
      speed: st.speed,
      heading: st.heading,
      goalBearing: s.goalBearing,
      goalDistance: s.goalDistance,
    };
    for (const p of await pilot(f)) {
      const r = gate.propose('drone', { ...p, model: p.model || DRONE_MODEL }, f.ts);
      if (r.error) throw new Error(r.error);
      if (r.variable) set(r.variable.key, r.variable.value);
    }
    for (const v of gate.release(f.ts)) set(v.key, v.value);
  };
  await decideNow();
  while (!sim.done && sim.state.t < maxSimMs) {
    sim.step(controls);
    if (sim.done) break;
    await decideNow();
  }
  const s = sim.state;
  return {
    seed: course.seed,
    status: s.status === 'flying' ? 'timeout' : s.status,
    timeMs: s.status === 'arrived' ? s.t : undefined,
    collisions: s.collisions,
    hit: s.hit,
  };
}

export interface FleetSummary {
  courses: number;
  arrived: number;
  arrivalRate: number;
  collisions: number;
  timeouts: number;
  meanTimeToGoalS: number;
  medianTimeToGoalS: number;
  failedSeeds: number[];
}

export function summariseFlights(flights: readonly Flight[]): FleetSummary {
  const times = flights.flatMap((f) => (f.timeMs === undefined ? [] : [f.timeMs / 1000]));
  const arrived = times.length;
  return {
    courses: flights.length,
    arrived,
    arrivalRate: flights.length ? arrived / flights.length : Number.NaN,
    collisions: flights.filter((f) => f.collisions > 0).length,
    timeouts: flights.filter((f) => f.status === 'timeout').length,
    meanTimeToGoalS: arrived ? times.reduce((a, b) => a + b, 0) / arrived : Number.NaN,
    medianTimeToGoalS: arrived ? median(times) : Number.NaN,
    failedSeeds: flights.filter((f) => f.status !== 'arrived').map((f) => f.seed),
  };
}

export async function flyFleet(seeds: readonly number[], pilot: () => Pilot): Promise<FleetSummary> {
  const flights: Flight[] = [];
  for (const seed of seeds) flights.push(await flyGated(generateCourse({ seed }), pilot()));
  return summariseFlights(flights);
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

export default async function evalDrone(args: string[]): Promise<number> {
  const n = Number(flag(args, 'courses') ?? 1000);
  const first = Number(flag(args, 'first') ?? 1);
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(first)) {
    console.error('usage: npm run eval -- drone [--courses N] [--first SEED]');
    return 2;
  }
  const seeds = Array.from({ length: n }, (_, i) => first + i);
  const t0 = Date.now();
  const learner = await flyFleet(seeds, learnerPilot);
  const t1 = Date.now();
  const straight = await flyFleet(seeds, straightPilot);
  const line = (name: string, s: FleetSummary) =>
    `${name.padEnd(30)} arrived ${s.arrived}/${s.courses} (${(100 * s.arrivalRate).toFixed(1)}%)  collisions ${s.collisions}  timeouts ${s.timeouts}  time to goal mean ${s.meanTimeToGoalS.toFixed(1)} s median ${s.medianTimeToGoalS.toFixed(1)} s`;
  console.log(
    `courses: generateCourse({ seed }) for seeds ${first}..${first + n - 1} (40 x 60 m, 14 obstacles, gaps >= 2.5 m), 180 s limit each`,
  );
  console.log(line(`drone learner (${DRONE_MODEL})`, learner));
  console.log(line('baseline: straight and brake', straight));
  console.log(`learner failures (seeds): ${learner.failedSeeds.join(' ') || 'none'}`);
  console.log(`learner: ${((t1 - t0) / 1000).toFixed(1)} s wall for ${n} courses`);
  console.log(JSON.stringify({ seeds: { first, n }, learner, baseline: { straightAndBrake: straight } }));
  return 0;
}
