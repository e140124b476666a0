// The commands as an operator runs them: virgo conf, virgo feeder (fed on stdin) read by nc and by
// virgo consume, which prints, writes the conf file and Redis.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach } from '../../helpers/cleanup.ts';
import { Nc } from '../../helpers/nc.ts';
import { REDIS_URL, run, spawnVirgo, unique, virgo, waitFor } from '../../helpers/services.ts';

const cleanups = cleanupAfterEach();

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'virgo-cli-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function collect(p: ChildProcess): { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  p.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  p.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { out: () => out, err: () => err };
}

async function stop(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null) return p.exitCode;
  const done = new Promise<number | null>((r) => p.once('close', (code) => r(code)));
  p.kill('SIGTERM');
  return done;
}

describe('virgo conf', () => {
  it('set, get, list, check, unset on a file; commas refused with the reason', async () => {
    const file = join(tmp(), 'virgo_kernel_analytics.conf');
    writeFileSync(file, 'match=True,kernel_analytics1=v1');
    let r = await virgo(['conf', 'set', 'MaxNetworkBandwidth=255', 'match=False', '--file', file]);
    expect(r.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('match=False,kernel_analytics1=v1,MaxNetworkBandwidth=255\n');
    r = await virgo(['conf', 'get', 'MaxNetworkBandwidth', '--file', file]);
    expect(r).toMatchObject({ code: 0, stdout: '255\n' });
    r = await virgo(['conf', 'get', 'absent', '--file', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/absent is not set/);
    r = await virgo(['conf', 'set', "s={'a', 'b'}", '--file', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/value of s contains ','/);
    r = await virgo(['conf', 'list', '--format', 'json', '--file', file]);
    expect(JSON.parse(r.stdout)).toEqual({
      match: 'False',
      kernel_analytics1: 'v1',
      MaxNetworkBandwidth: '255',
    });
    writeFileSync(file, 'a=1,broken,s={1, 2}');
    r = await virgo(['conf', 'check', '--file', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/token 1 "broken" has no '='/);
    expect(r.stdout).toMatch(/2 variables, 2 problems/);
    r = await virgo(['conf', 'unset', 'a', '--file', file]);
    expect(r.code).toBe(0);
  });
});

describe('virgo feeder → nc and virgo consume → print, conf file, Redis', () => {
  it('pipes variables end to end', async () => {
    const feeder = spawnVirgo(['feeder', '--stdin', '--listen', '127.0.0.1:0', '--log-level', 'info']);
    cleanups.push(() => stop(feeder));
    const fio = collect(feeder);
    feeder.stdin?.write('match=True\nnot a pair\nMaxNetworkBandwidth=255\n');
    const port = await waitFor(() => {
      const m = /"msg":"listening".*?"port":(\d+)/.exec(fio.err());
      return m ? Number(m[1]) : undefined;
    }, 'feeder listening');
    // stdin is read after the port opens: wait for its report rather than race it
    await waitFor(() => /stdin line 2: "not a pair" has no '='/.test(fio.err()), 'the stdin reject');

    // stdin lines without a host are this machine's; nc selecting no host sees them host-qualified
    const nc = new Nc(['127.0.0.1', String(port)]);
    cleanups.push(() => nc.kill());
    await waitFor(() => nc.lines().length >= 2, 'nc snapshot');
    expect(nc.lines().sort()).toEqual([`${hostname()}/MaxNetworkBandwidth=255`, `${hostname()}/match=True`]);

    const conf = join(tmp(), 'out.conf');
    const prefix = 'virgo:analytics';
    const host = unique('clihost');
    const consume = spawnVirgo([
      'consume',
      '--feeder',
      `127.0.0.1:${port}`,
      '--print',
      '--conf',
      conf,
      '--redis',
      REDIS_URL,
      '--host',
      host,
    ]);
    cleanups.push(() => stop(consume));
    cleanups.push(() => run('redis-cli', ['-u', REDIS_URL, 'DEL', `${prefix}:${host}`]));
    const cio = collect(consume);
    // --host asks the feeder for that host only: the stdin variables are this machine's, so the
    // consumer sees them only when the feeder is told which host they are for. Feed some now.
    await stop(feeder);
    const feeder2 = spawnVirgo(['feeder', '--stdin', '--host', host, '--listen', `127.0.0.1:${port}`]);
    cleanups.push(() => stop(feeder2));
    feeder2.stdin?.write('match=True\nMaxNetworkBandwidth=255\n');
    await waitFor(() => cio.out().includes('MaxNetworkBandwidth=255'), 'consume printed', 30_000);
    feeder2.stdin?.write('MaxNetworkBandwidth=100\n');
    await waitFor(() => cio.out().includes('MaxNetworkBandwidth=100'), 'live change printed');
    await waitFor(() => {
      try {
        return readFileSync(conf, 'utf8') === 'match=True,MaxNetworkBandwidth=100\n';
      } catch {
        return false;
      }
    }, 'conf file written');
    await waitFor(
      async () =>
        (
          await run('redis-cli', ['-u', REDIS_URL, 'HGET', `${prefix}:${host}`, 'MaxNetworkBandwidth'])
        ).stdout.trim() === '100',
      'redis hash written',
    );
    expect(await stop(consume)).toBe(0);
    expect(cio.err()).toMatch(/virgo consume: 3 pairs, 2 variables, \d+ connections/);
  });
});
