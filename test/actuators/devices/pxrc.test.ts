import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PxrcDrone, readControls } from '../../../actuators/devices/index.ts';
import { hostView } from '../../../actuators/drivers/index.ts';
import { MemoryBus, TOPICS } from '../../../bus/index.ts';
import { VariableTable } from '../../../kernel-analytics/index.ts';
import { type QueueService, startQueueService } from '../../../queue-bridge/index.ts';
import { codecFor, type KingCobraMessage } from '../../../schemas/index.ts';
import { closeAfterEach } from '../../helpers/cleanup.ts';
import { waitFor } from '../../helpers/services.ts';

const dirs: string[] = [];
const track = closeAfterEach();
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function queue(): Promise<QueueService> {
  const dir = mkdtempSync(join(tmpdir(), 'virgo-pxrc-queue-'));
  dirs.push(dir);
  const q = await startQueueService({ dir, listen: false });
  track(q);
  return q;
}

async function records(q: QueueService): Promise<KingCobraMessage[]> {
  const out: KingCobraMessage[] = [];
  for await (const r of q.log.read()) out.push(r.message);
  return out;
}

const course = {
  seed: 0,
  width: 200,
  height: 400,
  start: { x: 100, y: 5, heading: 0 },
  goal: { x: 100, y: 390 },
  goalRadius: 1.5,
  obstacles: [],
};

describe('readControls', () => {
  it('is failsafe (full brake) until throttle and brake are numbers', () => {
    const t = new VariableTable();
    expect(readControls(t)).toEqual({
      controls: { throttle: 0, brake: 1, yaw: 0 },
      failsafe: 'missing or not a number: pxrc.throttle, pxrc.brake',
    });
    t.set('pxrc.throttle', '0.4');
    t.set('pxrc.brake', 'lots');
    expect(readControls(t).failsafe).toBe('missing or not a number: pxrc.brake');
    t.set('pxrc.brake', '0');
    expect(readControls(t)).toEqual({ controls: { throttle: 0.4, brake: 0, yaw: 0 } });
    t.set('pxrc.yaw', '-0.25');
    t.set('pxrc.max_speed', '2');
    expect(readControls(t).controls).toEqual({ throttle: 0.4, brake: 0, yaw: -0.25, maxSpeed: 2 });
    t.set('pxrc.yaw', 'left');
    expect(readControls(t).failsafe).toBe('missing or not a number: pxrc.yaw');
  });
});

describe('PXRC drone device', () => {
  it('flies on its own variables: a throttle change changes its speed at the next tick', async () => {
    const table = new VariableTable();
    const drone = new PxrcDrone({ deviceId: 'd1', variables: hostView(table, 'd1'), course });
    // another drone's variables are not ours
    table.set('pxrc.throttle', '1', { host: 'd2' });
    table.set('pxrc.brake', '0', { host: 'd2' });
    for (let i = 0; i < 20; i++) drone.tick();
    expect(drone.sim.state.speed).toBe(0);
    expect(drone.stats.failsafeTicks).toBe(20);
    table.set('pxrc.throttle', '0.25', { host: 'd1' });
    table.set('pxrc.brake', '0', { host: 'd1' });
    for (let i = 0; i < 40; i++) drone.tick();
    expect(drone.frame().speed).toBeCloseTo(1, 9); // 0.25 x 4 m/s
    table.set('pxrc.throttle', '1', { host: 'd1' });
    const f = drone.tick();
    expect(f.speed).toBeCloseTo(1 + 2.5 * 0.05, 9); // accelerating from the very next tick
    for (let i = 0; i < 40; i++) drone.tick();
    expect(drone.sim.state.speed).toBeCloseTo(4, 9);
    // an operator's speed limit
    table.set('pxrc.max_speed', '2', { host: 'd1' });
    for (let i = 0; i < 20; i++) drone.tick();
    expect(drone.sim.state.speed).toBeCloseTo(2, 9);
    // a variable removed or garbled: failsafe brakes to a stop
    table.set('pxrc.brake', 'NaN', { host: 'd1' });
    for (let i = 0; i < 20; i++) drone.tick();
    expect(drone.sim.state.speed).toBe(0);
    expect(drone.lastControls).toEqual({ throttle: 0, brake: 1, yaw: 0 });
  });

  it('publishes DroneSensorFrames on virgo.drone-sensors, keyed by device id', async () => {
    const bus = new MemoryBus();
    const table = new VariableTable();
    table.set('pxrc.throttle', '0.5', { host: 'd1' });
    table.set('pxrc.brake', '0', { host: 'd1' });
    const drone = new PxrcDrone({
      deviceId: 'd1',
      variables: hostView(table, 'd1'),
      course: 5,
      bus,
      epochMs: 1_700_000_000_000,
    });
    await bus.ensureTopics([{ topic: TOPICS.droneSensors, partitions: 1 }]);
    for (let i = 0; i < 10; i++) drone.tick();
    await drone.idle();
    const codec = codecFor('DroneSensorFrame');
    const got: ReturnType<typeof codec.decode>[] = [];
    const sub = await bus.subscribe({
      topics: [TOPICS.droneSensors],
      groupId: 'g',
      fromBeginning: true,
      onBatch: async (msgs) => {
        for (const m of msgs) {
          expect(m.key?.toString()).toBe('d1');
          expect(m.headers['content-type']).toBe('avro/binary');
          got.push(codec.decode(m.value!));
        }
      },
    });
    await waitFor(() => got.length >= 10, 'ten frames on the bus');
    await sub.close();
    expect(got.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(got[9]!.ts).toBe(1_700_000_000_000 + 500);
    expect(got[9]!.distances).toHaveLength(8);
    expect(got[9]!.goalDistance).toBeGreaterThan(0);
    expect(drone.stats.framesPublished).toBe(10);
    await bus.close();
  });

  it('sends telemetry and events to the VIRGO queue asynchronously, in order', async () => {
    const q = await queue();
    const table = new VariableTable();
    const drone = new PxrcDrone({
      deviceId: 'd7',
      variables: hostView(table, 'd7'),
      course,
      replies: q,
      telemetryEvery: 10,
    });
    drone.tick(); // failsafe
    table.set('pxrc.throttle', '1', { host: 'd7' });
    table.set('pxrc.brake', '0', { host: 'd7' });
    for (let i = 0; i < 19; i++) drone.tick(); // armed, telemetry at ticks 10 and 20
    await drone.idle();
    const msgs = await records(q);
    const requests = msgs.filter((m) => m.kind === 'REQUEST');
    expect(requests.map((m) => m.payload.split('#').slice(0, 3).join('#'))).toEqual([
      'PXRC#d7#event',
      'PXRC#d7#event',
      'PXRC#d7#telemetry',
      'PXRC#d7#telemetry',
    ]);
    expect(requests[0]!.payload).toMatch(/#failsafe#missing or not a number: pxrc\.throttle, pxrc\.brake$/);
    expect(requests[1]!.payload).toMatch(/#seq=1#.*#throttle=1#brake=0#yaw=0#armed$/);
    expect(requests[3]!.payload).toMatch(
      /^PXRC#d7#telemetry#seq=20#t_ms=1000#x=100\.00#y=\d+\.\d\d#speed=\d\.\d\d#/,
    );
    expect(requests.every((m) => m.clientAddr === 'pxrc:d7')).toBe(true);
    // the queue replied to each (REQUEST_REPLY)
    expect(msgs.filter((m) => m.kind === 'REPLY')).toHaveLength(4);
    expect(drone.sender!.stats).toMatchObject({ sent: 4, failed: 0, dropped: 0, pending: 0 });
  });

  it('never waits for a slow queue: ticks go on, routine telemetry is dropped past the bound', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = { submit: () => gate };
    const table = new VariableTable();
    table.set('pxrc.throttle', '0.1', { host: 'd3' });
    table.set('pxrc.brake', '0', { host: 'd3' });
    const drone = new PxrcDrone({
      deviceId: 'd3',
      variables: hostView(table, 'd3'),
      course,
      replies: slow,
      telemetryEvery: 1,
    });
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) drone.tick();
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(drone.stats.ticks).toBe(1000);
    expect(drone.sender!.stats.dropped).toBe(1000 + 1 - 256);
    release();
    await drone.idle();
    expect(drone.sender!.stats.sent).toBe(256);
  });
});
