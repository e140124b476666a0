import { hostname } from 'node:os';
import { FEEDER_PORT } from '../../kernel-analytics/ports.ts';
import { CONNECTION_OPTIONS, parseHostPort, UsageError } from '../../runtime/config.ts';
import { exitOnSignals, onShutdown, shutdown } from '../../runtime/shutdown.ts';
import { hostProblem } from '../../schemas/variable.ts';
import { defineCommand } from '../command.ts';

export default defineCommand({
  name: 'consume',
  summary: 'read a feeder into the ring buffer and table; export to Redis and the conf file',
  usage:
    'virgo consume [--feeder HOST:64000] [--host NAME] [--redis URL] [--conf-dir DIR] [--conf PATH [--conf-host NAME]] [--print]',
  details: `Connects to a feeder (virgo feeder, or any "nc -l 64000" with typed key=value lines),
sends KERNEL_ANALYTICS_STREAMING_START, and keeps the last --ring-size pairs in a ring and the
latest value per host/key in a table (at most --max-variables; more are refused and counted).
Without --host it reads every host: the feeder sends host/key=value lines (split at the first
'/'); a bare key=value line (a feeder typed by hand) is this machine's. --host NAME asks the feeder
for NAME's variables (HOST NAME) and records its bare lines under NAME. Lines starting with '#' are
the feeder's notices (logged). Reconnects with exponential backoff and jitter. Lines that are not
key=value (binary, too long, no '=', bad host or key, a half line at disconnect) are counted per
reason and skipped.
Exports, never merging hosts: --redis writes the hash virgo:analytics:<host> and publishes changes
on virgo:analytics:changes:<host>; --conf-dir keeps one conf file per host, DIR/<host>.conf;
--conf keeps one host's variables in one file: --conf-host's, by default --host's, else this
machine's (atomic rewrites).
Prints each change (host/key=value; key=value with --host) when stdout is a terminal or with --print.
examples:
  virgo consume --feeder 127.0.0.1:64000 --print
  virgo consume --host "$(hostname)" --conf /etc/virgo_kernel_analytics.conf
  nc -l 64000   # then, elsewhere: virgo consume --conf ./virgo_kernel_analytics.conf`,
  options: {
    feeder: {
      type: 'string',
      env: 'VIRGO_FEEDER',
      default: `127.0.0.1:${FEEDER_PORT}`,
      arg: 'HOST:PORT',
      description: 'feeder to read',
    },
    redis: CONNECTION_OPTIONS.redis,
    conf: {
      type: 'string',
      env: 'VIRGO_CONF_FILE',
      arg: 'PATH',
      description: "keep one host's variables in this conf file (see --conf-host)",
    },
    'conf-host': {
      type: 'string',
      arg: 'NAME',
      description: "the host whose variables --conf holds (default: --host, else this machine's hostname)",
    },
    'conf-dir': { type: 'string', arg: 'DIR', description: 'keep one conf file per host, DIR/<host>.conf' },
    print: { type: 'boolean', description: 'print changes (default: when stdout is a TTY)' },
    host: {
      type: 'string',
      arg: 'NAME',
      description: "ask the feeder for this host's variables (HOST NAME); also the Redis hash's host",
    },
    'ring-size': { type: 'number', default: 500, description: 'ring slots' },
    'max-variables': {
      type: 'number',
      default: 500,
      description: 'variables the table holds (MAX_ANALYTICS_CONF)',
    },
    'max-reconnect-delay': { type: 'number', default: 30000, arg: 'MS', description: 'backoff ceiling' },
    metrics: {
      type: 'string',
      env: 'VIRGO_METRICS',
      arg: 'HOST:PORT',
      description: 'serve the dashboard (/), /metrics and /health',
    },
  },
  portFix: () => '--metrics HOST:PORT chooses another',
  async run({ opts, io }) {
    const { RingConsumer } = await import('../../kernel-analytics/consumer.ts');
    const { exportTable } = await import('../../kernel-analytics/export.ts');
    const feeder = parseHostPort(opts.feeder as string);
    for (const n of ['ring-size', 'max-variables', 'max-reconnect-delay'] as const) {
      const v = opts[n] as number;
      if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${n} must be a positive integer, got ${v}`);
    }
    for (const n of ['host', 'conf-host'] as const) {
      const bad = opts[n] === undefined ? undefined : hostProblem(String(opts[n]));
      if (bad) throw new UsageError(`--${n}: ${bad.message}`);
    }
    const confHost = String(opts['conf-host'] ?? opts.host ?? hostname());
    if (opts.redis) {
      // a Redis that does not answer fails start-up now, with the fix (runtime/redis-probe.ts)
      const { probeRedis } = await import('../../runtime/redis-probe.ts');
      await probeRedis(opts.redis as string);
    }
    const consumer = new RingConsumer({
      host: feeder.host,
      port: feeder.port,
      ringSize: opts['ring-size'] as number,
      maxVariables: opts['max-variables'] as number,
      backoff: { maxMs: opts['max-reconnect-delay'] as number },
      ...(opts.host ? { selectHost: opts.host as string } : {}),
    });

    // Registered first, so it runs last (cleanups go newest first), before the process exits.
    onShutdown('summary', () => {
      const s = consumer.stats();
      const rejects = Object.entries(s.rejects)
        .filter(([, n]) => n > 0)
        .map(([r, n]) => `${r} ${n}`)
        .join(', ');
      io.stderr.write(
        `virgo consume: ${s.pairs} pairs, ${s.table.variables} variables, ${s.connects} connections` +
          `${rejects ? `, rejected: ${rejects}` : ''}\n`,
      );
    });
    const sinks: import('../../kernel-analytics/export.ts').ExportSink[] = [];
    if (opts.redis) {
      const { RedisExporter } = await import('../../kernel-analytics/redis-export.ts');
      sinks.push(await RedisExporter.create({ url: opts.redis as string }));
    }
    if (opts.conf) {
      const { ConfFileSink } = await import('../../kernel-analytics/conf-file.ts');
      sinks.push(new ConfFileSink(opts.conf as string, { host: confHost }));
    }
    if (opts['conf-dir']) {
      const { ConfDirSink } = await import('../../kernel-analytics/conf-file.ts');
      sinks.push(new ConfDirSink(opts['conf-dir'] as string));
    }
    if (sinks.length > 0) {
      const exp = exportTable(consumer.table, sinks);
      onShutdown('exports', () => exp.close());
    }
    // Cleanups run newest first: stop reading the feeder, then flush the exports.
    onShutdown('consumer', () => consumer.close());
    const print = opts.print ?? io.stdout.isTTY === true;
    if (print) {
      // The view says whose variable each line is: bare for the selected host, else host/key.
      consumer.table.on('change', (ch) => {
        io.stdout.write(opts.host ? `${ch.key}=${ch.value}\n` : `${ch.host}/${ch.key}=${ch.value}\n`);
      });
    }
    if (opts.metrics) {
      const m = parseHostPort(opts.metrics as string);
      const { serveStageMetrics } = await import('../dashboard/start.ts');
      const srv = await serveStageMetrics(m, {
        command: 'virgo consume',
        health: () => {
          const s = consumer.stats();
          return { ok: s.connected, ...s, sinks: sinks.map((k) => ({ name: k.name, ...k.stats() })) };
        },
        handles: { consumers: [consumer] },
        variables: { table: consumer.table },
      });
      io.stderr.write(`metrics on http://${m.host}:${srv.port}/metrics\n`);
    }
    await exitOnSignals();
    await shutdown();
    return 0;
  },
});
