// The ring-buffer consumer of the feeder and its exports: the conf file the kernel module read,
// and Redis (one hash per host).
import { join } from 'node:path';
import { DEFAULT_DEVICE_IDS, DEVICE_NAMES } from '../../actuators/devices/ids.ts';
import type { VariableTable } from '../../kernel-analytics/index.ts';
import { feederStage } from './feeder.ts';
import { connectHost, type PipelineStage, reach } from './stage.ts';

export interface ConsumerHandle {
  /** every variable the consumers read, the device hosts' included */
  table: VariableTable;
}

function confPath(o: { confPath?: string; stateDir: string }): string {
  return o.confPath ?? join(o.stateDir, 'virgo_kernel_analytics.conf');
}

export const consumerStage: PipelineStage<ConsumerHandle> = {
  name: 'consumer',
  after: ['feeder'],
  options: {
    conf: {
      type: 'string',
      arg: 'FILE',
      description: 'kernel analytics conf file (default STATE_DIR/virgo_kernel_analytics.conf)',
    },
  },
  configure(flags, o) {
    if (flags.conf !== undefined) o.confPath = String(flags.conf);
  },
  async start(ctx) {
    const { tableFromFeeder } = await import('../../actuators/stage.ts');
    const { ConfFileSink, exportTable, RedisExporter } = await import('../../kernel-analytics/index.ts');
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
    try {
      // The conf file is what one machine's kernel module read: latest value per key, from the
      // ring-buffer consumer. Redis keeps one hash per host, and the k=v wire carries no host, so
      // it follows the feeder's host-aware table (`virgo consume --host H` exports one host's).
      const conf = exportTable(fed.table, [new ConfFileSink(confPath(ctx.o))]);
      closers.push(() => conf.close());
      if (ctx.o.redisUrl) {
        const redis = exportTable(feeder.table, [
          await RedisExporter.create({
            url: ctx.o.redisUrl,
            ...(ctx.o.redisPrefix ? { prefix: ctx.o.redisPrefix } : {}),
          }),
        ]);
        closers.push(() => redis.close());
      }
    } catch (err) {
      for (const c of closers.reverse()) await c().catch(() => {});
      throw err;
    }
    return {
      handle: { table: fed.table },
      health: () => ({ table: fed.table.size }),
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
        '--conf',
        confPath(o),
        ...(o.redisUrl ? ['--redis', o.redisUrl] : []),
      ],
    };
  },
};
