// `virgo up` as a user runs it: analytics within seconds (piped: the device loop's controls summed
// up once a second), a clean exit on Ctrl-C (SIGINT).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect, it } from 'vitest';
import { virgo } from '../../helpers/services.ts';

it('virgo up (embedded, demo stream) shows analytics and stops cleanly on SIGINT', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'virgo-up-'));
  try {
    const child = spawn(
      process.execPath,
      ['bin/virgo.js', 'up', '--input', 'demo', '--any-ports', '--status', 'lines', '--state-dir', stateDir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out: string[] = [];
    let err = '';
    let host = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (l) => {
        out.push(l);
        const m = /^(edge-\d)\/ufw\.top_src_ip=203\.0\.113\.7$/.exec(l);
        if (m) host = m[1]!;
        // the kernel analytics, and the device loop summed up in a line a second
        if (host && out.some((o) => /^devices: pxrc-1 \d+ changes? \(/.test(o))) resolve();
      });
      void exited.then(() => reject(new Error(`virgo up exited early:\n${out.join('\n')}\n${err}`)));
    });
    expect(out[0]).toMatch(
      /^virgo up: embedded, source=demo, feeder=127\.0\.0\.1:\d+ queue=127\.0\.0\.1:\d+/,
    );
    // piped without --verbose: no line per drone control
    expect(out.filter((l) => l.startsWith('pxrc-1/'))).toEqual([]);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    // the shutdown flushed the exports (one conf file per host) and saved the learners
    expect(readFileSync(join(stateDir, 'conf', `${host}.conf`), 'utf8')).toMatch(/ufw\.top_src_ip=/);
    expect(existsSync(join(stateDir, 'learners'))).toBe(true);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

it('virgo up refuses --split without brokers, naming the fix', async () => {
  const r = await virgo(['up', '--split']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/--split .* give --brokers/);
});
