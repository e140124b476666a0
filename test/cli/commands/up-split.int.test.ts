// `virgo up --split` as a user runs it: one process per stage over Kafka, listeners first (their
// free ports handed to the stages that connect), the learner reading from the beginning, and one
// Ctrl-C (SIGINT) stopping every stage gracefully. Logs at warn: readiness must not need them.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, expect, it } from 'vitest';
import { BROKERS, unique, waitFor } from '../../helpers/services.ts';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0).reverse()) c();
});

/** Lines of `nc` on the feeder, asking for one host, until `want` arrives. */
function ncUntil(port: number, host: string, want: string): Promise<void> {
  const nc = spawn('nc', ['127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'ignore'] });
  cleanup.push(() => nc.kill());
  nc.stdin!.write(`HOST ${host}\n`);
  return new Promise((resolve, reject) => {
    createInterface({ input: nc.stdout! }).on('line', (l) => {
      if (l === want) resolve();
    });
    nc.on('exit', () => reject(new Error(`nc exited before ${want}`)));
  });
}

it('virgo up --split --any-ports: every stage its own process; analytics on the feeder; one SIGINT stops all', async () => {
  const ns = unique('e2e-split');
  const dir = mkdtempSync(join(tmpdir(), 'virgo-split-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  // published before any stage runs: the learner must read it from the beginning
  const input = join(dir, 'kern.log');
  const line = (i: number, src: string) =>
    `Nov 23 19:37:${String(i % 60).padStart(2, '0')} split-host kernel: [ 1.000000] [UFW BLOCK] IN=eth0 OUT= SRC=${src} DST=10.1.0.1 LEN=40 TTL=41 PROTO=TCP SPT=4242 DPT=22 SYN URGP=0`;
  writeFileSync(
    input,
    `${[...Array(12)].map((_, i) => line(i, i < 9 ? '198.51.100.9' : '198.51.100.1')).join('\n')}\n`,
  );
  const stateDir = join(dir, 'state');

  const up: ChildProcess = spawn(
    process.execPath,
    [
      'bin/virgo.js',
      'up',
      '--split',
      '--any-ports',
      '--brokers',
      BROKERS.join(','),
      '--input',
      input,
      '--state-dir',
      stateDir,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VIRGO_NAMESPACE: ns, VIRGO_LOG_LEVEL: 'warn' },
    },
  );
  cleanup.push(() => up.exitCode === null && up.kill('SIGKILL'));
  const out: string[] = [];
  const err: string[] = [];
  createInterface({ input: up.stdout! }).on('line', (l) => out.push(l));
  createInterface({ input: up.stderr! }).on('line', (l) => err.push(l));
  const exited = new Promise<number | null>((r) => up.on('exit', (code) => r(code)));

  cleanup.push(() => {
    if (process.env.VIRGO_TEST_VERBOSE) console.error([...out, ...err].join('\n'));
  });
  const ready = await waitFor(
    () => out.find((l) => l.startsWith('virgo up: split,')),
    'the split ready line',
    90_000,
    100,
  );
  const feeder = /feeder=127\.0\.0\.1:(\d+)/.exec(ready)?.[1];
  expect(ready).toMatch(/queue=127\.0\.0\.1:\d+ .*cpupooling=127\.0\.0\.1:\d+/);
  expect(Number(feeder)).not.toBe(64000);
  // the listeners' readiness is their stdout line, not a log line (logs here: warnings only)
  expect(out.findIndex((l) => l.startsWith('[actuators] listening'))).toBeLessThan(out.indexOf(ready));

  await ncUntil(Number(feeder), 'split-host', 'ufw.top_src_ip=198.51.100.9');
  await waitFor(
    () =>
      /ufw\.top_src_ip=198\.51\.100\.9/.test(readFileSync(join(stateDir, 'conf', 'split-host.conf'), 'utf8')),
    "the host's conf file from the consumer process",
    30_000,
  );

  up.kill('SIGINT');
  expect(await exited).toBe(0);
  // each child got the signal once (its own process group): a second one would warn and skip
  // the graceful shutdown, whose work is on disk: the learners' state, the conf file
  const all = [...out, ...err];
  expect(all.filter((l) => l.includes('second signal'))).toEqual([]);
  expect(all.filter((l) => /exited with/.test(l))).toEqual([]);
  expect(readdirSync(join(stateDir, 'learners')).length).toBeGreaterThan(0);
}, 240_000);
