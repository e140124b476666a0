// The feeder (:64000): follows virgo.kernel-analytics and serves key=value lines (nc reads it).
import type { Feeder } from '../../kernel-analytics/index.ts';
import { FEEDER_PORT } from '../../kernel-analytics/ports.ts';
import { brokersArg, type PipelineStage } from './stage.ts';

export const feederStage: PipelineStage<Feeder> = {
  name: 'feeder',
  listens: true,
  configure(flags, o) {
    if (flags['any-ports'] === true) o.feederPort = 0;
  },
  async start(ctx) {
    const { startFeeder } = await import('../../kernel-analytics/index.ts');
    const feeder = await startFeeder({
      bus: ctx.bus,
      listen: { host: ctx.listenHost, port: ctx.o.feederPort ?? FEEDER_PORT },
    });
    return {
      handle: feeder,
      endpoints: { feeder: `${ctx.listenHost}:${feeder.port}` },
      health: () => {
        const fs = feeder.stats();
        return { feeder: { clients: fs.clients, variables: fs.variables, linesSent: fs.linesSent } };
      },
      close: () => feeder.close(),
    };
  },
  child(o) {
    return {
      args: [
        'feeder',
        '--brokers',
        brokersArg(o),
        '--listen',
        `${o.listenHost ?? '127.0.0.1'}:${o.feederPort ?? FEEDER_PORT}`,
      ],
      // "listening tcp=HOST:PORT", on stdout once it serves
      ready(line) {
        const m = /^listening tcp=(\S+)/.exec(line);
        return m ? { feeder: m[1]! } : undefined;
      },
    };
  },
};
