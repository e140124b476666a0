// Where the kernel log lines come from, published onto virgo.kernel-logs: the host's kernel log
// (kern.log, journalctl -k, dmesg, the first that works), a file, stdin, the bundled demo stream,
// or none (others publish: rsyslog omkafka, kcat, `virgo publish-logs`).
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { DEFAULT_LINGER_MS, sourceProblem } from '../../ingest/source.ts';
import { UsageError } from '../../runtime/config.ts';
import { createLogger } from '../../runtime/log.ts';
import { learnStage } from './learn.ts';
import { boundedInput, brokersArg, type PipelineOptions, type PipelineStage } from './stage.ts';

const log = createLogger('pipeline');

export type SourceKind = 'file' | 'stdin' | 'journalctl' | 'dmesg' | 'kern.log' | 'demo' | 'none';

export interface SourceHandle {
  kind: SourceKind;
  /** lines published so far */
  published(): number;
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** A host log command that really works here: it must print within a moment and not fail. */
async function probeCommand(cmd: string, args: string[]): Promise<Readable | undefined> {
  return new Promise((resolve) => {
    let p: ReturnType<typeof spawn>;
    try {
      p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      resolve(undefined);
      return;
    }
    const out = p.stdout!;
    const fail = () => {
      clearTimeout(timer);
      p.kill();
      resolve(undefined);
    };
    const timer = setTimeout(fail, 1_500);
    p.once('error', fail);
    p.once('exit', fail);
    out.once('readable', () => {
      clearTimeout(timer);
      p.off('exit', fail);
      p.off('error', fail);
      out.once('close', () => p.kill());
      resolve(out);
    });
  });
}

async function openSource(
  o: PipelineOptions,
): Promise<{ kind: SourceKind; path: string; stream?: Readable | NodeJS.ReadableStream }> {
  const { demoStream } = await import('../../ingest/demo-stream.ts');
  if (o.input === 'none') return { kind: 'none', path: '-' };
  if (o.input === '-') return { kind: 'stdin', path: '-', stream: o.stdin ?? process.stdin };
  if (o.input === 'demo') return { kind: 'demo', path: '-', stream: demoStream({ rate: o.demoRate ?? 200 }) };
  if (o.input) return { kind: 'file', path: o.input };
  if (readable('/var/log/kern.log')) return { kind: 'kern.log', path: '/var/log/kern.log' };
  const journal = await probeCommand('journalctl', ['-k', '-f', '-o', 'short', '--no-pager', '-n', '1000']);
  if (journal) return { kind: 'journalctl', path: '-', stream: journal };
  const dmesg = await probeCommand('dmesg', ['-w']);
  if (dmesg) return { kind: 'dmesg', path: '-', stream: dmesg };
  log.info('no readable kernel log (/var/log/kern.log, journalctl -k, dmesg): using the bundled demo stream');
  return { kind: 'demo', path: '-', stream: demoStream({ rate: o.demoRate ?? 200 }) };
}

export const sourceStage: PipelineStage<SourceHandle> = {
  name: 'source',
  // its lines are for the learners: they listen to the topic before the first line arrives
  after: ['learn'],
  options: {
    input: {
      type: 'string',
      arg: 'FILE|-|demo',
      description: 'log source (default: host kernel log, else demo)',
    },
    follow: {
      type: 'boolean',
      default: false,
      description: 'with --input FILE: keep reading as it grows (tail -F, checkpointed in STATE_DIR)',
    },
    'linger-ms': {
      type: 'number',
      default: DEFAULT_LINGER_MS,
      env: 'VIRGO_LINGER_MS',
      arg: 'MS',
      description: 'the log source sends a partial batch this long after its first line',
    },
    'demo-rate': { type: 'number', default: 200, description: 'lines/s of the demo stream' },
  },
  configure(flags, o) {
    if (flags.input !== undefined) o.input = String(flags.input);
    o.follow = flags.follow === true;
    o.demoRate = (flags['demo-rate'] as number | undefined) ?? 200;
    const linger = (flags['linger-ms'] as number | undefined) ?? DEFAULT_LINGER_MS;
    if (!(linger >= 0)) throw new UsageError(`--linger-ms must be >= 0, got ${linger}`);
    o.lingerMs = linger;
  },
  async start(ctx) {
    const { brokerTopic, checkpointPath, publishLogs } = await import('../../ingest/index.ts');
    const { TOPICS } = await import('../../bus/index.ts');
    const source = await openSource(ctx.o);
    if (source.kind === 'file') {
      // A wrong path ends `virgo up` with the path named, not a pipeline whose source failed.
      const problem = sourceProblem(source.path, ctx.o.follow);
      if (problem) throw new UsageError(`--input ${problem}`);
    }
    const follow = source.kind === 'kern.log' || (source.kind === 'file' && (ctx.o.follow ?? false));
    const logsTopic = brokerTopic(TOPICS.kernelLogs, ctx.o.namespace);
    const abort = new AbortController();
    let published = 0;
    let sourceError: Error | undefined;
    const publishing = (
      source.kind === 'none'
        ? Promise.resolve({ lines: 0 })
        : publishLogs({
            bus: ctx.bus,
            source: source.stream ? '-' : source.path,
            ...(source.stream ? { stdin: source.stream } : {}),
            follow,
            // a followed file resumes where the last run's acknowledged lines end (not counted twice)
            ...(follow
              ? {
                  checkpoint: checkpointPath(ctx.o.stateDir, source.path, logsTopic),
                  checkpointTopic: logsTopic,
                }
              : {}),
            ...(ctx.o.lingerMs !== undefined ? { lingerMs: ctx.o.lingerMs } : {}),
            ...(source.kind === 'journalctl' || source.kind === 'dmesg' || source.kind === 'kern.log'
              ? { host: hostname() }
              : {}),
            signal: abort.signal,
            onProgress: (p) => {
              published = p.lines;
            },
            progressEveryMs: 200,
          })
    ).then(
      async (r) => {
        published = r.lines;
        log.info('log source ended', { source: source.kind, lines: r.lines });
        // A bounded file's end is a final watermark for the learners: once they read every
        // line, what waits for its event-time turn and what dwell holds goes out.
        const learn = ctx.peer(learnStage);
        if (boundedInput(ctx.o) && learn && !abort.signal.aborted) {
          try {
            await learn.finish();
            log.info('input replayed to its end: the final values are out', { lines: r.lines });
          } catch (err) {
            if (!abort.signal.aborted) log.error('could not release the final values', { err });
          }
        }
      },
      (err: Error) => {
        if (abort.signal.aborted) return;
        sourceError = err;
        log.error('log source failed', { source: source.kind, err });
      },
    );
    return {
      handle: { kind: source.kind, published: () => published },
      health: () => ({
        ok: !sourceError,
        source: source.kind,
        ...(sourceError ? { sourceError: sourceError.message } : {}),
        published,
      }),
      close: async () => {
        abort.abort();
        if (source.stream && 'destroy' in source.stream) (source.stream as Readable).destroy();
        await publishing;
      },
    };
  },
  // As its own process the source is `virgo publish-logs`: a file is followed (a deployment
  // tails its log; a missing one is awaited) with its checkpoint in the state dir, no --input
  // reads standard input, and --input none runs no publisher.
  child(o) {
    if (o.input === 'none') return undefined;
    const input = o.input ?? '-';
    return {
      args: [
        'publish-logs',
        input,
        '--brokers',
        brokersArg(o),
        ...(o.lingerMs !== undefined && o.lingerMs !== DEFAULT_LINGER_MS
          ? ['--linger-ms', String(o.lingerMs)]
          : []),
        ...(input !== '-' ? ['--follow', '--state-dir', o.stateDir] : []),
      ],
      stdin: input === '-',
    };
  },
};
