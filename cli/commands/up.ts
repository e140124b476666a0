import { once } from 'node:events';
import { resolve } from 'node:path';
import { parseBrokers } from '../../bus/index.ts';
import { CONNECTION_OPTIONS, parseHostPort, parseNameList, UsageError } from '../../runtime/config.ts';
import { setLogWriter } from '../../runtime/log.ts';
import { exitOnSignals, onShutdown, shutdown } from '../../runtime/shutdown.ts';
import { defineCommand } from '../command.ts';

export default defineCommand({
  name: 'up',
  summary: 'run the whole pipeline: logs → learners → :64000 → consumer → exports, drivers, devices, queue',
  usage: 'virgo up [--input FILE|-|demo] [--brokers HOST:PORT --redis URL] [--split] [--any-ports]',
  details: `Reads the host's kernel log when it can (/var/log/kern.log, journalctl -k -f, dmesg -w,
the first that works), else a bundled demo stream; --input picks a file, - (stdin) or demo.
Embedded by default: an in-process bus and table, no server needed. --brokers and --redis
switch to Kafka and Redis; --split then runs each stage as its own process (as in production).
Listens (127.0.0.1 unless --listen-host): feeder :64000, VIRGO queue :60000, cpupooling :10000,
eventnet :20000, memorypooling :30000, cloudfs :50000, metrics + /health :9464.
On a terminal it shows a live status; piped, it prints each variable change as host/key=value.
Ctrl-C (SIGINT) or SIGTERM stops it cleanly: the source stops, offsets are committed, learner
models saved, exports flushed, the queue fsynced.
examples:
  npm start                                     # = virgo up, embedded, demo or host logs
  virgo up --input /var/log/kern.log --follow
  virgo up --brokers 127.0.0.1:9092 --redis redis://127.0.0.1:6379
  nc 127.0.0.1 64000                            # watch the analytics while it runs`,
  options: {
    ...CONNECTION_OPTIONS,
    input: {
      type: 'string',
      arg: 'FILE|-|demo',
      description: 'log source (default: host kernel log, else demo)',
    },
    follow: {
      type: 'boolean',
      default: false,
      description: 'with --input FILE: keep reading as it grows (tail -F)',
    },
    'state-dir': {
      type: 'string',
      env: 'VIRGO_STATE_DIR',
      default: '.virgo',
      arg: 'DIR',
      description: 'models, queue segments, conf file, cloudfs root',
    },
    'listen-host': {
      type: 'string',
      default: '127.0.0.1',
      arg: 'HOST',
      description: 'address every port binds',
    },
    'any-ports': {
      type: 'boolean',
      default: false,
      description: 'every listener takes a free port (printed when ready)',
    },
    zmq: {
      type: 'string',
      default: 'tcp://127.0.0.1:60001',
      arg: 'ENDPOINT|none',
      description: 'ZeroMQ ROUTER endpoint of the VIRGO queue',
    },
    metrics: {
      type: 'string',
      default: '127.0.0.1:9464',
      arg: 'HOST:PORT|none',
      description: '/metrics and /health',
    },
    conf: {
      type: 'string',
      arg: 'FILE',
      description: 'kernel analytics conf file (default STATE_DIR/virgo_kernel_analytics.conf)',
    },
    drivers: { type: 'string', arg: 'NAME,…|none', description: 'drivers to start (default all)' },
    devices: { type: 'string', arg: 'drone,webcam|none', description: 'device models (default both)' },
    learners: { type: 'string', arg: 'NAME,…', description: 'learners to run (default all)' },
    'demo-rate': { type: 'number', default: 200, description: 'lines/s of the demo stream' },
    duration: { type: 'number', arg: 'SECONDS', description: 'stop by itself after this long' },
    status: {
      type: 'string',
      default: 'auto',
      arg: 'auto|live|lines',
      description: 'live screen (TTY) or change lines',
    },
    split: { type: 'boolean', default: false, description: 'one process per stage (needs --brokers)' },
  },
  async run({ opts, io }) {
    const brokers = parseBrokers(opts.brokers);
    const stateDir = resolve(String(opts['state-dir']));
    if (opts.split) {
      if (brokers.length === 0) {
        throw new UsageError(
          '--split runs stages as separate processes, which talk through Kafka: give --brokers',
        );
      }
      const { runSplit } = await import('../split.ts');
      return runSplit({ brokers, redisUrl: opts.redis, stateDir, input: opts.input, io });
    }
    const { DRIVER_NAMES } = await import('../../actuators/drivers/index.ts');
    const { DEVICE_NAMES } = await import('../../actuators/stage.ts');
    const drivers =
      opts.drivers === undefined ? undefined : parseNameList('drivers', opts.drivers, DRIVER_NAMES);
    const devices =
      opts.devices === undefined ? undefined : parseNameList('devices', opts.devices, DEVICE_NAMES);
    const any = opts['any-ports'] ?? false;
    const metrics = opts.metrics === 'none' ? false : parseHostPort(String(opts.metrics));
    if (metrics && any) metrics.port = 0;
    const mode = opts.status === 'auto' ? (io.stdout.isTTY ? 'live' : 'lines') : opts.status;
    if (mode !== 'live' && mode !== 'lines') throw new UsageError('--status must be auto, live or lines');

    const { startPipeline } = await import('../pipeline.ts');
    const { StatusView } = await import('../status-view.ts');
    const view = mode === 'live' ? new StatusView(io.stdout) : undefined;
    if (view) setLogWriter((line) => view.log(line), false);
    const p = await startPipeline({
      ...(brokers.length > 0 ? { brokers } : {}),
      ...(opts.redis ? { redisUrl: opts.redis } : {}),
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      follow: opts.follow ?? false,
      stateDir,
      listenHost: String(opts['listen-host']),
      zmq: opts.zmq === 'none' ? false : String(opts.zmq),
      metrics,
      ...(any
        ? {
            feederPort: 0,
            queuePort: 0,
            driverPorts: { cpupooling: 0, eventnet: 0, memorypooling: 0, cloudfs: 0 },
            ...(opts.zmq !== 'none' ? { zmq: 'tcp://127.0.0.1:*' } : {}),
          }
        : {}),
      ...(drivers ? { drivers } : {}),
      ...(devices ? { devices } : {}),
      ...(opts.learners ? { learners: opts.learners.split(',') } : {}),
      ...(opts.conf ? { confPath: String(opts.conf) } : {}),
      demoRate: opts['demo-rate'] ?? 200,
      stdin: io.stdin,
    });
    onShutdown('pipeline', () => p.close());

    const where = Object.entries(p.endpoints)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const ready = `virgo up: ${p.mode}, source=${p.source}, ${where} (Ctrl-C stops)\n`;
    if (view) view.start(p, ready);
    else {
      io.stdout.write(ready);
      // The feeder's table knows each variable's host (the k=v wire does not).
      p.feeder.table.on('change', (ch: { host: string; key: string; value: string }) => {
        io.stdout.write(`${ch.host ? `${ch.host}/` : ''}${ch.key}=${ch.value}\n`);
      });
    }

    const stop =
      opts.duration !== undefined ? new Promise((r) => setTimeout(r, opts.duration! * 1000)) : undefined;
    await Promise.race([exitOnSignals(), ...(stop ? [stop] : [])]);
    view?.stop();
    setLogWriter((line) => process.stderr.write(line), !process.stderr.isTTY);
    await shutdown();
    if (!view) {
      const h = p.health();
      io.stderr.write(
        `virgo up: stopped; ${p.published()} lines published, ${p.table.size} variables, ${JSON.stringify(h.queue)}\n`,
      );
    }
    if (!io.stdout.write('')) await once(io.stdout, 'drain');
    return 0;
  },
});
