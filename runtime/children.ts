// Runs the stages of a topology as child processes, as they would run on separate machines:
// in start order, each listening stage awaited (its "ready" line) before the next starts, with
// the endpoints it printed handed to the stages that connect to it. Children's output is
// prefixed with their stage; SIGINT/SIGTERM reach every child once; the first child to fail
// stops the rest.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Endpoints } from './topology.ts';

export interface ChildSpec {
  /** the program and its arguments */
  argv: readonly string[];
  /** its whole environment (default: ours) */
  env?: NodeJS.ProcessEnv;
  /** the child reads our standard input */
  stdin?: boolean;
  /** the line that says it listens, read for where; undefined for any other line */
  ready?: (line: string) => Endpoints | undefined;
}

export interface ChildStage {
  name: string;
  /** await its ready line before starting the next */
  listens?: boolean;
  /** its command line, given the endpoints of the stages started before it; undefined: skip */
  spec(endpoints: Readonly<Endpoints>): ChildSpec | undefined;
}

export interface ChildrenIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** every endpoint, once the last listening stage is ready */
  onListening?: (endpoints: Readonly<Endpoints>) => void;
}

/** Runs `stages` (already in start order) until they all exit; resolves with the first failure's code. */
export async function runChildren(stages: readonly ChildStage[], io: ChildrenIO): Promise<number> {
  let stopping = false;
  let failed = 0;
  const children: ChildProcess[] = [];
  const stop = (sig: NodeJS.Signals) => {
    stopping = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(sig);
  };
  const onSignal = (sig: NodeJS.Signals) => stop(sig);
  const onExit = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  const endpoints: Endpoints = {};
  const exited: Promise<void>[] = [];
  const lastListener = stages.findLastIndex((s) => s.listens);
  try {
    for (const [i, stage] of stages.entries()) {
      if (stopping) break;
      const spec = stage.spec(endpoints);
      if (spec) {
        const [cmd, ...args] = spec.argv;
        let up!: () => void;
        const isUp = new Promise<void>((r) => {
          up = r;
        });
        const child = spawn(cmd!, args, {
          stdio: [spec.stdin ? 'inherit' : 'ignore', 'pipe', 'pipe'],
          env: spec.env ?? process.env,
          // Own process group: a terminal's Ctrl-C reaches only us, and we forward it once; a
          // second SIGINT would make a child skip its graceful shutdown.
          detached: true,
        });
        children.push(child);
        let ready = !spec.ready;
        for (const [stream, out] of [
          [child.stdout!, io.stdout],
          [child.stderr!, io.stderr],
        ] as const) {
          createInterface({ input: stream }).on('line', (l) => {
            if (!ready) {
              const at = spec.ready!(l);
              if (at) {
                ready = true;
                Object.assign(endpoints, at);
                up();
              }
            }
            out.write(`[${stage.name}] ${l}\n`);
          });
        }
        exited.push(
          new Promise<void>((resolve) => {
            child.on('exit', (code, signal) => {
              if (code !== 0 && signal === null && !stopping) {
                failed = code ?? 1;
                io.stderr.write(`[${stage.name}] exited with ${code}; stopping the other stages\n`);
                stop('SIGTERM');
              }
              up();
              resolve();
            });
            // could not be started at all (no 'exit' follows)
            child.on('error', (err) => {
              if (child.pid !== undefined) return;
              if (!stopping) failed = 1;
              io.stderr.write(`[${stage.name}] could not start: ${err.message}; stopping the other stages\n`);
              stop('SIGTERM');
              up();
              resolve();
            });
          }),
        );
        if (stage.listens) await isUp;
      }
      if (i === lastListener && !stopping) io.onListening?.(endpoints);
    }
    await Promise.all(exited);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
  return failed;
}
