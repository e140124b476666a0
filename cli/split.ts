// `virgo up --split`: each stage as its own `virgo` process, talking through Kafka (and Redis),
// as they would run on separate machines. Children's output is prefixed with their stage;
// SIGINT/SIGTERM reach every child; the first child to fail stops the rest.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { CommandIO } from './command.ts';

const BIN = new URL('../bin/virgo.js', import.meta.url).pathname;

export interface SplitOptions {
  brokers: string[];
  redisUrl: string | undefined;
  stateDir: string;
  input: string | undefined;
  io: CommandIO;
}

export async function runSplit(o: SplitOptions): Promise<number> {
  let stopping = false;
  const b = o.brokers.join(',');
  const redis = o.redisUrl ? ['--redis', o.redisUrl] : [];
  const stages: [string, string[]][] = [
    ['queue', ['queue', 'serve', '--dir', join(o.stateDir, 'kingcobra')]],
    ['feeder', ['feeder', '--brokers', b]],
    [
      'drivers',
      ['drivers', 'up', '--feeder', '127.0.0.1:64000', '--queue', '127.0.0.1:60000', '--brokers', b],
    ],
    [
      'consume',
      [
        'consume',
        '--feeder',
        '127.0.0.1:64000',
        '--conf',
        join(o.stateDir, 'virgo_kernel_analytics.conf'),
        ...redis,
      ],
    ],
    // a first run (no committed offsets) must read what was published before it joined
    ['learn', ['learn', '--brokers', b, '--state-dir', join(o.stateDir, 'learners'), '--from-beginning']],
    [
      'publish',
      ['publish-logs', o.input ?? '-', '--brokers', b, ...(o.input && o.input !== '-' ? ['--follow'] : [])],
    ],
  ];
  const children: ChildProcess[] = [];
  let failed = 0;
  // The listening stages start one by one, each once the previous one listens, and before the
  // stages that only connect: their outgoing connections could otherwise take a service port
  // (50000-64000 lie in Linux's ephemeral range).
  const READY: Record<string, RegExp> = {
    queue: /^listening tcp=/,
    feeder: /"name":"tcp\.feeder".*"msg":"listening"|"msg":"listening".*"name":"tcp\.feeder"/,
    drivers: /^listening /,
  };
  const listening = new Set(Object.keys(READY));
  const exited: Promise<void>[] = [];
  for (const [name, args] of stages) {
    if (stopping) break;
    let up!: () => void;
    const isUp = new Promise<void>((r) => {
      up = r;
    });
    exited.push(
      new Promise<void>((resolve) => {
        const child = spawn(process.execPath, [BIN, ...args], {
          stdio: [name === 'publish' && (o.input ?? '-') === '-' ? 'inherit' : 'ignore', 'pipe', 'pipe'],
          env: process.env,
          // Own process group: a terminal's Ctrl-C reaches only us, and we forward it once; a
          // second SIGINT would make a child skip its graceful shutdown.
          detached: true,
        });
        children.push(child);
        for (const [stream, out] of [
          [child.stdout!, o.io.stdout],
          [child.stderr!, o.io.stderr],
        ] as const) {
          createInterface({ input: stream }).on('line', (l) => {
            if (READY[name]?.test(l)) up();
            out.write(`[${name}] ${l}\n`);
          });
        }
        child.on('exit', (code, signal) => {
          if (code !== 0 && signal === null && !stopping) {
            failed = code ?? 1;
            o.io.stderr.write(`[${name}] exited with ${code}; stopping the other stages\n`);
            stop('SIGTERM');
          }
          up();
          resolve();
        });
      }),
    );
    if (listening.has(name)) await isUp;
  }
  const stop = (sig: NodeJS.Signals) => {
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill(sig);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });
  await Promise.all(exited);
  return failed;
}
