// npm run bench -- drivers [seconds per run] [rounds]: the pooling drivers under 100 concurrent telnet-style
// clients (one request in flight each), next to two baselines measured in the same run with the
// same clients: an echo service on the same runtime LineServer (the framework's own cost) and a
// bare node:net echo server (the socket cost). Then the latency from a variable change to the
// first reply that behaves differently (p50/p99), in-process and through Redis (RedisExporter →
// RedisVariables), next to Redis's own PUBLISH → message latency; and the device reactions.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { type Command, runClosedLoop } from '../actuators/devices/drone-loop.ts';
import { generateCourse, PxrcDrone, UvcWebcam } from '../actuators/devices/index.ts';
import {
  CloudFs,
  CpuPooling,
  EventNet,
  hostView,
  MemoryPooling,
  nodeId,
  RedisVariables,
} from '../actuators/drivers/index.ts';
import { MemoryBus } from '../bus/index.ts';
import { exportTable, RedisExporter, VariableTable } from '../kernel-analytics/index.ts';
import { DRONE_MODEL, DRONE_VARIABLES, type DroneMemory, decide } from '../learners/drone.ts';
import { EmissionGate } from '../learners/gate.ts';
import { LineServer } from '../runtime/line-server.ts';
import { setLogLevel } from '../runtime/log.ts';
import type { DroneSensorFrame } from '../schemas/index.ts';
import { median, summarise } from './util.ts';

const CLIENTS = 100;
const REDIS_URL = process.env.VIRGO_BENCH_REDIS ?? 'redis://127.0.0.1:6379';

interface Load {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
}

/** What one client does: `setup` lines first (reply k fills {k}), then `requests` cycled. */
interface Script {
  setup?: string[];
  /** placeholders: {0}.. setup replies, {i} client index, {n} request counter */
  requests: string[];
}

// The clients run in a worker thread, so the server under test has this thread's event loop to
// itself (on one loop, client and server would share every cycle). Plain JS: a worker does not
// go through tsx.
const CLIENT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const { port, seconds, clients, script } = workerData;
const fill = (t, i, n, got) => t.replace(/\\{(\\w+)\\}/g, (_, k) => (k === 'i' ? i : k === 'n' ? n : got[Number(k)]));
(async () => {
  const socks = [];
  for (let i = 0; i < clients; i++) {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    await new Promise((r, j) => { s.once('connect', r); s.once('error', j); });
    s.setEncoding('utf8');
    const got = [];
    let buf = '';
    let onLine = null;
    s.on('data', (d) => {
      buf += d;
      let nl = buf.indexOf('\\n');
      while (nl >= 0) { const l = buf.slice(0, nl); buf = buf.slice(nl + 1); onLine(l); nl = buf.indexOf('\\n'); }
    });
    for (const t of script.setup || []) {
      got.push(await new Promise((r) => { onLine = r; s.write(fill(t, i, 0, got) + '\\n'); }));
    }
    socks.push({ s, got, set: (f) => { onLine = f; } });
  }
  let requests = 0, errors = 0, running = true, inFlight = clients;
  let finish; const finished = new Promise((r) => { finish = r; });
  const t0 = performance.now();
  socks.forEach((c, i) => {
    let n = 0;
    const next = () => c.s.write(fill(script.requests[n % script.requests.length], i, n, c.got) + '\\n');
    c.set((line) => {
      requests++;
      if (line.startsWith('error: ')) errors++;
      if (!running) { if (--inFlight === 0) finish(); return; }
      n++; next();
    });
    next();
  });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  const elapsed = (performance.now() - t0) / 1000;
  const counted = requests;
  await finished;
  for (const c of socks) c.s.destroy();
  parentPort.postMessage({ requests: counted, errors, seconds: elapsed, rps: Math.round(counted / elapsed) });
})().catch((err) => parentPort.postMessage({ error: String(err) }));
`;

/**
 * `CLIENTS` connections, each sending its next request as soon as the reply to the previous one
 * is in, for `seconds`.
 */
async function timedLoad(port: number, seconds: number, script: Script): Promise<Load> {
  const w = new Worker(CLIENT_WORKER, {
    eval: true,
    workerData: { port, seconds, clients: CLIENTS, script },
  });
  const [r] = (await once(w, 'message')) as [Load & { error?: string }];
  await w.terminate();
  if (r.error) throw new Error(`load clients failed: ${r.error}`);
  return r;
}

const same: Script = { requests: ['ping'] };

async function echoLineServer(): Promise<LineServer> {
  const s = new LineServer({
    name: 'bench-echo',
    port: 0,
    maxClients: 1000,
    onLine: (c, l) => void c.send(l),
  });
  await s.listen();
  return s;
}

async function rawEcho(): Promise<{ port: number; close: () => void }> {
  const srv = createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.pipe(sock);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as { port: number }).port, close: () => srv.close() };
}

/** Time from `change()` to the first reply of `probe` that `changed` accepts, `n` times over. */
async function changeLatency(
  n: number,
  send: (line: string) => Promise<string>,
  probe: string,
  toggle: (k: number) => void | Promise<void>,
  changed: (reply: string, k: number) => boolean,
): Promise<ReturnType<typeof summarise>> {
  const ms: number[] = [];
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    await toggle(k);
    for (let tries = 0; ; tries++) {
      const r = await send(probe);
      if (changed(r, k)) break;
      if (tries > 100_000) throw new Error(`behaviour never changed (last reply ${r})`);
    }
    ms.push(performance.now() - t0);
  }
  return round(summarise(ms));
}

function round(s: ReturnType<typeof summarise>): ReturnType<typeof summarise> {
  return { p50: +s.p50.toFixed(3), p99: +s.p99.toFixed(3), max: +s.max.toFixed(3), n: s.n };
}

function oneClient(port: number): Promise<{ send: (line: string) => Promise<string>; close: () => void }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    s.once('error', reject);
    s.setEncoding('utf8');
    let buf = '';
    const waiting: ((l: string) => void)[] = [];
    s.on('data', (d: string) => {
      buf += d;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        waiting.shift()?.(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    });
    s.once('connect', () =>
      resolve({
        send: (line) =>
          new Promise((r) => {
            waiting.push(r);
            s.write(`${line}\n`);
          }),
        close: () => s.destroy(),
      }),
    );
  });
}

/** The drone learner's decision core (per-device memory) through the learners' emission gate. */
function gatedDroneLearner(): (frames: DroneSensorFrame[]) => Command[] {
  const memory = new Map<string, DroneMemory>();
  const gate = new EmissionGate(
    new Map(DRONE_VARIABLES.map((d) => [d.key, { decl: d, learner: 'drone' }])),
    () => undefined,
  );
  return (frames) => {
    const out: Command[] = [];
    for (const f of frames) {
      const c = decide(f, {}, memory.get(f.deviceId));
      memory.set(f.deviceId, c.memory);
      for (const [key, value] of [
        ['pxrc.throttle', c.throttle],
        ['pxrc.brake', c.brake],
        ['pxrc.yaw', c.yaw],
      ] as const) {
        const r = gate.propose(
          'drone',
          { host: f.deviceId, key, value, why: '', confidence: 1, model: DRONE_MODEL },
          f.ts,
        );
        if (r.variable) out.push({ host: f.deviceId, key, value: r.variable.value });
      }
      for (const v of gate.release(f.ts)) out.push({ host: v.host, key: v.key, value: v.value });
    }
    return out;
  };
}

/** Seeded courses flown in the closed loop over the in-process bus. */
async function closedLoop(seeds: number[]): Promise<Record<string, unknown>> {
  const flights = [];
  let ticks = 0;
  const t0 = performance.now();
  for (const seed of seeds) {
    const bus = new MemoryBus();
    const table = new VariableTable();
    const id = `pxrc-${seed}`;
    const drone = new PxrcDrone({
      deviceId: id,
      variables: hostView(table, id),
      course: generateCourse({ seed }),
      bus,
    });
    const r = await runClosedLoop({
      drone,
      bus,
      controller: gatedDroneLearner(),
      write: (c) => void table.set(c.key, String(c.value), { host: c.host }),
    });
    ticks += r.ticks;
    flights.push({
      seed,
      status: r.status,
      timeToGoalS: r.timeToGoalMs === undefined ? null : r.timeToGoalMs / 1000,
      collisions: r.collisions,
      minClearanceM: +r.minClearance.toFixed(2),
      flownM: +r.travelled.toFixed(1),
      straightM: +r.straight.toFixed(1),
    });
    await bus.close();
  }
  const wall = (performance.now() - t0) / 1000;
  const times = flights.flatMap((f) => (f.timeToGoalS === null ? [] : [f.timeToGoalS]));
  return {
    courses: seeds.length,
    arrived: times.length,
    collisions: flights.reduce((a, f) => a + f.collisions, 0),
    medianTimeToGoalS: median(times),
    ticksPerWallSecond: Math.round(ticks / wall),
    flights,
  };
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('error');
  const seconds = Number(args[0] ?? 1.5);
  const rounds = Number(args[1] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'virgo-bench-drivers-'));
  const table = new VariableTable();
  try {
    // ---- throughput: rounds over every target, baselines included, medians compared (the
    // machine is shared: interleaving spreads the noise over all targets alike) ----
    const raw = await rawEcho();
    const echo = await echoLineServer();
    const cpu = new CpuPooling({ variables: table, port: 0, maxClients: 1000 });
    await cpu.start();
    const mem = new MemoryPooling({ variables: table, port: 0, maxClients: 1000 });
    await mem.start();
    const fs = new CloudFs({ variables: table, root: dir, port: 0, maxClients: 1000, maxOpenFiles: 1000 });
    await fs.start();
    const ev = new EventNet({ dir: join(dir, 'eventnet'), port: 0, maxClients: 1000 });
    await ev.start();
    const targets: [string, number, Script, string][] = [
      ['rawNetEcho', raw.port, same, 'ping (node:net echo)'],
      ['lineServerEcho', echo.port, same, 'ping (LineServer echo)'],
      [
        'cpupooling',
        cpu.port,
        { requests: Array.from({ length: 10 }, (_, k) => `fib ${20 + k}`) },
        'fib 20..29',
      ],
      [
        'memorypooling',
        mem.port,
        {
          setup: ['virgo_cloud_malloc(64)'],
          requests: ['virgo_cloud_set({0},value {n})', 'virgo_cloud_get({0})'],
        },
        'set/get 64 B',
      ],
      [
        'cloudfs',
        fs.port,
        {
          setup: ['virgo_cloud_open(client-{i}.bin)'],
          requests: [`virgo_cloud_write({0},${'y'.repeat(64)},64,0)`, 'virgo_cloud_read({0},none,64,0)'],
        },
        'write/read 64 B',
      ],
      ['eventnet', ev.port, { requests: ['eventnet_edgemsg#c{i}-{n}#c{i}-{n}-next#'] }, 'edge append'],
    ];
    const runs = new Map<string, Load[]>(targets.map(([name]) => [name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [name, port, script] of targets)
        runs.get(name)!.push(await timedLoad(port, seconds, script));
    }
    const med = (name: string) => median(runs.get(name)!.map((r) => r.rps));
    const echoRps = med('lineServerEcho');
    const throughput: Record<string, unknown> = {};
    for (const [name, , , request] of targets) {
      const rs = runs.get(name)!;
      throughput[name] = {
        request,
        rps: med(name),
        runs: rs.map((r) => r.rps),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        vsLineServerEcho: +(med(name) / echoRps).toFixed(3),
      };
    }

    // ---- variable change → behaviour change, in-process ----
    const N = 200;
    const cpuNode = nodeId('127.0.0.1', cpu.port);
    table.set('cpupooling.least_loaded_node', cpuNode, { host: 'cluster' });
    const c1 = await oneClient(cpu.port);
    const balancerInProcess = await changeLatency(
      N,
      c1.send,
      'echo x',
      (k) => void table.set('cpupooling.balancer', k % 2 === 0 ? 'analytics' : 'prg'),
      (r, k) => r.includes(k % 2 === 0 ? 'rule=analytics' : 'rule=prg '),
    );
    const m1 = await oneClient(mem.port);
    const sizeLimitInProcess = await changeLatency(
      N,
      m1.send,
      'virgo_cloud_malloc(1000)',
      (k) => void table.set('memorypooling.max_bytes', k % 2 === 0 ? '100' : '100000'),
      (r, k) => (k % 2 === 0 ? r.startsWith('error: ') : /^\d+$/.test(r)),
    );
    // the baseline of these: one request's round trip with nothing changing
    const rtt = await changeLatency(
      N,
      c1.send,
      'echo x',
      () => {},
      () => true,
    );
    // free what the probe allocated
    table.set('memorypooling.max_bytes', '100000');

    // ---- through Redis: RedisExporter in "the learner's process", RedisVariables in the driver's ----
    const redis = new Redis(REDIS_URL);
    const prefix = `bench-drivers-${process.pid}`;
    const source = new VariableTable();
    const exporter = new RedisExporter(redis, { prefix });
    const exp = exportTable(source, [exporter]);
    await exp.flush();
    const rv = await RedisVariables.connect({ url: REDIS_URL, prefix, resyncMs: 0 });
    const cpuR = new CpuPooling({ variables: rv, port: 0 });
    await cpuR.start();
    const memR = new MemoryPooling({ variables: rv, port: 0 });
    await memR.start();
    source.set('cpupooling.least_loaded_node', nodeId('127.0.0.1', cpuR.port), { host: 'cluster' });
    const c2 = await oneClient(cpuR.port);
    const balancerRedis = await changeLatency(
      N,
      c2.send,
      'echo x',
      (k) => void source.set('cpupooling.balancer', k % 2 === 0 ? 'analytics' : 'prg', { host: 'cluster' }),
      (r, k) => r.includes(k % 2 === 0 ? 'rule=analytics' : 'rule=prg '),
    );
    const m2 = await oneClient(memR.port);
    const sizeLimitRedis = await changeLatency(
      N,
      m2.send,
      'virgo_cloud_malloc(1000)',
      (k) => void source.set('memorypooling.max_bytes', k % 2 === 0 ? '100' : '100000', { host: 'node' }),
      (r, k) => (k % 2 === 0 ? r.startsWith('error: ') : /^\d+$/.test(r)),
    );
    // Redis's own floor: PUBLISH to a subscriber of another connection
    const sub = new Redis(REDIS_URL);
    await sub.subscribe(`${prefix}:floor`);
    let got: (() => void) | undefined;
    sub.on('message', () => got?.());
    const floor: number[] = [];
    for (let k = 0; k < N; k++) {
      const t0 = performance.now();
      await new Promise<void>((r) => {
        got = r;
        void redis.publish(`${prefix}:floor`, 'x');
      });
      floor.push(performance.now() - t0);
    }
    const publishFloor = round(summarise(floor));

    // ---- devices: reaction to a variable, in ticks and wall time ----
    const dtable = new VariableTable();
    const drone = new PxrcDrone({ deviceId: 'b1', variables: hostView(dtable, 'b1'), course: 1 });
    dtable.set('pxrc.brake', '0', { host: 'b1' });
    dtable.set('pxrc.throttle', '0.5', { host: 'b1' });
    for (let i = 0; i < 40; i++) drone.tick();
    const before = drone.sim.state.speed;
    dtable.set('pxrc.throttle', '1', { host: 'b1' });
    drone.tick();
    const droneTicks = drone.sim.state.speed > before ? 1 : Number.NaN;
    const cam = new UvcWebcam({ deviceId: 'w1', variables: hostView(dtable, 'w1') });
    const camMs: number[] = [];
    for (let k = 0; k < N; k++) {
      const t0 = performance.now();
      dtable.set('match', k % 2 === 0 ? 'True' : 'False', { host: 'w1' });
      if (cam.actions.length !== k + 1) throw new Error('webcam did not act');
      camMs.push(performance.now() - t0);
    }
    cam.close();
    const loop = await closedLoop([1, 2, 3, 4, 5, 6, 7, 8]);

    for (const c of [c1, m1, c2, m2]) c.close();
    await Promise.all([
      cpu.close(),
      mem.close(),
      fs.close(),
      ev.close(),
      echo.close(),
      cpuR.close(),
      memR.close(),
    ]);
    raw.close();
    exp.detach();
    await rv.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await sub.quit();
    await redis.quit();

    return {
      clients: CLIENTS,
      secondsPerRun: seconds,
      rounds,
      throughput,
      variableChangeToBehaviourMs: {
        baselineRequestRoundTrip: rtt,
        inProcess: { balancerRule: balancerInProcess, sizeLimit: sizeLimitInProcess },
        redis: { balancerRule: balancerRedis, sizeLimit: sizeLimitRedis, publishFloor },
        drone: { ticks: droneTicks, simMsPerTick: drone.sim.params.dtMs },
        webcam: round(summarise(camMs)),
      },
      droneClosedLoop: loop,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
