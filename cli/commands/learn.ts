import { readFileSync } from 'node:fs';
import type { Bus } from '../../bus/index.ts';
import { sourceProblem } from '../../ingest/source.ts';
import type { Guarantee, LearnStage } from '../../learners/index.ts';
import { declaredVariables } from '../../learners/registry.ts';
import { describeDefinition } from '../../learners/variables.ts';
import { CONNECTION_OPTIONS, UsageError } from '../../runtime/config.ts';
import { createLogger } from '../../runtime/log.ts';
import type { HttpRoutes } from '../../runtime/metrics.ts';
import { serveMetrics } from '../../runtime/metrics.ts';
import { stateDir } from '../../runtime/paths.ts';
import { resolveSecret, SECRET_FILE_OPTION } from '../../runtime/secret.ts';
import { exitOnSignals, onShutdown, stopProcess } from '../../runtime/shutdown.ts';
import { busFromOptions, defineCommand } from '../command.ts';
import { TIME_OPTIONS, timeFromOptions } from '../time-options.ts';

const log = createLogger('learn');

/** Every declared variable with what it is computed over, for --help. */
function variablesHelp(): string {
  const rows = [...declaredVariables()].map(
    ([key, dv]) => `  ${dv.learner.padEnd(8)}${key.padEnd(30)}${describeDefinition(dv.decl.definition)}`,
  );
  return rows.join('\n');
}

export default defineCommand({
  name: 'learn',
  summary: 'run the online learners: kernel logs (and drone/webcam records) in, analytics variables out',
  usage:
    'virgo learn [--brokers HOST:PORT] [--state-dir DIR] [--learners ufw,netbw,…] [--input FILE] [--clock auto|event|processing] [--tdf N]',
  details: `learners: ufw, netbw, anomaly, load, drone, webcam (default: all)
With --brokers it is a service: consumer group virgo-learners on virgo.kernel-logs (and
virgo.drone-sensors / virgo.webcam-frames), variables to virgo.kernel-analytics, until SIGINT/SIGTERM.
Without --brokers it reads log lines from --input (or stdin), prints host/key=value lines as the
learners emit them, and exits at the end of the input.
State (models, windows, template miner, pins) is saved under --state-dir every --save-every
seconds and on exit, and restored at start; at start the current value of every restored variable
is published again. Pins: virgo pin host/key=value, virgo unpin host/key.
Time: windows run on event time (the lines' own stamps). The dwell between two changes of a
variable runs on the pipeline clock: event time while replaying (an --input file, a topic read
from behind), processing time live (--clock auto); --tdf N makes processing time virtual.
The input ends with a final watermark: every held value goes out, so the last value printed for a
variable is its answer over the whole input. Lines are put in event-time order across partitions;
a line already counted is dropped (same host, time, text); a line more than --allowed-lateness
behind its host's newest line goes to virgo.kernel-logs.dlq with reason late.
variables (learner, key, what the value is computed over):
${variablesHelp()}
examples:
  virgo learn --brokers 127.0.0.1:9092 --state-dir /var/lib/virgo
  virgo learn --learners ufw --input /var/log/kern.log`,
  options: {
    brokers: CONNECTION_OPTIONS.brokers,
    'state-dir': {
      type: 'string',
      env: 'VIRGO_STATE_DIR',
      arg: 'DIR',
      description: 'where models, windows and pins live (default ./.virgo)',
    },
    learners: { type: 'string', arg: 'NAMES', description: 'comma-separated learners (default all)' },
    input: {
      type: 'string',
      arg: 'FILE',
      description: 'without --brokers: log lines to learn from (- or none: stdin)',
    },
    'from-beginning': {
      type: 'boolean',
      default: false,
      description: 'with no committed offsets, read topics from the start',
    },
    group: { type: 'string', arg: 'ID', description: 'consumer group (default virgo-learners)' },
    'save-every': { type: 'number', default: 60, arg: 'SEC', description: 'snapshot period, seconds' },
    print: {
      type: 'boolean',
      default: false,
      description: 'also print emitted variables (always on without --brokers)',
    },
    'metrics-port': {
      type: 'number',
      arg: 'PORT',
      description: 'serve the dashboard (/), /metrics and /health on this port',
    },
    'secret-file': SECRET_FILE_OPTION,
    'webcam-gallery': {
      type: 'string',
      arg: 'FILE',
      description: 'JSON {"identity": [[embedding], …]} enrolled in the webcam learner',
    },
    'pins-topic': {
      type: 'string',
      arg: 'TOPIC',
      description: 'with --brokers: the compacted pins topic (default virgo.learner-pins)',
    },
    'logs-topic': { type: 'string', arg: 'TOPIC', description: 'log topic (default virgo.kernel-logs)' },
    'analytics-topic': {
      type: 'string',
      arg: 'TOPIC',
      description: 'output topic (default virgo.kernel-analytics)',
    },
    guarantee: {
      type: 'string',
      env: 'VIRGO_GUARANTEE',
      default: 'exactly-once',
      arg: 'exactly-once|at-least-once',
      description:
        'with --brokers: exactly-once commits variables, host state (virgo.learner-state) and offsets in one Kafka transaction; at-least-once commits offsets after each batch',
    },
    'commit-interval': {
      type: 'number',
      default: 500,
      arg: 'MS',
      description: 'exactly-once: ms between two transactions (variables go out when they commit)',
    },
    ...TIME_OPTIONS,
  },
  portFix: () => '--metrics-port PORT chooses another',
  async run({ opts, io }) {
    const { startLearnStage, learnerNames, UnknownLearnerError, GUARANTEES } = await import(
      '../../learners/index.ts'
    );
    let names: string[];
    try {
      names = learnerNames(opts.learners?.split(','));
    } catch (err) {
      if (err instanceof UnknownLearnerError) throw new UsageError(err.message);
      throw err;
    }
    const dir = opts['state-dir'] ?? stateDir();
    const saveEvery = opts['save-every'] ?? 60;
    if (!(saveEvery > 0)) throw new UsageError('--save-every must be > 0 seconds');
    const learnerOptions: Record<string, Record<string, unknown>> = {};
    if (opts['webcam-gallery']) {
      const path = opts['webcam-gallery'];
      let gallery: unknown;
      try {
        gallery = JSON.parse(readFileSync(path, 'utf8'));
      } catch (err) {
        throw new UsageError(
          `--webcam-gallery ${path}: ${(err as Error).message}; expected {"identity": [[…], …]}`,
        );
      }
      if (typeof gallery !== 'object' || gallery === null || Array.isArray(gallery)) {
        throw new UsageError(`--webcam-gallery ${path}: expected {"identity": [[…], …]}`);
      }
      learnerOptions.webcam = { gallery };
    }
    const embedded = !opts.brokers;
    const time = timeFromOptions(opts);
    const print = embedded || opts.print === true;
    const input = opts.input ?? '-';
    if (embedded) {
      // A wrong path ends the command at once, before any learner starts.
      const problem = sourceProblem(input);
      if (problem) throw new UsageError(`--input ${problem}`);
    } else if (opts.input !== undefined) {
      throw new UsageError(
        '--input is read without --brokers; with Kafka, publish the file: virgo publish-logs FILE',
      );
    }
    const guarantee = opts.guarantee ?? 'exactly-once';
    if (!(GUARANTEES as readonly string[]).includes(guarantee))
      throw new UsageError(`--guarantee must be one of ${GUARANTEES.join('|')}, got ${guarantee}`);
    const commitInterval = opts['commit-interval'] ?? 500;
    if (!(commitInterval >= 10)) throw new UsageError('--commit-interval must be at least 10 ms');
    const bus = busFromOptions(opts, 'virgo-learn');
    const stage = startLearnStage({
      bus,
      stateDir: dir,
      learners: names,
      fromBeginning: embedded || (opts['from-beginning'] ?? false),
      saveEveryMs: saveEvery * 1000,
      learnerOptions,
      clock: time.clock,
      order: time.order,
      // Without brokers the input is read to its end: a bounded replay.
      bounded: embedded,
      // --guarantee is of the Kafka mode: the in-process bus has no transactions (README "Scaling out")
      guarantee: embedded ? 'at-least-once' : (guarantee as Guarantee),
      commitIntervalMs: commitInterval,
      onFatal: (err) => {
        log.error('virgo learn stops', { err });
        stopProcess('fatal learn-stage failure', 1);
      },
      ...(opts.group ? { groupId: opts.group } : {}),
      ...(opts['logs-topic'] ? { logsTopic: opts['logs-topic'] } : {}),
      ...(opts['analytics-topic'] ? { analyticsTopic: opts['analytics-topic'] } : {}),
      ...(opts['pins-topic'] ? { pinsTopic: opts['pins-topic'] } : {}),
      ...(print ? { onEmit: (v) => void io.stdout.write(`${v.host}/${v.key}=${v.value}\n`) } : {}),
    });
    onShutdown('learn stage', async () => {
      await stage.close();
      await bus.close();
    });
    try {
      await stage.ready;
    } catch (err) {
      await stage.close().catch(() => {});
      await bus.close().catch(() => {});
      throw err;
    }
    const metrics =
      opts['metrics-port'] !== undefined
        ? await serveMetrics({
            port: opts['metrics-port'],
            health: () => ({ ok: true, ...stage.stats() }),
            routes: await learnDashboard(
              bus,
              stage,
              opts['analytics-topic'],
              resolveSecret('dashboard', opts['secret-file'], io.env)?.secret,
            ),
          })
        : undefined;
    if (metrics) {
      onShutdown('metrics', () => metrics.close());
      // --metrics-port 0 takes a free port: say which
      log.info('serving /metrics and /health', { port: metrics.port });
    }

    if (embedded) {
      // Feed the input through the in-process bus with publishLogs, the one input route (as
      // publish-logs and virgo up): raw bytes keyed by the host each line names, so the same
      // consumer stage decodes, parses and dead-letters them as from Kafka. Done when ingest has
      // read everything published.
      const { TOPICS } = await import('../../bus/index.ts');
      const { publishLogs } = await import('../../ingest/publish.ts');
      const topic = opts['logs-topic'] ?? TOPICS.kernelLogs;
      if (input === '-' && io.stdin.isTTY) {
        log.info(
          'reading log lines from the terminal; end with Ctrl-D (or give --brokers to run as a service)',
        );
      }
      const r = await publishLogs({ bus, source: input, stdin: io.stdin, topic, ensureTopic: false });
      const published = r.lines;
      // A final watermark: what waits for its event-time turn and what dwell holds goes out.
      await stage.finish();
      await stage.close();
      await metrics?.close();
      await bus.close();
      const s = stage.stats();
      log.info('learned from the input', {
        lines: published,
        deadLettered: s.ingest?.deadLettered ?? 0,
        published: s.published,
        saved: dir,
      });
      return 0;
    }

    const tty = io.stderr.isTTY === true;
    const progress = tty
      ? setInterval(() => {
          const s = stage.stats();
          log.info('learning', {
            events: s.inputs.kernel,
            drone: s.inputs.drone,
            webcam: s.inputs.webcam,
            published: s.published,
            pins: s.pins,
          });
        }, 10_000)
      : undefined;
    progress?.unref();
    log.info('virgo learn running; Ctrl-C to stop', {
      brokers: opts.brokers,
      stateDir: dir,
      learners: names.join(','),
    });
    await exitOnSignals();
    clearInterval(progress);
    return 0;
  },
});

/** The dashboard of `virgo learn`: the variables on the bus, the gate's flags, the learners. */
async function learnDashboard(
  bus: Bus,
  stage: LearnStage,
  analyticsTopic: string | undefined,
  secret: string | undefined,
): Promise<HttpRoutes> {
  const { startDashboard } = await import('../dashboard/start.ts');
  const { stageFigures } = await import('../figures.ts');
  return startDashboard({
    bus,
    ...(analyticsTopic ? { analyticsTopic } : {}),
    ...(secret ? { secret } : {}),
    sources: {
      meta: () => ({ command: 'virgo learn' }),
      states: () => stage.host.variableStates(),
      panels: () => stageFigures({ learn: stage }),
      pins: {
        pin: (host, key, value) => stage.host.pin(host, key, value),
        unpin: (host, key) => stage.host.unpin(host, key),
      },
    },
  });
}
