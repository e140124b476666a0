// A restart re-announces: `virgo up` stopped and started again on the same state directory (the
// embedded bus starts empty) publishes the current value of every restored variable at start,
// so the drone flies at once and a netcat reader of the feeder sees the values within 2 s.
// Real processes: `virgo up` twice, `nc` on the feeder port.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kernLog } from '../helpers/kernlog.ts';
import { spawnVirgo, waitFor } from '../helpers/services.ts';

const kids: ChildProcess[] = [];
afterAll(() => {
  for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
});

interface Up {
  p: ChildProcess;
  out: () => string;
  err: () => string;
  readyAt: () => number | undefined;
  exited: Promise<number | null>;
}

function up(dir: string, input: string): Up {
  const p = spawnVirgo([
    'up',
    '--input',
    input,
    '--learners',
    'ufw,drone',
    '--devices',
    'drone',
    '--drivers',
    'none',
    '--any-ports',
    '--zmq',
    'none',
    '--metrics',
    'none',
    '--status',
    'lines',
    '--state-dir',
    dir,
    '--log-level',
    'info',
  ]);
  kids.push(p);
  let out = '';
  let err = '';
  let readyAt: number | undefined;
  p.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (readyAt === undefined && out.includes('virgo up: embedded')) readyAt = Date.now();
  });
  p.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return {
    p,
    out: () => out,
    err: () => err,
    readyAt: () => readyAt,
    exited: new Promise((r) => p.on('exit', (c) => r(c))),
  };
}

function lastValue(stdout: string, id: string): string | undefined {
  let v: string | undefined;
  for (const l of stdout.split('\n')) if (l.startsWith(`${id}=`)) v = l.slice(id.length + 1);
  return v;
}

describe('a restart re-announces', () => {
  it('virgo up stopped and started on one state dir: the drone flies and nc shows the values within 2 s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-reannounce-'));
    const file = join(dir, 'kern.log');
    writeFileSync(file, `${kernLog({ seed: 5, days: 1 }).lines.join('\n')}\n`);

    const first = up(join(dir, 'state'), file);
    await waitFor(
      () => first.err().includes('input replayed to its end'),
      'the first run to replay its input',
      120_000,
      100,
    );
    await waitFor(
      () => first.err().includes('armed: flying on analytics variables'),
      'the drone flying',
      60_000,
      100,
    );
    const id = 'fw-a/ufw.history.top_src_ip';
    await waitFor(() => lastValue(first.out(), id), 'the history value on the feeder', 60_000, 50).catch(
      (err: Error) => {
        throw new Error(
          `${err.message}\nstdout: ${first.out().slice(-1500)}\nstderr: ${first.err().slice(-1500)}`,
        );
      },
    );
    const before = lastValue(first.out(), id)!;
    first.p.kill('SIGINT');
    expect(await first.exited).toBe(0);

    // Nothing new comes in: whatever the second run shows, it restored and re-announced.
    const second = up(join(dir, 'state'), 'none');
    const ready = await waitFor(() => second.readyAt(), 'the second run to be ready', 60_000, 20);
    const port = Number(/feeder=[^ ]*:(\d+)/.exec(second.out())![1]);
    expect(second.err()).toMatch(/"reannounced":[1-9]/);

    // the drone is armed: the device sees the drone learner's restored controls at once
    const armedAt = await waitFor(
      () => (second.err().includes('armed: flying on analytics variables') ? Date.now() : undefined),
      'the drone armed after the restart',
      10_000,
      10,
    );

    // a netcat reader of the feeder gets the values of the host it selects
    const nc = spawn('nc', ['127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'ignore'] });
    kids.push(nc);
    let got = '';
    nc.stdout.on('data', (d: Buffer) => {
      got += d.toString();
    });
    nc.stdin.write('HOST fw-a\n');
    const seenAt = await waitFor(
      () => (got.includes('ufw.history.top_src_ip=') ? Date.now() : undefined),
      'the restored values on nc',
      10_000,
      10,
    );
    nc.kill();
    expect(lastValue(got, 'ufw.history.top_src_ip')).toBe(before);
    expect(got).toMatch(/^ufw\.block_rate=/m);
    console.log(`re-announce: drone armed ${armedAt - ready} ms, nc values ${seenAt - ready} ms after ready`);
    expect(armedAt - ready).toBeLessThan(2_000);
    expect(seenAt - ready).toBeLessThan(2_000);

    second.p.kill('SIGINT');
    expect(await second.exited).toBe(0);
  }, 240_000);
});
