// The closed loop, in lock step: the drone ticks (reading its control variables), publishes its
// sensor frame on the bus; a subscriber hands the frame to a controller (the drone learner) and
// writes the commands it answers into the variable table; only then does the next tick run. So
// the whole path device → bus → learner → variables → device is exercised, and the flight is
// still deterministic (no race between the learner and the tick clock): given the course and the
// controller, the result is the same on every run.
import { randomUUID } from 'node:crypto';
import { type Bus, TOPICS, topicSpecs } from '../../bus/index.ts';
import { codecFor, type DroneSensorFrame } from '../../schemas/index.ts';
import type { DroneStatus } from './drone-sim.ts';
import type { PxrcDrone } from './pxrc.ts';

/** A controller's answer: variables (e.g. pxrc.throttle) of a host (the device id) with values. */
export interface Command {
  host: string;
  key: string;
  value: string | number;
}

export interface ClosedLoopOptions {
  drone: PxrcDrone;
  /** the bus the drone publishes on (the drone's own `bus` option) */
  bus: Bus;
  topic?: string;
  /** frames in, variable commands out: the drone learner */
  controller: (frames: DroneSensorFrame[]) => Command[] | Promise<Command[]>;
  /** writes one variable where the drone reads it (e.g. VariableTable.set) */
  write: (cmd: Command) => void;
  /** give up after this much simulated time (default 180 s) */
  maxSimMs?: number;
  /** a decision must arrive within this much wall time (default 5 s) */
  stepTimeoutMs?: number;
}

export interface FlightReport {
  seed: number;
  status: DroneStatus | 'timeout';
  /** simulated ms to the goal, when reached */
  timeToGoalMs: number | undefined;
  ticks: number;
  collisions: number;
  /** what was hit, on a crash */
  hit: string | undefined;
  /** the nearest any obstacle or wall came to the hull, m */
  minClearance: number;
  travelled: number;
  /** straight-line start-to-goal distance, m */
  straight: number;
  failsafeTicks: number;
}

export async function runClosedLoop(opts: ClosedLoopOptions): Promise<FlightReport> {
  const { drone, bus } = opts;
  const codec = codecFor('DroneSensorFrame');
  const waiters = new Map<number, () => void>();
  const decided = new Set<number>();
  let failure: Error | undefined;
  const topic = opts.topic ?? TOPICS.droneSensors;
  await bus.ensureTopics(
    topicSpecs()
      .filter((t) => t.topic === topic)
      .concat(topic === TOPICS.droneSensors ? [] : [{ topic }]),
  );
  // Frames already in the topic belong to earlier flights: read from the beginning of what is
  // there now (a fresh group) and skip below today's end offsets.
  const high = new Map((await bus.topicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
  const sub = await bus.subscribe({
    topics: [topic],
    groupId: `virgo-drone-loop-${randomUUID().slice(0, 8)}`,
    fromBeginning: true,
    onBatch: async (msgs) => {
      const frames: DroneSensorFrame[] = [];
      for (const m of msgs) {
        if (BigInt(m.offset) < (high.get(m.partition) ?? 0n)) continue;
        if (!m.value || m.key?.toString() !== drone.deviceId) continue;
        frames.push(codec.decode(m.value, { topic: m.topic, partition: m.partition, offset: m.offset }));
      }
      if (frames.length === 0) return;
      try {
        for (const c of await opts.controller(frames)) opts.write(c);
      } catch (err) {
        failure = err as Error;
      }
      for (const f of frames) {
        decided.add(f.seq);
        waiters.get(f.seq)?.();
      }
    },
  });
  await sub.ready;
  const course = drone.sim.course;
  const maxSimMs = opts.maxSimMs ?? 180_000;
  let minClearance = Number.POSITIVE_INFINITY;
  try {
    // the first frame is the drone at rest, so the learner arms it before it moves
    const first = drone.frame();
    minClearance = Math.min(...first.distances);
    await publishAndWait(drone, first);
    while (!drone.sim.done && drone.sim.state.t < maxSimMs) {
      const f = drone.tick();
      minClearance = Math.min(minClearance, ...f.distances);
      if (drone.sim.done) break;
      await waitDecision(f.seq);
    }
  } finally {
    await drone.idle();
    await sub.close();
  }
  const s = drone.sim.state;
  return {
    seed: course.seed,
    status: drone.sim.done ? s.status : 'timeout',
    timeToGoalMs: s.status === 'arrived' ? s.t : undefined,
    ticks: s.tick,
    collisions: s.collisions,
    hit: s.hit,
    minClearance,
    travelled: s.travelled,
    straight: Math.hypot(course.goal.x - course.start.x, course.goal.y - course.start.y),
    failsafeTicks: drone.stats.failsafeTicks,
  };

  async function publishAndWait(d: PxrcDrone, f: DroneSensorFrame): Promise<void> {
    await bus.publish(topic, [{ key: d.deviceId, value: codec.encode(f) }]);
    await waitDecision(f.seq);
  }

  function waitDecision(seq: number): Promise<void> {
    if (failure) return Promise.reject(failure);
    if (decided.has(seq)) {
      decided.delete(seq);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(seq);
        reject(new Error(`no decision for frame ${seq} within ${opts.stepTimeoutMs ?? 5_000} ms`));
      }, opts.stepTimeoutMs ?? 5_000);
      waiters.set(seq, () => {
        clearTimeout(timer);
        waiters.delete(seq);
        decided.delete(seq);
        if (failure) reject(failure);
        else resolve();
      });
    });
  }
}
