// The learner host end to end on the in-process bus: variables on the analytics topic as Avro with
// the contract's key and headers, the dwell and pins holding, pins made by another process picked
// up from the pins file, undelivered variables kept until the bus takes them, and a restart from a
// snapshot producing exactly what an uninterrupted run produces.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Bus, type BusMessage, MemoryBus, TOPICS } from '../../bus/index.ts';
import { loadBackend } from '../../learners/backend.ts';
import { createLearnerHost, type LearnerHost, SplitPart } from '../../learners/host.ts';
import { PinFile, PinValueError } from '../../learners/pins.ts';
import { Rng } from '../../learners/window.ts';
import {
  type AnalyticsVariable,
  codecFor,
  type DroneSensorFrame,
  type KernelEvent,
  type WebcamFrame,
} from '../../schemas/index.ts';
import { ev, ufwEvent } from '../helpers/events.ts';
import { waitFor } from '../helpers/services.ts';

const codec = codecFor('AnalyticsVariable');
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'virgo-learners-'));
}

/** Collects what reaches the analytics topic. */
async function tap(bus: Bus, topic = TOPICS.kernelAnalytics) {
  const got: { m: BusMessage; v: AnalyticsVariable }[] = [];
  const sub = await bus.subscribe({
    topics: [topic],
    groupId: `tap-${Math.random()}`,
    fromBeginning: true,
    onBatch: async (b) => {
      for (const m of b) got.push({ m, v: codec.decode(m.value!) });
    },
  });
  cleanup.push(() => sub.close());
  return {
    got,
    values: (host: string, key: string) =>
      got.filter((g) => g.v.host === host && g.v.key === key).map((g) => g.v.value),
  };
}

class Clock {
  t = Date.UTC(2024, 5, 1);
  now = () => this.t;
}

async function host(opts: Parameters<typeof createLearnerHost>[0]): Promise<LearnerHost> {
  const h = await createLearnerHost(opts);
  cleanup.push(() => h.close({ save: false }));
  return h;
}

describe('learner host', () => {
  it('publishes gated variables as Avro with key host/key and the contract headers', async () => {
    const bus = new MemoryBus();
    const clock = new Clock();
    const h = await host({ bus, learners: ['ufw'], now: clock.now });
    const t = tap(bus);
    await h.handleEvents([
      ufwEvent('fw1', clock.t, '203.0.113.5', 22),
      ufwEvent('fw1', clock.t, '203.0.113.5', 22),
    ]);
    const { got } = await t;
    // three over the window, three over the whole history
    await waitFor(() => got.length === 6, 'six variables');
    expect(got.map((g) => g.v.key).sort()).toEqual([
      'ufw.block_rate',
      'ufw.history.blocks',
      'ufw.history.top_dst_port',
      'ufw.history.top_src_ip',
      'ufw.top_dst_port',
      'ufw.top_src_ip',
    ]);
    const top = got.find((g) => g.v.key === 'ufw.top_src_ip')!;
    expect(top.m.key!.toString()).toBe('fw1/ufw.top_src_ip');
    expect(top.m.headers).toEqual({ 'content-type': 'avro/binary', 'virgo-schema': codec.fingerprintHex });
    expect(top.v).toMatchObject({
      host: 'fw1',
      key: 'ufw.top_src_ip',
      value: '203.0.113.5',
      learner: 'ufw',
      model: 'ufw-exact@1',
      type: 'ip',
      unit: null,
      ts: clock.t,
    });
    expect(top.v.why).toMatch(
      /^window=600s blocks=2 distinct_src=1 top_src=203\.0\.113\.5 count=2; model=ufw-exact@1$/,
    );
    expect(h.backend).toBe('none');
  });

  it('holds a flapping top source for the dwell time and releases it on tick', async () => {
    const bus = new MemoryBus();
    const clock = new Clock();
    const h = await host({ bus, learners: ['ufw'], now: clock.now });
    const t = await tap(bus);
    const burst = (ip: string, n: number) =>
      Array.from({ length: n }, () => ufwEvent('fw1', clock.t, ip, 22));
    await h.handleEvents(burst('198.51.100.1', 3));
    clock.t += 5_000;
    await h.handleEvents(burst('198.51.100.2', 5)); // a new leader within the 30 s dwell
    await h.tick();
    expect(t.values('fw1', 'ufw.top_src_ip')).toEqual(['198.51.100.1']);
    clock.t += 25_000;
    await h.tick();
    await waitFor(() => t.values('fw1', 'ufw.top_src_ip').length === 2, 'the held value');
    expect(t.values('fw1', 'ufw.top_src_ip')).toEqual(['198.51.100.1', '198.51.100.2']);
    expect(t.got.at(-1)!.v.why).toMatch(/held 25\.0s by the 30s dwell/);
    expect(h.stats().verdicts.dwell).toBeGreaterThan(0);
  });

  it('pins: the operator value goes out once, the learner stops, and resumes after unpin', async () => {
    const bus = new MemoryBus();
    const clock = new Clock();
    const h = await host({ bus, learners: ['ufw'], now: clock.now });
    const t = await tap(bus);
    await h.handleEvents([ufwEvent('fw1', clock.t, '198.51.100.1', 22)]);
    const v = await h.pin('fw1', 'ufw.top_src_ip', '192.0.2.250');
    expect(v).toMatchObject({ learner: 'operator', model: 'operator', value: '192.0.2.250', type: 'ip' });
    clock.t += 60_000;
    await h.handleEvents([
      ufwEvent('fw1', clock.t, '198.51.100.9', 22),
      ufwEvent('fw1', clock.t, '198.51.100.9', 22),
    ]);
    await h.pin('fw1', 'ufw.top_src_ip', '192.0.2.250'); // again: no second announcement
    await waitFor(() => t.values('fw1', 'ufw.top_src_ip').length >= 2, 'operator value');
    expect(t.values('fw1', 'ufw.top_src_ip')).toEqual(['198.51.100.1', '192.0.2.250']);
    expect(h.stats().verdicts.pinned).toBeGreaterThan(0);
    expect(await h.unpin('fw1', 'ufw.top_src_ip')).toBe(true);
    expect(await h.unpin('fw1', 'ufw.top_src_ip')).toBe(false);
    await h.handleEvents([ufwEvent('fw1', clock.t + 1, '198.51.100.9', 22)]);
    await waitFor(() => t.values('fw1', 'ufw.top_src_ip').length === 3, 'learner value after unpin');
    expect(t.values('fw1', 'ufw.top_src_ip').at(-1)).toBe('198.51.100.9');
    await expect(h.pin('fw1', 'ufw.top_dst_port', '70000')).rejects.toThrow(PinValueError);
    await expect(h.pin('fw1', 'ufw.top_dst_port', '70000')).rejects.toThrow(/within \[0, 65535\]/);
    await expect(h.pin('bad/host', 'k', 'v')).rejects.toThrow(/host/);
    // a key no learner declares may be pinned as a string (the original's k1=v1)
    expect(await h.pin('fw1', 'k1', 'v1')).toMatchObject({ value: 'v1', type: 'string' });
  });

  it('a pin written to the pins file by another process takes effect in a running host', async () => {
    const bus = new MemoryBus();
    const dir = tmp();
    const h = await host({ bus, learners: ['ufw'], stateDir: dir });
    const t = await tap(bus);
    // what `virgo pin fw9/ufw.block_rate=0` does without --brokers
    const other = new PinFile(join(dir, 'pins'));
    await other.update((m) => {
      m.set('fw9/ufw.block_rate', {
        host: 'fw9',
        key: 'ufw.block_rate',
        value: '0',
        ts: Date.now(),
        by: 'op@test',
        announced: false,
      });
    });
    await waitFor(() => t.values('fw9', 'ufw.block_rate').length === 1, 'the announced pin', 10_000);
    expect(t.got[0]!.v).toMatchObject({
      learner: 'operator',
      value: '0',
      why: expect.stringContaining('pinned by op@test'),
    });
    await h.handleEvents([ufwEvent('fw9', Date.now(), '192.0.2.1', 22)]);
    expect(t.values('fw9', 'ufw.block_rate')).toEqual(['0']);
    expect(h.stats().pins).toBe(1);
    await other.update((m) => void m.delete('fw9/ufw.block_rate'));
    await waitFor(() => h.stats().pins === 0, 'the pin lifted', 10_000);
    await h.handleEvents([ufwEvent('fw9', Date.now(), '192.0.2.1', 22)]);
    await waitFor(() => t.values('fw9', 'ufw.block_rate').length === 2, 'the learner again');
  });

  it('keeps variables the bus refused and delivers them at the next tick', async () => {
    const inner = new MemoryBus();
    let fail = 1;
    const flaky: Bus = {
      kind: 'memory',
      ensureTopics: (s) => inner.ensureTopics(s),
      publish: async (topic, msgs) => {
        if (topic === TOPICS.kernelAnalytics && fail-- > 0) throw new Error('broker down');
        return inner.publish(topic, msgs);
      },
      subscribe: (o) => inner.subscribe(o),
      topicOffsets: (t) => inner.topicOffsets(t),
      close: () => inner.close(),
    };
    const h = await host({ bus: flaky, learners: ['ufw'] });
    const t = await tap(inner);
    await h.handleEvents([ufwEvent('fw1', Date.now(), '192.0.2.7', 22)]);
    expect(h.stats()).toMatchObject({ publishFailures: 1, outbox: 6 });
    await h.tick();
    await waitFor(() => t.got.length === 6, 'the kept variables');
    expect(h.stats().outbox).toBe(0);
  });
});

// ---- restart from a snapshot: identical outputs ----

const MIN = 60_000;

async function published(bus: Bus): Promise<number> {
  return (await bus.topicOffsets(TOPICS.kernelAnalytics)).reduce((a, o) => a + Number(o.high), 0);
}

function stream(
  rng: Rng,
  w0: number,
  w1: number,
): { events: KernelEvent[]; drone: DroneSensorFrame[]; webcam: WebcamFrame[] }[] {
  const out: { events: KernelEvent[]; drone: DroneSensorFrame[]; webcam: WebcamFrame[] }[] = [];
  const base = Date.UTC(2024, 0, 1);
  for (let w = w0; w < w1; w++) {
    const t = base + w * MIN;
    const events: KernelEvent[] = [];
    const congested = Math.floor(w / 5) % 2 === 1;
    for (let i = 0; i < 20; i++) {
      events.push(ev('node-a', t + i * 2_000, 'x', { templateId: `T${rng.int(5)}` }));
      events.push(ufwEvent('node-a', t + i * 2_000 + 1, `198.51.100.${rng.int(4)}`, 22 + rng.int(3)));
    }
    if (congested)
      events.push(ev('node-a', t + 30_000, 'NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out'));
    for (const n of ['node-a', 'node-b']) {
      const load = rng.next() * 4;
      events.push(
        ev(
          n,
          t + 50_000,
          `virgo_load: node=${n} load=${load.toFixed(2)} runq=2 exec_ms=${(20 + 40 * load).toFixed(1)}`,
        ),
      );
    }
    events.sort((a, b) => a.ts - b.ts);
    const distances = Array.from({ length: 16 }, () => 2 + rng.next() * 20);
    const drone = [
      {
        deviceId: 'drone-1',
        seq: w,
        ts: t,
        distances,
        speed: rng.next() * 4,
        heading: 0,
        goalBearing: rng.next() - 0.5,
        goalDistance: 30,
      },
    ];
    const webcam = [
      {
        deviceId: 'cam-1',
        seq: w,
        ts: t,
        faceDetected: true,
        embedding: Array.from({ length: 8 }, () => rng.next()),
      },
    ];
    out.push({ events, drone, webcam });
  }
  return out;
}

describe('snapshot and restore', () => {
  it('a restarted host produces exactly what an uninterrupted one does', async () => {
    const learnerOptions = {
      netbw: { warmup: 3, steps: 2 },
      anomaly: {},
      load: { warmup: 4, steps: 2 },
      webcam: {
        gallery: {
          alice: [
            [1, 0, 0, 0, 0, 0, 0, 0],
            [0.9, 0.1, 0, 0, 0, 0, 0, 0],
          ],
          bob: [[0, 1, 1, 0, 0, 0, 0, 0]],
        },
      },
    };
    const part1 = stream(new Rng(1), 0, 10);
    const part2 = stream(new Rng(2), 10, 20);
    const run = async (h: LearnerHost, clock: Clock, parts: ReturnType<typeof stream>) => {
      for (const p of parts) {
        clock.t += 7_000;
        await h.handleEvents(p.events);
        await h.handleDrone(p.drone);
        await h.handleWebcam(p.webcam);
        await h.tick();
      }
    };
    const collect = async (bus: MemoryBus) => {
      const all: AnalyticsVariable[] = [];
      const sub = await bus.subscribe({
        topics: [TOPICS.kernelAnalytics],
        groupId: 'c',
        fromBeginning: true,
        onBatch: async (b) => void all.push(...b.map((m) => codec.decode(m.value!))),
      });
      cleanup.push(() => sub.close());
      return all;
    };

    // uninterrupted
    const busC = new MemoryBus();
    const clockC = new Clock();
    const c = await host({ bus: busC, now: clockC.now, learnerOptions });
    const outC = await collect(busC);
    await run(c, clockC, part1);
    const mark = outC.length;
    await waitFor(async () => (await published(busC)) === outC.length, 'drained');
    const beforeC = outC.length;
    await run(c, clockC, part2);

    // interrupted: part 1, save, a new process restores, part 2
    const dir = tmp();
    const clockA = new Clock();
    const a = await createLearnerHost({
      bus: new MemoryBus(),
      now: clockA.now,
      stateDir: dir,
      learnerOptions,
    });
    await run(a, clockA, part1);
    await a.close(); // saves
    expect(readdirSync(join(dir, 'learners')).filter((f) => f.startsWith('snap-'))).toHaveLength(1);
    const busB = new MemoryBus();
    const clockB = new Clock();
    clockB.t = clockA.t;
    const b = await host({ bus: busB, now: clockB.now, stateDir: dir, learnerOptions });
    const outB = await collect(busB);
    await run(b, clockB, part2);

    await waitFor(async () => (await published(busC)) === outC.length, 'c drained');
    await waitFor(async () => (await published(busB)) === outB.length, 'b drained');
    const tail = outC.slice(beforeC);
    expect(mark).toBeGreaterThan(0);
    expect(tail.length).toBeGreaterThan(20);
    // The restarted host first announces the current value of every variable it restored (what
    // the uninterrupted one had last emitted by then), then goes on exactly as it would have.
    // (Told apart by ts: re-announced values keep the time they were decided, before the restart.)
    const restartedAt = clockA.t;
    const again = outB.filter((v) => v.ts <= restartedAt);
    const after = outB.filter((v) => v.ts > restartedAt);
    const current = new Map(outC.slice(0, beforeC).map((v) => [`${v.host}/${v.key}`, v.value]));
    expect(b.stats().reannounced).toBe(current.size);
    expect(again).toHaveLength(current.size);
    expect(new Map(again.map((v) => [`${v.host}/${v.key}`, v.value]))).toEqual(current);
    // Partitions are ordered, the topic across them is not (Kafka's guarantee, and the in-process
    // bus's): each host/key's sequence must be the same.
    const perKey = (vs: AnalyticsVariable[]) => {
      const m = new Map<string, AnalyticsVariable[]>();
      for (const v of vs) m.set(`${v.host}/${v.key}`, [...(m.get(`${v.host}/${v.key}`) ?? []), v]);
      return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    };
    expect(after).toHaveLength(tail.length);
    expect(perKey(after)).toEqual(perKey(tail));
    // every learner spoke, and the trained models' versions travel with their variables
    const learners = new Set(tail.map((v) => v.learner));
    expect([...learners].sort()).toEqual(['anomaly', 'drone', 'load', 'netbw', 'ufw', 'webcam']);
    expect(tail.find((v) => v.learner === 'netbw')!.model).toMatch(/^netbw-logreg@1\.\d+$/);
    expect(tail.find((v) => v.learner === 'anomaly')!.model).toMatch(/^anomaly-surprise@3\.\d+$/);
    expect(b.backend).toBe((await loadBackend()).name);
  });
});

describe('per-host parts kept outside the learners', () => {
  it('a part in several records goes out as <name> and <name>.<sub>, and comes back to its part whole', async () => {
    const block = '{"at":0,"seen":"AAAA"}';
    const got: { host: string; value: unknown; more: Map<string, unknown> }[] = [];
    const h = await host({
      bus: new MemoryBus(),
      learners: ['ufw'],
      parts: [
        {
          name: 'order',
          get: (hosts) =>
            new Map([...hosts].map((x) => [x, new SplitPart({ v: 2 }, new Map([['0', block]]))])),
          put: (x, value, more) => got.push({ host: x, value, more: new Map(more) }),
          drop: () => {},
        },
      ],
    });
    const out = h.exportHosts(new Set(['fw1']));
    expect(out.get('fw1')?.get('order')).toBe('{"v":2}');
    // the part's own text, not encoded again: an unchanged block is the same string
    expect(out.get('fw1')?.get('order.0')).toBe(block);
    h.importHost(
      'fw2',
      new Map<string, unknown>([
        ['order.0', JSON.parse(block)],
        ['order', { v: 2 }],
        ['order.1', { at: 256, seen: '' }],
      ]),
    );
    expect(got).toEqual([
      {
        host: 'fw2',
        value: { v: 2 },
        more: new Map<string, unknown>([
          ['0', { at: 0, seen: 'AAAA' }],
          ['1', { at: 256, seen: '' }],
        ]),
      },
    ]);
  });
});
