// The PXRC drone device model: what the original pxrc.c instrumentation only printed, acted on.
// Each tick it reads pxrc.throttle|brake|yaw (and the optional pxrc.max_speed cap) synchronously
// from its variables, flies the simulation one step, publishes the sensor frame on
// virgo.drone-sensors (the drone learner's input) and, asynchronously, sends telemetry and
// events (arrival, collision, failsafe) to the VIRGO queue. A missing or unreadable control
// variable puts the drone in failsafe: no throttle, full brake, no yaw.
import { type Bus, TOPICS } from '../../bus/index.ts';
import { createLogger } from '../../runtime/log.ts';
import { counter } from '../../runtime/metrics.ts';
import { codecFor, type DroneSensorFrame } from '../../schemas/index.ts';
import { parseNumber } from '../../schemas/variable.ts';
import type { VariableSource } from '../drivers/variables.ts';
import { DeviceModel } from './device.ts';
import { type Course, type DroneControls, type DroneParams, DroneSim, generateCourse } from './drone-sim.ts';
import type { ReplySink } from './reply-sink.ts';

const log = createLogger('devices.pxrc');
const framesTotal = counter('virgo_pxrc_frames_total', 'drone sensor frames by outcome', [
  'device',
  'outcome',
]);

export const PXRC_VARS = {
  throttle: 'pxrc.throttle',
  brake: 'pxrc.brake',
  yaw: 'pxrc.yaw',
  maxSpeed: 'pxrc.max_speed',
} as const;

export const FAILSAFE: DroneControls = { throttle: 0, brake: 1, yaw: 0 };

export interface ControlRead {
  controls: DroneControls;
  /** why the failsafe is on, when it is */
  failsafe?: string;
}

/** The controls as the variables say now; failsafe when throttle or brake is missing or bad. */
export function readControls(vars: VariableSource): ControlRead {
  const num = (key: string) => {
    const raw = vars.get(key);
    return raw === undefined ? undefined : parseNumber(raw);
  };
  const throttle = num(PXRC_VARS.throttle);
  const brake = num(PXRC_VARS.brake);
  const yawRaw = vars.get(PXRC_VARS.yaw);
  const yaw = yawRaw === undefined ? 0 : parseNumber(yawRaw);
  const capRaw = vars.get(PXRC_VARS.maxSpeed);
  const cap = capRaw === undefined ? undefined : parseNumber(capRaw);
  const bad = [
    throttle === undefined ? PXRC_VARS.throttle : '',
    brake === undefined ? PXRC_VARS.brake : '',
    yaw === undefined ? PXRC_VARS.yaw : '',
  ].filter(Boolean);
  if (bad.length > 0)
    return { controls: { ...FAILSAFE }, failsafe: `missing or not a number: ${bad.join(', ')}` };
  return {
    controls: {
      throttle: throttle!,
      brake: brake!,
      yaw: yaw!,
      ...(cap !== undefined ? { maxSpeed: cap } : {}),
    },
  };
}

export interface PxrcDroneOptions {
  deviceId: string;
  /** this drone's variables (hostView(table, deviceId) for a shared table) */
  variables: VariableSource;
  /** the world: a course, a seed for one, or a ready simulation */
  course?: Course | number;
  sim?: DroneSim;
  params?: Partial<DroneParams>;
  bus?: Bus;
  /** default virgo.drone-sensors */
  topic?: string;
  replies?: ReplySink;
  /** the address the queue records for this device (default pxrc:<deviceId>) */
  clientAddr?: string;
  /** telemetry every this many ticks (default 20: once a simulated second at 50 ms) */
  telemetryEvery?: number;
  /** frame timestamps are epochMs + simulated time (default 0: pure simulated time) */
  epochMs?: number;
  /** sensor frames waiting for the bus before new ones are dropped (default 64) */
  maxPendingFrames?: number;
}

export interface PxrcStats {
  ticks: number;
  framesPublished: number;
  framesDropped: number;
  publishErrors: number;
  failsafeTicks: number;
}

export class PxrcDrone extends DeviceModel<DroneSensorFrame> {
  readonly sim: DroneSim;
  readonly stats: PxrcStats = {
    ticks: 0,
    framesPublished: 0,
    framesDropped: 0,
    publishErrors: 0,
    failsafeTicks: 0,
  };
  /** the controls applied at the last tick */
  lastControls: DroneControls = { ...FAILSAFE };
  private failsafe: string | undefined = 'not armed yet';

  constructor(private readonly opts: PxrcDroneOptions) {
    super({
      deviceId: opts.deviceId,
      kind: 'pxrc',
      replies: opts.replies,
      clientAddr: opts.clientAddr,
      bus: opts.bus,
      topic: opts.topic ?? TOPICS.droneSensors,
      codec: codecFor('DroneSensorFrame'),
    });
    this.sim =
      opts.sim ??
      new DroneSim(
        typeof opts.course === 'object' ? opts.course : generateCourse({ seed: opts.course ?? 1 }),
        opts.params,
      );
  }

  /** The frame the sensors give now, without stepping. */
  frame(): DroneSensorFrame {
    const s = this.sim.state;
    const senses = this.sim.sense();
    return {
      deviceId: this.deviceId,
      seq: s.tick,
      ts: (this.opts.epochMs ?? 0) + s.t,
      distances: senses.distances,
      speed: s.speed,
      heading: s.heading,
      goalBearing: senses.goalBearing,
      goalDistance: senses.goalDistance,
    };
  }

  /**
   * One tick: read the controls, step, sense, publish (queued, never awaited here). Returns the
   * frame after the step.
   */
  tick(): DroneSensorFrame {
    const { controls, failsafe } = readControls(this.opts.variables);
    this.lastControls = controls;
    if (failsafe !== this.failsafe) {
      if (failsafe) log.warn('failsafe: braking', { device: this.deviceId, why: failsafe });
      else log.info('armed: flying on analytics variables', { device: this.deviceId });
      this.event(failsafe ? `failsafe#${failsafe}` : 'armed');
      this.failsafe = failsafe;
    }
    if (failsafe) this.stats.failsafeTicks++;
    const before = this.sim.state.status;
    this.sim.step(controls);
    this.stats.ticks++;
    const s = this.sim.state;
    if (s.status !== before) {
      if (s.status === 'crashed') log.error('collision', { device: this.deviceId, hit: s.hit, t_ms: s.t });
      else log.info('arrived at goal', { device: this.deviceId, t_ms: s.t });
      this.event(s.status === 'crashed' ? `collision#${s.hit}` : `arrived#t_ms=${s.t}`);
    }
    const f = this.frame();
    this.publish(f);
    const every = this.opts.telemetryEvery ?? 20;
    if (every > 0 && s.tick % every === 0) this.sender?.send(this.telemetry('telemetry'), 'telemetry');
    return f;
  }

  private telemetry(kind: string): string {
    const s = this.sim.state;
    const c = this.lastControls;
    return [
      `PXRC#${this.deviceId}#${kind}`,
      `seq=${s.tick}`,
      `t_ms=${s.t}`,
      `x=${s.x.toFixed(2)}`,
      `y=${s.y.toFixed(2)}`,
      `speed=${s.speed.toFixed(2)}`,
      `heading=${s.heading.toFixed(3)}`,
      `status=${s.status}`,
      `throttle=${c.throttle}`,
      `brake=${c.brake}`,
      `yaw=${c.yaw}`,
    ].join('#');
  }

  private event(what: string): void {
    this.sender?.send(`${this.telemetry('event')}#${what}`, 'event');
  }

  private publish(f: DroneSensorFrame): void {
    if (!this.publishes) return;
    if (this.framesPending >= (this.opts.maxPendingFrames ?? 64)) {
      // a stale frame is worth less than a fresh one: drop, count, go on
      this.stats.framesDropped++;
      framesTotal.inc({ device: this.deviceId, outcome: 'dropped' });
      return;
    }
    this.publishFrame(
      f,
      () => {
        this.stats.framesPublished++;
        framesTotal.inc({ device: this.deviceId, outcome: 'published' });
      },
      (err) => {
        this.stats.publishErrors++;
        framesTotal.inc({ device: this.deviceId, outcome: 'error' });
        if (this.stats.publishErrors === 1)
          log.warn('sensor frame not published', { device: this.deviceId, err });
      },
    );
  }

  /** Ticks on a timer every dtMs of wall time (the simulation itself stays clock-free). */
  start(): void {
    this.every(this.sim.params.dtMs, () => {
      this.tick();
      if (this.sim.done) this.stop();
    });
  }
}
