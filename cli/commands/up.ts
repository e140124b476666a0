import { once } from 'node:events';
import { resolve } from 'node:path';
import { parseBrokers } from '../../bus/index.ts';
import { UsageError } from '../../runtime/config.ts';
import { createLogger, setLogWriter } from '../../runtime/log.ts';
import { refuseSecretFlag, resolveSecret } from '../../runtime/secret.ts';
import { exitOnSignals, onShutdown, shutdown } from '../../runtime/shutdown.ts';
import { defineCommand } from '../command.ts';
import { pipelineOptions, SHARED_OPTIONS, stageOptions } from '../topology/index.ts';

export default defineCommand({
  name: 'up',
  summary: 'run the whole pipeline: logs → learners → :64000 → consumer → exports, drivers, devices, queue',
  usage: 'virgo up [--input FILE|-|demo] [--brokers HOST:PORT --redis URL] [--split] [--any-ports]',
  details: `Reads the host's kernel log when it can (/var/log/kern.log, journalctl -k -f, dmesg -w,
the first that works), else a bundled demo stream; --input picks a file, - (stdin) or demo.
Embedded by default: an in-process bus and table, no server needed. --brokers and --redis
switch to Kafka and Redis; --split then runs each stage as its own process (as in production).
Listens (127.0.0.1 unless --listen-host): feeder :64000, VIRGO queue :60000, cpupooling :10000,
eventnet :20000, memorypooling :30000, cloudfs :50000, dashboard + /metrics + /health :9464.
On a terminal it shows a live screen fitted to the terminal's size; piped, it prints each
variable change as host/key=value, the device loop's controls (pxrc.*, the webcam's) summed up
in one line a second unless --verbose. The web dashboard is on http://127.0.0.1:9464/ (--metrics).
An --input file without --follow is replayed on event time and ends with a final watermark (the
last value of each variable is its answer over the file); see virgo learn --help and README "Time".
Ctrl-C (SIGINT) or SIGTERM stops it cleanly: the source stops, offsets are committed, learner
models saved, exports flushed, the queue fsynced.
examples:
  npm start                                     # = virgo up, embedded, demo or host logs
  virgo up --input /var/log/kern.log --follow
  virgo up --brokers 127.0.0.1:9092 --redis redis://127.0.0.1:6379
  nc 127.0.0.1 64000                            # watch the analytics while it runs`,
  options: {
    ...SHARED_OPTIONS,
    ...stageOptions(),
    duration: { type: 'number', arg: 'SECONDS', description: 'stop by itself after this long' },
    status: {
      type: 'string',
      default: 'auto',
      arg: 'auto|live|lines',
      description: 'live screen (TTY) or change lines',
    },
    split: { type: 'boolean', default: false, description: 'one process per stage (needs --brokers)' },
    verbose: {
      type: 'boolean',
      default: false,
      description: 'piped: every device control change too, not a summary line a second',
    },
  },
  async run({ opts, io }) {
    const brokers = parseBrokers(opts.brokers);
    refuseSecretFlag(opts.secret, 'all');
    const queueSecret = resolveSecret('queue', opts['secret-file'], io.env);
    const driversSecret = resolveSecret('drivers', opts['secret-file'], io.env);
    const dashboardSecret = resolveSecret('dashboard', opts['secret-file'], io.env);
    for (const [port, s] of [
      ['queue', queueSecret],
      ['drivers', driversSecret],
      ['dashboard pins', dashboardSecret],
    ] as const) {
      if (s) createLogger('up').info('write ports require the secret', { ports: port, source: s.source });
    }
    // every stage's flags, read by the stage that declared them, for either mode
    const o = pipelineOptions(opts, {
      ...(brokers.length > 0 ? { brokers } : {}),
      stateDir: resolve(String(opts['state-dir'])),
      stdin: io.stdin,
      secrets: {
        ...(queueSecret ? { queue: queueSecret.secret } : {}),
        ...(driversSecret ? { drivers: driversSecret.secret } : {}),
        ...(dashboardSecret ? { dashboard: dashboardSecret.secret } : {}),
      },
    });
    if (opts.split) {
      if (brokers.length === 0) {
        throw new UsageError(
          '--split runs stages as separate processes, which talk through Kafka: give --brokers',
        );
      }
      const { runSplit } = await import('../topology/index.ts');
      return runSplit(o, io);
    }
    const mode = opts.status === 'auto' ? (io.stdout.isTTY ? 'live' : 'lines') : opts.status;
    if (mode !== 'live' && mode !== 'lines') throw new UsageError('--status must be auto, live or lines');

    const { startPipeline } = await import('../topology/index.ts');
    const { StatusView } = await import('../status-view.ts');
    const view = mode === 'live' ? new StatusView(io.stdout) : undefined;
    if (view) setLogWriter((line) => view.log(line), false);
    const p = await startPipeline(o);
    onShutdown('pipeline', () => p.close());

    const where = Object.entries(p.endpoints)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const ready = `virgo up: ${p.mode}, source=${p.source}, ${where} (Ctrl-C stops)\n`;
    let summaries: NodeJS.Timeout | undefined;
    if (view) view.start(p, `virgo up · ${p.mode} · source ${p.source} · Ctrl-C stops`);
    else {
      io.stdout.write(ready);
      const { ChangeLines } = await import('../change-lines.ts');
      const lines = new ChangeLines(
        [p.actuators.deviceIds.drone, p.actuators.deviceIds.webcam],
        opts.verbose,
      );
      // The feeder's table knows each variable's host (the k=v wire does not). The pipeline runs
      // from startPipeline() on, so what it emitted before this listener exists is printed first:
      // its current values, then every change (one turn of the loop: nothing falls between).
      const print = (host: string, key: string, value: string) => {
        const line = lines.change(host, key, value);
        if (line !== undefined) io.stdout.write(`${line}\n`);
      };
      for (const e of p.feeder.table.entries()) print(e.host, e.key, e.value);
      p.feeder.table.on('change', (ch: { host: string; key: string; value: string }) =>
        print(ch.host, ch.key, ch.value),
      );
      // the device loop's controls, once a second (processing time)
      summaries = setInterval(() => {
        const line = lines.summary();
        if (line !== undefined) io.stdout.write(`${line}\n`);
      }, 1000);
      summaries.unref();
    }

    const stop =
      opts.duration !== undefined ? new Promise((r) => setTimeout(r, opts.duration! * 1000)) : undefined;
    await Promise.race([exitOnSignals(), ...(stop ? [stop] : [])]);
    view?.stop();
    clearInterval(summaries);
    setLogWriter((line) => process.stderr.write(line), !process.stderr.isTTY);
    await shutdown();
    if (!view) {
      const q = p.queue.stats().kingcobra;
      io.stderr.write(
        `virgo up: stopped; ${p.published()} lines published, ${p.table.size} variables, queue ${q.accepted} requests (${q.replied} replied)\n`,
      );
    }
    if (!io.stdout.write('')) await once(io.stdout, 'drain');
    return 0;
  },
});
