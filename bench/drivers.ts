// npm run bench -- drivers [seconds]: the pooling drivers under 100 concurrent telnet-style
// clients (one request in flight each), next to two baselines measured in the same run with the
// same clients: an echo service on the same runtime LineServer (the framework's own cost) and a
// bare node:net echo server (the socket cost). Then the latency from a variable change to the
// first reply that behaves differently (p50/p99), in-process and through Redis (RedisExporter →
// RedisVariables), next to Redis's own PUBLISH → message latency; and the device reactions.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { PxrcDrone, UvcWebcam } from '../kernel-analytics/devices/index.ts';
import {
  CloudFs,
  CpuPooling,
  EventNet,
  hostView,
  MemoryPooling,
  nodeId,
  RedisVariables,
} from '../kernel-analytics/drivers/index.ts';
import { exportTable, RedisExporter, VariableTable } from '../kernel-analytics/index.ts';
import { LineServer } from '../runtime/line-server.ts';
import { setLogLevel } from '../runtime/log.ts';
import { summarise } from './util.ts';

const CLIENTS = 100;
const REDIS_URL = process.env.VIRGO_BENCH_REDIS ?? 'redis://127.0.0.1:6379';

interface Load {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
}

/**
 * `CLIENTS` connections, each sending its next request as soon as the reply to the previous one
 * is in, for `seconds`. `setup(send, i)` runs once per client first (its replies not counted) and
 * returns the request maker.
 */
async function timedLoad(
  port: number,
  seconds: number,
  setup: (send: (line: string) => Promise<string>, i: number) => Promise<(n: number) => string>,
): Promise<Load> {
  const socks: Socket[] = [];
  const makers: ((n: number) => string)[] = [];
  const onReply: ((line: string) => void)[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    await new Promise<void>((r, j) => {
      s.once('connect', () => r());
      s.once('error', j);
    });
    s.setEncoding('utf8');
    let buf = '';
    const waiting: ((l: string) => void)[] = [];
    s.on('data', (d: string) => {
      buf += d;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = waiting.shift();
        if (w) w(line);
        else onReply[i]?.(line);
        nl = buf.indexOf('\n');
      }
    });
    const send = (line: string) =>
      new Promise<string>((r) => {
        waiting.push(r);
        s.write(`${line}\n`);
      });
    makers.push(await setup(send, i));
    socks.push(s);
  }
  let requests = 0;
  let errors = 0;
  let running = true;
  let inFlight = CLIENTS;
  let finish!: () => void;
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  const t0 = performance.now();
  socks.forEach((s, i) => {
    let n = 0;
    onReply[i] = (line) => {
      requests++;
      if (line.startsWith('error: ')) errors++;
      if (!running) {
        if (--inFlight === 0) finish();
        return;
      }
      s.write(`${makers[i]!(++n)}\n`);
    };
    s.write(`${makers[i]!(n)}\n`);
  });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  const elapsed = (performance.now() - t0) / 1000;
  const counted = requests;
  await finished;
  for (const s of socks) s.destroy();
  return { requests: counted, errors, seconds: elapsed, rps: Math.round(counted / elapsed) };
}

const same = async () => (_n: number) => 'ping';

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

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('error');
  const seconds = Number(args[0] ?? 2);
  const dir = mkdtempSync(join(tmpdir(), 'virgo-bench-drivers-'));
  const table = new VariableTable();
  try {
    // ---- throughput, baselines first and last (the machine is shared: noise shows as a gap) ----
    const raw = await rawEcho();
    const echo = await echoLineServer();
    const rawBefore = await timedLoad(raw.port, seconds, same);
    const echoBefore = await timedLoad(echo.port, seconds, same);

    const cpu = new CpuPooling({ variables: table, port: 0, maxClients: 1000 });
    await cpu.start();
    const cpuLoad = await timedLoad(cpu.port, seconds, async () => (n) => `fib ${20 + (n % 10)}`);

    const mem = new MemoryPooling({ variables: table, port: 0, maxClients: 1000 });
    await mem.start();
    const memLoad = await timedLoad(mem.port, seconds, async (send) => {
      const vuid = await send('virgo_cloud_malloc(64)');
      return (n) => (n % 2 === 0 ? `virgo_cloud_set(${vuid},value ${n})` : `virgo_cloud_get(${vuid})`);
    });

    writeFileSync(join(dir, 'seed.txt'), 'x'.repeat(4096));
    const fs = new CloudFs({ variables: table, root: dir, port: 0, maxClients: 1000, maxOpenFiles: 1000 });
    await fs.start();
    const fsLoad = await timedLoad(fs.port, seconds, async (send, i) => {
      const fd = await send(`virgo_cloud_open(client-${i}.bin)`);
      const data = 'y'.repeat(64);
      return (n) =>
        n % 2 === 0
          ? `virgo_cloud_write(${fd},${data},64,${(n % 64) * 64})`
          : `virgo_cloud_read(${fd},none,64,0)`;
    });

    const ev = new EventNet({ dir: join(dir, 'eventnet'), port: 0, maxClients: 1000 });
    await ev.start();
    const evLoad = await timedLoad(
      ev.port,
      seconds,
      async (_s, i) => (n) => `eventnet_edgemsg#c${i}-${n}#c${i}-${n + 1}#`,
    );

    const echoAfter = await timedLoad(echo.port, seconds, same);
    const rawAfter = await timedLoad(raw.port, seconds, same);
    const echoRps = Math.round((echoBefore.rps + echoAfter.rps) / 2);
    const rawRps = Math.round((rawBefore.rps + rawAfter.rps) / 2);
    const ratio = (x: Load) => +(x.rps / echoRps).toFixed(3);

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
      throughput: {
        baseline: {
          rawNetEcho: { rps: rawRps, before: rawBefore.rps, after: rawAfter.rps },
          lineServerEcho: { rps: echoRps, before: echoBefore.rps, after: echoAfter.rps },
        },
        cpupooling: { request: 'fib 20..29', ...cpuLoad, vsLineServerEcho: ratio(cpuLoad) },
        memorypooling: { request: 'set/get 64 B', ...memLoad, vsLineServerEcho: ratio(memLoad) },
        cloudfs: { request: 'write/read 64 B', ...fsLoad, vsLineServerEcho: ratio(fsLoad) },
        eventnet: { request: 'edge append', ...evLoad, vsLineServerEcho: ratio(evLoad) },
      },
      variableChangeToBehaviourMs: {
        baselineRequestRoundTrip: rtt,
        inProcess: { balancerRule: balancerInProcess, sizeLimit: sizeLimitInProcess },
        redis: { balancerRule: balancerRedis, sizeLimit: sizeLimitRedis, publishFloor },
        drone: { ticks: droneTicks, simMsPerTick: drone.sim.params.dtMs },
        webcam: round(summarise(camMs)),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
