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
  const b = o.brokers.join(',');
  const redis = o.redisUrl ? ['--redis', o.redisUrl] : [];
  const stages: [string, string[]][] = [
    ['queue', ['queue', 'serve', '--dir', join(o.stateDir, 'kingcobra')]],
    ['learn', ['learn', '--brokers', b, '--state-dir', join(o.stateDir, 'learners')]],
    ['feeder', ['feeder', '--brokers', b]],
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
    [
      'drivers',
      ['drivers', 'up', '--feeder', '127.0.0.1:64000', '--queue', '127.0.0.1:60000', '--brokers', b],
    ],
    [
      'publish',
      ['publish-logs', o.input ?? '-', '--brokers', b, ...(o.input && o.input !== '-' ? ['--follow'] : [])],
    ],
  ];
  const children: ChildProcess[] = [];
  let failed = 0;
  const exited = stages.map(
    ([name, args]) =>
      new Promise<void>((resolve) => {
        const child = spawn(process.execPath, [BIN, ...args], {
          stdio: [name === 'publish' && (o.input ?? '-') === '-' ? 'inherit' : 'ignore', 'pipe', 'pipe'],
          env: process.env,
        });
        children.push(child);
        for (const [stream, out] of [
          [child.stdout!, o.io.stdout],
          [child.stderr!, o.io.stderr],
        ] as const) {
          createInterface({ input: stream }).on('line', (l) => out.write(`[${name}] ${l}\n`));
        }
        child.on('exit', (code, signal) => {
          if (code !== 0 && signal === null && !stopping) {
            failed = code ?? 1;
            o.io.stderr.write(`[${name}] exited with ${code}; stopping the other stages\n`);
            stop('SIGTERM');
          }
          resolve();
        });
      }),
  );
  let stopping = false;
  const stop = (sig: NodeJS.Signals) => {
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill(sig);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  await Promise.all(exited);
  return failed;
}
