// `virgo drivers up` as an operator runs it: a separate process importing variables from a feeder
// (any k=v TCP source, here a bare socket server as `nc -l` would be) or from Redis.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { oneShot } from '../../helpers/line-client.ts';
import { REDIS_URL, spawnVirgo, unique, waitFor } from '../../helpers/services.ts';

const procs: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'virgo-drivers-cli-'));
  dirs.push(d);
  return d;
}

/** Starts `virgo drivers up …`; resolves with the ports from its "listening" line. */
async function up(
  args: string[],
): Promise<{ proc: ChildProcess; ports: Record<string, number>; line: string }> {
  const state = tmp();
  const proc = spawnVirgo([
    'drivers',
    'up',
    '--ports',
    'cpupooling=0,eventnet=0,memorypooling=0,cloudfs=0',
    '--cloudfs-root',
    state,
    '--eventnet-dir',
    join(state, 'eventnet'),
    ...args,
  ]);
  procs.push(proc);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const line = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const l = out.split('\n').find((x) => x.startsWith('listening '));
      if (l) resolve(l);
    });
    proc.once('exit', (code) => reject(new Error(`drivers up exited ${code}: ${err.slice(-2000)}`)));
  });
  const ports: Record<string, number> = {};
  for (const m of line.matchAll(/(\w+)=127\.0\.0\.1:(\d+)/g)) ports[m[1]!] = Number(m[2]);
  return { proc, ports, line };
}

async function inProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../../../cli/main.ts');
  let stdout = '';
  let stderr = '';
  const sink = (add: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, cb) {
        add(String(chunk));
        cb();
      },
    });
  const code = await main(argv, {
    stdout: sink((x) => {
      stdout += x;
    }),
    stderr: sink((x) => {
      stderr += x;
    }),
    stdin: Readable.from([]),
    env: {},
  });
  return { code, stdout, stderr };
}

async function feeder(): Promise<{
  server: Server;
  port: number;
  send: (line: string) => void;
  clients: Socket[];
}> {
  const clients: Socket[] = [];
  const server = createServer((s) => {
    s.on('error', () => {});
    clients.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    clients,
    send: (l) => {
      for (const c of clients) c.write(`${l}\n`);
    },
  };
}

describe('virgo drivers up', () => {
  it('serves every driver and follows a feeder: a variable changes what cpupooling and memorypooling do', async () => {
    const f = await feeder();
    const { proc, ports, line } = await up([
      '--feeder',
      `127.0.0.1:${f.port}`,
      '--devices',
      'drone',
      '--drone-id',
      'd1',
    ]);
    expect(line).toMatch(/devices=drone:d1 variables=feeder 127\.0\.0\.1:\d+$/);
    expect(Object.keys(ports).sort()).toEqual(['cloudfs', 'cpupooling', 'eventnet', 'memorypooling']);
    // two consumers connect: all hosts, and the drone's own host
    await waitFor(() => f.clients.length >= 2, 'the consumers to connect to the feeder');
    expect(await oneShot(ports.cpupooling!, 'fib 12')).toMatch(/^node=127\.0\.0\.1:\d+ rule=prg result=144$/);
    expect(await oneShot(ports.memorypooling!, 'virgo_cloud_malloc(5000)')).toMatch(/^\d+$/);
    f.send('cpupooling.balancer=analytics');
    f.send(`cpupooling.least_loaded_node=127.0.0.1:${ports.cpupooling}`);
    f.send('memorypooling.max_bytes=100');
    await waitFor(
      async () => /rule=analytics/.test(await oneShot(ports.cpupooling!, 'fib 12')),
      'the analytics rule',
    );
    expect(await oneShot(ports.memorypooling!, 'virgo_cloud_malloc(5000)')).toMatch(
      /more than the 100-byte limit/,
    );
    expect(await oneShot(ports.eventnet!, 'eventnet_edgemsg#a#b#')).toBe('ok');
    expect(await oneShot(ports.cloudfs!, 'virgo_cloud_open(../x)')).toMatch(/^error: .*contains '\.\.'/);
    proc.kill('SIGTERM');
    const code = await new Promise((r) => proc.once('exit', r));
    expect(code).toBe(0);
    f.server.close();
    for (const c of f.clients) c.destroy();
  });

  it('imports variables from Redis in a separate process', async () => {
    const prefix = unique('test-drivers-cli');
    const redis = new Redis(REDIS_URL);
    try {
      await redis.hset(`${prefix}:node-a`, 'memorypooling.max_bytes', '10');
      const { proc, ports, line } = await up([
        '--redis',
        REDIS_URL,
        '--redis-prefix',
        prefix,
        '--devices',
        'none',
      ]);
      expect(line).toMatch(/devices=none variables=redis redis:\/\/127\.0\.0\.1:\d+$/);
      expect(await oneShot(ports.memorypooling!, 'virgo_cloud_malloc(50)')).toMatch(
        /more than the 10-byte limit/,
      );
      await redis.hset(`${prefix}:node-a`, 'memorypooling.max_bytes', '1000');
      await redis.publish(`${prefix}:changes:node-a`, 'memorypooling.max_bytes=1000\n');
      await waitFor(
        async () => /^\d+$/.test(await oneShot(ports.memorypooling!, 'virgo_cloud_malloc(50)')),
        'the raised limit',
      );
      proc.kill('SIGTERM');
      expect(await new Promise((r) => proc.once('exit', r))).toBe(0);
    } finally {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
  });

  it('lets an operator override a variable with --set', async () => {
    const f = await feeder();
    const { proc, ports } = await up([
      '--feeder',
      `127.0.0.1:${f.port}`,
      '--devices',
      'none',
      '--only',
      'memorypooling',
      '--set',
      'memorypooling.max_bytes=7',
    ]);
    expect(Object.keys(ports)).toEqual(['memorypooling']);
    expect(await oneShot(ports.memorypooling!, 'virgo_cloud_malloc(8)')).toMatch(
      /more than the 7-byte limit/,
    );
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    f.server.close();
    for (const c of f.clients) c.destroy();
  });

  it.each([
    [['--ports', 'cpupooling=x'], /--ports: "cpupooling=x" is not driver=port/],
    [
      ['--only', 'gpupooling'],
      /--only: "gpupooling" is not one of cpupooling, eventnet, memorypooling, cloudfs/,
    ],
    [['--devices', 'toaster'], /--devices: "toaster" is not one of drone, webcam/],
    [['--set', 'novalue'], /--set "novalue": expected key=value/],
    [['--mempool', 'redis'], /--mempool redis needs --redis URL/],
  ])('refuses %j with a usage error', async (args, msg) => {
    // in-process: usage errors come before anything is started
    const r = await inProcess(['drivers', 'up', '--feeder', '127.0.0.1:1', '--devices', 'none', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(msg);
  });

  it('names the bad entry of a virgo_cloud.conf', async () => {
    const d = tmp();
    const conf = join(d, 'virgo_cloud.conf');
    writeFileSync(conf, '10.0.0.1,,10.0.0.2\n');
    const r = await inProcess(['drivers', 'up', '--nodes', conf, '--devices', 'none']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${conf} line 1, entry 2 is empty (two commas in a row?)`);
  });
});
