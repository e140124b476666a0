// Replay equals batch, in one process: a generated three-day multi-host kern.log read by
// `virgo learn --input` and `virgo up --input` ends with the values a plain batch computation over
// the same lines gives (test/helpers/ufw-batch.ts), for the window and the whole-history
// variables alike. The Kafka routes are in replay-batch.int.test.ts. The virgo CLI as child processes.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnVirgo, virgo, waitFor } from '../helpers/services.ts';
import { finals, replayFixture, ufwOnly } from '../helpers/ufw-batch.ts';

const fx = replayFixture('embedded');
const { log, expected, file, tmp, report } = fx;
afterAll(() => fx.cleanup());

describe('replay equals batch (3-day multi-host kern.log, embedded)', () => {
  it('the generated log is one where the whole-history and last-window answers differ', () => {
    expect(log.lines.length).toBeGreaterThan(3000);
    for (const h of log.hosts) {
      expect(expected.get(`${h}/ufw.history.top_src_ip`)).not.toBe(expected.get(`${h}/ufw.top_src_ip`));
      expect(expected.get(`${h}/ufw.history.top_dst_port`)).not.toBe(expected.get(`${h}/ufw.top_dst_port`));
    }
    expect(expected.size).toBe(log.hosts.length * 6);
  });

  it('virgo learn --input FILE', async () => {
    const r = await virgo(
      ['learn', '--input', file, '--learners', 'ufw', '--state-dir', tmp()],
      undefined,
      180_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const got = ufwOnly(finals(r.stdout));
    report['virgo learn --input'] = Object.fromEntries(got);
    expect(got).toEqual(ufwOnly(expected));
  }, 200_000);

  it('virgo up --input FILE (embedded)', async () => {
    const p = spawnVirgo([
      'up',
      '--input',
      file,
      '--learners',
      'ufw',
      '--devices',
      'none',
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
      tmp(),
      '--log-level',
      'info',
    ]);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    try {
      await waitFor(
        () => stderr.includes('input replayed to its end'),
        'the end of the input',
        180_000,
        100,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${stderr.slice(-3000)}`);
      });
      // After the final watermark nothing changes any more: wait for the feeder's table to show it.
      await waitFor(
        () => JSON.stringify([...ufwOnly(finals(stdout))]) === JSON.stringify([...ufwOnly(expected)]),
        'the final values on the feeder',
        60_000,
        50,
      ).catch(() => undefined);
      const got = ufwOnly(finals(stdout));
      report['virgo up --input'] = Object.fromEntries(got);
      expect(got, stderr.slice(-2000)).toEqual(ufwOnly(expected));
    } finally {
      p.kill('SIGINT');
      await exited;
    }
  }, 200_000);
});
