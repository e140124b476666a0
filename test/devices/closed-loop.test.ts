// The closed loop of issue 7: the simulated PXRC drone publishes its sensor frames on the bus, the
// drone learner's decision core turns each into throttle/brake/yaw, those become the drone's
// analytics variables in the table, and the drone reads them at its next tick. Seeded obstacle
// courses, every one must be flown to the goal with zero collisions; time to goal is reported.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBus } from '../../bus/index.ts';
import { type Command, type FlightReport, runClosedLoop } from '../../kernel-analytics/devices/drone-loop.ts';
import { generateCourse, PxrcDrone } from '../../kernel-analytics/devices/index.ts';
import { hostView } from '../../kernel-analytics/drivers/index.ts';
import { VariableTable } from '../../kernel-analytics/index.ts';
import { type DroneMemory, decide } from '../../learners/drone.ts';
import { startQueueService } from '../../queue-bridge/index.ts';
import type { DroneSensorFrame } from '../../schemas/index.ts';

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];

/** The learner's decision core as a controller: per-device memory, values as the learner declares them. */
function droneLearner(): (frames: DroneSensorFrame[]) => Command[] {
  const memory = new Map<string, DroneMemory>();
  return (frames) => {
    const out: Command[] = [];
    for (const f of frames) {
      const c = decide(f, {}, memory.get(f.deviceId));
      memory.set(f.deviceId, c.memory);
      // pxrc.* are declared with 3 decimals
      const v = (x: number) => String(Number(x.toFixed(3)));
      out.push({ host: f.deviceId, key: 'pxrc.throttle', value: v(c.throttle) });
      out.push({ host: f.deviceId, key: 'pxrc.brake', value: v(c.brake) });
      out.push({ host: f.deviceId, key: 'pxrc.yaw', value: v(c.yaw) });
    }
    return out;
  };
}

async function fly(
  seed: number,
  bus = new MemoryBus(),
  extra: Partial<ConstructorParameters<typeof PxrcDrone>[0]> = {},
) {
  const table = new VariableTable();
  const deviceId = `pxrc-${seed}`;
  const drone = new PxrcDrone({
    deviceId,
    variables: hostView(table, deviceId),
    course: generateCourse({ seed }),
    bus,
    ...extra,
  });
  const report = await runClosedLoop({
    drone,
    bus,
    controller: droneLearner(),
    write: (c) => {
      table.set(c.key, String(c.value), { host: c.host });
    },
  });
  return { report, drone };
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('closed loop: drone learner steers the simulated PXRC drone through the bus', () => {
  it(`flies ${SEEDS.length} seeded obstacle courses to the goal with zero collisions`, async () => {
    const bus = new MemoryBus();
    const reports: FlightReport[] = [];
    for (const seed of SEEDS) reports.push((await fly(seed, bus)).report);
    await bus.close();
    console.log(
      reports
        .map(
          (r) =>
            `course ${r.seed}: ${r.status} in ${r.timeToGoalMs !== undefined ? (r.timeToGoalMs / 1000).toFixed(2) : '-'} s simulated, ${r.travelled.toFixed(1)} m flown (straight ${r.straight.toFixed(1)} m), nearest approach ${r.minClearance.toFixed(2)} m, collisions ${r.collisions}`,
        )
        .join('\n'),
    );
    for (const r of reports) {
      expect(r.collisions, `course ${r.seed}: hit ${r.hit}`).toBe(0);
      expect(r.status, `course ${r.seed}`).toBe('arrived');
      expect(r.minClearance).toBeGreaterThan(0);
      expect(r.travelled).toBeGreaterThanOrEqual(r.straight - 1.5);
    }
  });

  it('is deterministic: the same course gives the same flight', async () => {
    const a = await fly(3);
    const b = await fly(3);
    expect(a.report).toEqual(b.report);
    expect(a.drone.sim.state).toEqual(b.drone.sim.state);
  });

  it('reports the flight to the VIRGO queue while flying', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-loop-queue-'));
    dirs.push(dir);
    const q = await startQueueService({ dir, listen: false });
    try {
      const { report } = await fly(2, new MemoryBus(), { replies: q, telemetryEvery: 20 });
      expect(report.status).toBe('arrived');
      const payloads: string[] = [];
      for await (const r of q.log.read()) if (r.message.kind === 'REQUEST') payloads.push(r.message.payload);
      expect(payloads[0]).toMatch(/^PXRC#pxrc-2#event#.*#armed$/);
      expect(payloads.at(-1)).toMatch(
        new RegExp(`^PXRC#pxrc-2#event#.*#status=arrived#.*#arrived#t_ms=${report.timeToGoalMs}$`),
      );
      expect(payloads.filter((p) => p.includes('#telemetry#')).length).toBe(Math.floor(report.ticks / 20));
    } finally {
      await q.close();
    }
  });
});
