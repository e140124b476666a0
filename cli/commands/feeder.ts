import { createInterface } from 'node:readline';
import { FEEDER_PORT } from '../../kernel-analytics/ports.ts';
import { CONNECTION_OPTIONS, parseHostPort, UsageError } from '../../runtime/config.ts';
import { createLogger } from '../../runtime/log.ts';
import { exitOnSignals, onShutdown, shutdown } from '../../runtime/shutdown.ts';
import { hostProblem } from '../../schemas/variable.ts';
import { busFromOptions, defineCommand } from '../command.ts';

export default defineCommand({
  name: 'feeder',
  summary: 'serve analytics variables on TCP :64000 as key=value lines (nc reads it)',
  usage:
    'virgo feeder [--listen 127.0.0.1:64000] [--brokers HOST:PORT] [--stdin] [--host-filter HOST] [--metrics HOST:PORT]',
  details: `Follows the virgo.kernel-analytics topic from its beginning (it is compacted: the latest
value per host/key) and serves every client the snapshot, then each change, one line each.
A client that sends nothing gets every host, host-qualified: host/key=value (the original kernel
module, which splits at the first '=', reads host/key as the key). Client lines (optional):
"HOST <name>" narrows that connection to one host's variables as bare key=value (the snapshot is
sent again; for a host with no variables yet a '#' notice line says so and the selection stays);
"HOST *" widens it back to every host, host-qualified; KERNEL_ANALYTICS_STREAMING_START is
accepted and ignored. With --host-filter the feeder serves one host, bare key=value to everyone.
A client that half-closes (nc -N, nc -q1 </dev/null) gets its snapshot, then the connection ends.
With --stdin it also takes lines from standard input: host/key=value, or key=value of --host.
Prints one "listening tcp=HOST:PORT" line on stdout when ready.
A client that does not read falls behind by --max-client-buffer bytes and is dropped; the others
never wait for it.
examples:
  virgo feeder --brokers 127.0.0.1:9092 &  nc 127.0.0.1 64000
  printf 'HOST edge-1\\n' | nc -N 127.0.0.1 64000     # edge-1's variables, then exit
  printf 'match=True\\nMaxNetworkBandwidth=255\\n' | virgo feeder --stdin --listen 127.0.0.1:64000`,
  options: {
    brokers: CONNECTION_OPTIONS.brokers,
    listen: {
      type: 'string',
      env: 'VIRGO_FEEDER_LISTEN',
      default: `127.0.0.1:${FEEDER_PORT}`,
      arg: 'HOST:PORT',
      description: 'address to serve on',
    },
    topic: {
      type: 'string',
      default: 'virgo.kernel-analytics',
      arg: 'TOPIC',
      description: 'analytics topic',
    },
    stdin: { type: 'boolean', default: false, description: 'also read key=value lines from standard input' },
    host: {
      type: 'string',
      arg: 'NAME',
      description: "host of bare key=value --stdin lines (default this machine's hostname)",
    },
    'host-filter': {
      type: 'string',
      arg: 'HOST',
      description: "serve only this host's variables, as bare key=value",
    },
    'max-clients': { type: 'number', default: 1024, description: 'connections at once' },
    'idle-timeout': {
      type: 'number',
      default: 0,
      arg: 'MS',
      description: 'drop a client after MS without traffic either way (0: never)',
    },
    'max-client-buffer': {
      type: 'number',
      default: 1048576,
      arg: 'BYTES',
      description: 'output queued for one client before it is dropped as a slow reader',
    },
    'max-variables': { type: 'number', default: 50000, description: 'distinct host/key variables kept' },
    metrics: {
      type: 'string',
      env: 'VIRGO_METRICS',
      arg: 'HOST:PORT',
      description: 'serve the dashboard (/), /metrics and /health',
    },
  },
  portFix: (service) =>
    service === 'metrics' ? '--metrics HOST:PORT chooses another' : '--listen HOST:PORT chooses another',
  async run({ opts, io }) {
    const log = createLogger('feeder');
    const { startFeeder } = await import('../../kernel-analytics/feeder.ts');
    const { parseKvLine } = await import('../../kernel-analytics/validate.ts');
    const listen = parseHostPort(opts.listen as string);
    for (const n of ['host', 'host-filter'] as const) {
      const bad = opts[n] === undefined ? undefined : hostProblem(String(opts[n]));
      if (bad) throw new UsageError(`--${n}: ${bad.message}`);
    }
    for (const n of ['max-clients', 'max-client-buffer', 'max-variables'] as const) {
      const v = opts[n] as number;
      if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${n} must be a positive integer, got ${v}`);
    }
    const bus = opts.brokers ? busFromOptions(opts, 'virgo-feeder') : undefined;
    if (!bus && !opts.stdin) {
      log.warn('no source: give --brokers (or VIRGO_BROKERS) or --stdin; serving an empty table');
    }
    const feeder = await startFeeder({
      ...(bus ? { bus, topic: opts.topic as string } : {}),
      listen,
      ...(opts['host-filter'] ? { hostFilter: opts['host-filter'] as string } : {}),
      ...(opts.host ? { defaultHost: opts.host as string } : {}),
      maxClients: opts['max-clients'] as number,
      idleTimeoutMs: opts['idle-timeout'] as number,
      maxClientBuffer: opts['max-client-buffer'] as number,
      maxVariables: opts['max-variables'] as number,
    });
    onShutdown('feeder', async () => {
      await feeder.close();
      await bus?.close();
    });
    if (opts.metrics) {
      const m = parseHostPort(opts.metrics as string);
      const { serveStageMetrics } = await import('../dashboard/start.ts');
      const srv = await serveStageMetrics(m, {
        command: 'virgo feeder',
        health: () => ({ ok: true, ...feeder.stats() }),
        handles: { feeder },
        // the variables with their evidence from the bus, else what the feeder was fed
        variables: bus ? { bus } : { table: feeder.table },
      });
      io.stderr.write(`metrics on http://${m.host}:${srv.port}/metrics\n`);
    }
    if (io.stderr.isTTY)
      io.stderr.write(`feeder on ${feeder.host}:${feeder.port} (nc ${feeder.host} ${feeder.port})\n`);
    // what a supervisor (virgo up --split) waits for, whatever the log level
    io.stdout.write(`listening tcp=${feeder.host}:${feeder.port}\n`);
    if (opts.stdin) {
      const rl = createInterface({ input: io.stdin, crlfDelay: Number.POSITIVE_INFINITY });
      let n = 0;
      rl.on('line', (line) => {
        n++;
        if (line === '') return;
        // Read like the every-host view: host/key=value, or a bare key=value of --host.
        const r = parseKvLine(line, true);
        if (!r.ok) {
          io.stderr.write(`virgo feeder: stdin line ${n}: ${r.message} (skipped)\n`);
          return;
        }
        feeder.update({ key: r.key, value: r.value, ...(r.host ? { host: r.host } : {}) });
      });
      rl.on('close', () => log.info('stdin ended; still serving', { lines: n }));
    }
    await exitOnSignals();
    await shutdown();
    return 0;
  },
});
