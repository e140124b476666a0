// /metrics (Prometheus) and /health of the whole process: opens last, so /health reports every stage.
import { parseHostPort } from '../../runtime/config.ts';
import type { MetricsServer } from '../../runtime/metrics.ts';
import type { PipelineStage } from './stage.ts';

/** The OpenTelemetry/Prometheus exporter's customary port. */
export const METRICS_PORT = 9464;

export const metricsStage: PipelineStage<MetricsServer> = {
  name: 'metrics',
  listens: true,
  after: ['*'],
  options: {
    metrics: {
      type: 'string',
      default: `127.0.0.1:${METRICS_PORT}`,
      arg: 'HOST:PORT|none',
      description: '/metrics and /health',
    },
  },
  enabled: (o) => !!o.metrics,
  configure(flags, o) {
    o.metrics = flags.metrics === 'none' ? false : parseHostPort(String(flags.metrics));
    if (o.metrics && flags['any-ports'] === true) o.metrics.port = 0;
  },
  async start(ctx) {
    const m = ctx.o.metrics;
    if (!m) throw new Error('metrics stage started without an address'); // enabled() said it has one
    const { enableProcessMetrics, serveMetrics } = await import('../../runtime/metrics.ts');
    enableProcessMetrics();
    const srv = await serveMetrics({ host: m.host, port: m.port, health: () => ctx.health() });
    return {
      handle: srv,
      endpoints: { metrics: `http://${m.host}:${srv.port}/metrics` },
      close: () => srv.close(),
    };
  },
  // under --split each process is its own: none of them serves the pipeline's /health
};
