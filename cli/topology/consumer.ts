// The ring-buffer consumer of the feeder and its exports: the conf files the kernel module read
// (one per host) and Redis (one hash per host). No export merges hosts.
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_DEVICE_IDS, DEVICE_NAMES } from '../../actuators/devices/ids.ts';
import type { ExportSink, RingConsumer, VariableTable } from '../../kernel-analytics/index.ts';
import { UsageError } from '../../runtime/config.ts';
import { hostProblem } from '../../schemas/variable.ts';
import { feederStage } from './feeder.ts';
import { connectHost, type PipelineStage, reach } from './stage.ts';

export interface ConsumerHandle {
  /** every variable the consumers read, the device hosts' included */
  table: VariableTable;
  /** the ring-buffer consumers: the one of every host, then one per device host */
  consumers: readonly RingConsumer[];
}

function confDir(o: { confDir?: string; stateDir: string }): string {
  return o.confDir ?? join(o.stateDir, 'conf');
}

export const consumerStage: PipelineStage<ConsumerHandle> = {
  name: 'consumer',
  after: ['feeder'],
  options: {
    'conf-dir': {
      type: 'string',
      arg: 'DIR',
      description: 'one kernel analytics conf file per host, DIR/<host>.conf (default STATE_DIR/conf)',
    },
    conf: {
      type: 'string',
      env: 'VIRGO_CONF_FILE',
      arg: 'FILE',
      description: "also keep one host's variables in FILE (e.g. /etc/virgo_kernel_analytics.conf)",
    },
    'conf-host': {
      type: 'string',
      arg: 'NAME',
      description: "the host whose variables --conf holds (default this machine's hostname)",
    },
  },
  configure(flags, o) {
    if (flags['conf-dir'] !== undefined) o.confDir = resolve(String(flags['conf-dir']));
    const host = String(flags['conf-host'] ?? hostname());
    const bad = hostProblem(host);
    if (bad) throw new UsageError(`--conf-host: ${bad.message}`);
    if (flags.conf !== undefined) o.confFile = { path: String(flags.conf), host };
  },
  async start(ctx) {
    const { tableFromFeeder } = await import('../../actuators/stage.ts');
    const { ConfDirSink, ConfFileSink, exportTable, RedisExporter } = await import(
      '../../kernel-analytics/index.ts'
    );
    const feeder = ctx.peer(feederStage);
    if (!feeder) throw new Error('the consumer stage reads a feeder started in the same process');
    // The ring-buffer consumer reads our own feeder over TCP, exactly as an external importer
    // would; it connects once every port of the process is bound (connect()).
    const fed = tableFromFeeder({
      host: connectHost(ctx.listenHost),
      port: feeder.port,
      deviceHosts: (ctx.o.devices ?? DEVICE_NAMES).map((d) => DEFAULT_DEVICE_IDS[d]),
      name: 'up',
      autoStart: false,
    });
    const closers: (() => Promise<void>)[] = [() => fed.close()];
    let redisSink: import('../../kernel-analytics/index.ts').RedisExporter | undefined;
    try {
      // A conf file is what one machine's kernel module read, so one file per host (never two
      // hosts merged), from the ring-buffer consumer's table (its every-host view is
      // host-qualified). Redis, one hash per host, follows the feeder's table.
      const sinks: ExportSink[] = [new ConfDirSink(confDir(ctx.o))];
      const one = ctx.o.confFile;
      if (one) sinks.push(new ConfFileSink(one.path, { host: one.host }));
      const conf = exportTable(fed.table, sinks);
      closers.push(() => conf.close());
      if (ctx.o.redisUrl) {
        redisSink = await RedisExporter.create({
          url: ctx.o.redisUrl,
          ...(ctx.o.redisPrefix ? { prefix: ctx.o.redisPrefix } : {}),
        });
        const redis = exportTable(feeder.table, [redisSink]);
        closers.push(() => redis.close());
      }
    } catch (err) {
      for (const c of closers.reverse()) await c().catch(() => {});
      throw err;
    }
    return {
      handle: { table: fed.table, consumers: fed.consumers },
      // Redis answered at start-up (cli/topology/index.ts); an outage since is not ok: the
      // export waits (and writes everything again once Redis is back)
      health: () => {
        if (!redisSink) return { table: fed.table.size };
        const s = redisSink.stats();
        return {
          ok: redisSink.connected,
          table: fed.table.size,
          redis: { connected: redisSink.connected, pending: s.pending, lastError: s.lastError ?? null },
        };
      },
      connect: () => fed.start(),
      // newest first: the exports, then the consumers
      close: async () => {
        for (const c of closers.reverse()) await c();
      },
    };
  },
  child(o, endpoints) {
    return {
      args: [
        'consume',
        '--feeder',
        reach(endpoints.feeder!),
        '--conf-dir',
        confDir(o),
        ...(o.confFile ? ['--conf', o.confFile.path, '--conf-host', o.confFile.host] : []),
        ...(o.redisUrl ? ['--redis', o.redisUrl] : []),
      ],
    };
  },
};
