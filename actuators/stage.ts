// What acts on the variables: the pooling drivers and the device models, started together on one
// variable source. Shared by `virgo drivers up` (a separate process reading a feeder or Redis) and
// `virgo up` (the whole pipeline in one process), so both run the same wiring.
import type { Bus } from '../bus/index.ts';
import { TOPICS, topicSpecs } from '../bus/index.ts';
import { RingConsumer } from '../kernel-analytics/consumer.ts';
import { VariableTable } from '../kernel-analytics/table.ts';
import { createLogger } from '../runtime/log.ts';
import { DEFAULT_DEVICE_IDS, DEVICE_NAMES, type DeviceName } from './devices/ids.ts';
import { PxrcDrone } from './devices/pxrc.ts';
import type { ReplySink } from './devices/reply-sink.ts';
import { UvcWebcam } from './devices/uvc-webcam.ts';
import {
  type CloudNode,
  DRIVER_NAMES,
  type DriverName,
  hostView,
  type MemoryStore,
  type RunningDrivers,
  startDrivers,
  type VariableSource,
} from './drivers/index.ts';

const log = createLogger('actuators');

export { DEFAULT_DEVICE_IDS, DEVICE_NAMES, type DeviceName } from './devices/ids.ts';

/**
 * One table fed by a feeder: a consumer for every host's variables plus one per device host
 * (a device's variables are its own host's, asked for with `HOST <id>`).
 */
export function tableFromFeeder(opts: {
  host: string;
  port: number;
  deviceHosts?: string[];
  name?: string;
  /** connect now (default) or on start(): bind listeners first, since 50000-64000 lie in Linux's
   * ephemeral port range and an outgoing connection may otherwise take one of them */
  autoStart?: boolean;
}): { table: VariableTable; consumers: RingConsumer[]; start(): void; close(): Promise<void> } {
  const name = opts.name ?? 'actuators';
  const autoStart = opts.autoStart ?? true;
  const table = new VariableTable({ name });
  const consumers = [new RingConsumer({ host: opts.host, port: opts.port, table, name, autoStart })];
  for (const h of opts.deviceHosts ?? []) {
    consumers.push(
      new RingConsumer({
        host: opts.host,
        port: opts.port,
        table,
        selectHost: h,
        name: `${name}-${h}`,
        autoStart,
      }),
    );
  }
  return {
    table,
    consumers,
    start: () => {
      if (!autoStart) for (const c of consumers) c.start();
    },
    close: async () => {
      await Promise.all(consumers.map((c) => c.close()));
    },
  };
}

export interface ActuatorsOptions {
  variables: VariableSource;
  /** drivers to start (default all; [] none) */
  drivers?: readonly DriverName[];
  /** devices to run (default both; [] none) */
  devices?: readonly DeviceName[];
  /** the devices publish their sensor frames here */
  bus?: Bus;
  /** device replies and telemetry go to the VIRGO queue through this */
  replies?: ReplySink;
  host?: string;
  ports?: Partial<Record<DriverName, number>>;
  nodes?: CloudNode[];
  memoryStore?: MemoryStore;
  /** the drivers' clients must first send `AUTH <secret>` (and forwarded virgo_clone calls do) */
  secret?: string;
  /** with a secret: time a connection has to authenticate (default 5 s) */
  handshakeTimeoutMs?: number;
  /** client addresses the drivers serve (exact match); empty or absent: all */
  allow?: string[];
  cloudfsRoot: string;
  eventnetDir: string;
  deviceIds?: { drone?: string; webcam?: string };
  /** first obstacle course of the drone; each arrival flies the next */
  courseSeed?: number;
  /** pause between two flights (ms) */
  betweenFlightsMs?: number;
}

export interface Actuators {
  drivers: RunningDrivers;
  deviceIds: { drone: string; webcam: string };
  drone(): PxrcDrone | undefined;
  webcam: UvcWebcam | undefined;
  /** flights ended so far, with how */
  flights: { seed: number; status: string; tMs: number }[];
  close(): Promise<void>;
}

export async function startActuators(o: ActuatorsOptions): Promise<Actuators> {
  const devices = new Set(o.devices ?? DEVICE_NAMES);
  const deviceIds = {
    drone: o.deviceIds?.drone ?? DEFAULT_DEVICE_IDS.drone,
    webcam: o.deviceIds?.webcam ?? DEFAULT_DEVICE_IDS.webcam,
  };
  const secret = {
    ...(o.secret ? { secret: o.secret } : {}),
    ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}),
    ...(o.allow?.length ? { allow: o.allow } : {}),
  };
  const drivers = await startDrivers({
    variables: o.variables,
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.ports ? { ports: o.ports } : {}),
    only: o.drivers ?? DRIVER_NAMES,
    cpupooling: { ...(o.nodes ? { nodes: o.nodes } : {}), ...secret },
    memorypooling: { ...(o.memoryStore ? { store: o.memoryStore } : {}), ...secret },
    cloudfs: { root: o.cloudfsRoot, ...secret },
    eventnet: { dir: o.eventnetDir, ...secret },
  });

  const flights: Actuators['flights'] = [];
  let drone: PxrcDrone | undefined;
  let webcam: UvcWebcam | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  try {
    if (devices.size > 0) {
      if (!o.bus) throw new Error('device models need a bus for their sensor frames');
      await o.bus.ensureTopics(
        topicSpecs().filter((t) => t.topic === TOPICS.droneSensors || t.topic === TOPICS.webcamFrames),
      );
    }
    if (devices.has('drone') && o.bus) {
      const bus = o.bus;
      let seed = o.courseSeed ?? 1;
      const fly = () => {
        if (stopped) return;
        const d = new PxrcDrone({
          deviceId: deviceIds.drone,
          variables: hostView(o.variables, deviceIds.drone),
          course: seed,
          bus,
          ...(o.replies ? { replies: o.replies } : {}),
          epochMs: Date.now(),
        });
        drone = d;
        log.info('drone flying a course', { device: deviceIds.drone, seed });
        timer = setInterval(() => {
          d.tick();
          if (!d.sim.done) return;
          clearInterval(timer);
          flights.push({ seed, status: d.sim.state.status, tMs: d.sim.state.t });
          log.info('drone flight over', {
            device: deviceIds.drone,
            seed,
            status: d.sim.state.status,
            t_ms: d.sim.state.t,
          });
          seed++;
          timer = setTimeout(fly, o.betweenFlightsMs ?? 2_000);
        }, d.sim.params.dtMs);
      };
      fly();
    }
    if (devices.has('webcam') && o.bus) {
      webcam = new UvcWebcam({
        deviceId: deviceIds.webcam,
        variables: hostView(o.variables, deviceIds.webcam),
        bus: o.bus,
        ...(o.replies ? { replies: o.replies } : {}),
      });
      webcam.start();
    }
  } catch (err) {
    await drivers.close().catch(() => {});
    throw err;
  }

  return {
    drivers,
    deviceIds,
    drone: () => drone,
    webcam,
    flights,
    async close() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(timer);
      await drone?.idle();
      if (webcam) {
        webcam.close();
        await webcam.idle();
      }
      await drivers.close();
    },
  };
}
