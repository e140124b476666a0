// One input route: `virgo learn --input` reads through publishLogs, so a line that is not UTF-8 is
// dead-lettered with the consumer stage's reason (never decoded with U+FFFD and learned), and a
// missing input file ends `learn` and `up` at once with the file named (`up --split` and
// `publish-logs --follow` wait for it, as `tail -F` does, and say so).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { virgo } from '../../helpers/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'virgo-routes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const UFW = (src: string) =>
  `Nov 23 19:37:32 edge-3 kernel: [ 1.000000] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=${src} DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=50 ID=1 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=29200 RES=0x00 SYN URGP=0`;

describe('virgo learn --input: the same decoding and dead letters as from Kafka', () => {
  it('dead-letters a line that is not UTF-8 (reason invalid-utf8) and learns the others', async () => {
    const file = join(dir, 'mixed.log');
    writeFileSync(
      file,
      Buffer.concat([
        Buffer.from(`${UFW('203.0.113.7')}\n${UFW('203.0.113.7')}\n`),
        Buffer.from(`${UFW('198.51.100.23')} caf\xe9\n`, 'latin1'),
      ]),
    );
    const r = await virgo([
      'learn',
      '--learners',
      'ufw',
      '--input',
      file,
      '--state-dir',
      join(dir, 'state'),
      '--log-level',
      'info',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^edge-3\/ufw\.top_src_ip=203\.0\.113\.7$/m);
    const done = r.stderr
      .split('\n')
      .filter((l) => l.includes('learned from the input'))
      .map((l) => JSON.parse(l) as { lines: number; deadLettered: number });
    expect(done).toEqual([expect.objectContaining({ lines: 3, deadLettered: 1 })]);
    // the bad line was not decoded with replacement characters and learned
    expect(r.stdout).not.toMatch(/198\.51\.100\.23/);
  }, 60_000);
});

describe('a missing input file ends the command at once, naming the file', () => {
  const missing = join(dir, 'no-such.log');

  it('virgo learn --input', async () => {
    const r = await virgo(['learn', '--input', missing, '--state-dir', join(dir, 's1')], undefined, 20_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--input ${missing}: no such file`);
  });

  it('virgo up --input', async () => {
    const r = await virgo(['up', '--input', missing, '--any-ports'], undefined, 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--input ${missing}: no such file`);
  });
});
