// /metrics (Prometheus), /health and the web dashboard (/) of the whole process: opens last, so
// /health reports every stage and the dashboard sees every stage's handle.
import { DEFAULT_DEVICE_IDS, DEVICE_NAMES } from '../../actuators/devices/ids.ts';
import { parseHostPort } from '../../runtime/config.ts';
import type { MetricsServer } from '../../runtime/metrics.ts';
import { actuatorsStage } from './actuators.ts';
import { consumerStage } from './consumer.ts';
import { feederStage } from './feeder.ts';
import { learnStage } from './learn.ts';
import { queueStage } from './queue.ts';
import { sourceStage } from './source.ts';
import type { InProcess, PipelineStage } from './stage.ts';

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
      description: 'the web dashboard (/), /metrics and /health',
    },
  },
  portFix:
    'virgo up --metrics HOST:PORT moves /metrics and /health (none: off), or --any-ports takes free ports',
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
    const routes = await pipelineDashboard(ctx);
    let srv: MetricsServer;
    try {
      srv = await serveMetrics({ host: m.host, port: m.port, health: () => ctx.health(), routes });
    } catch (err) {
      await routes.close();
      throw err;
    }
    const base = `http://${m.host.includes(':') ? `[${m.host}]` : m.host}:${srv.port}`;
    return {
      handle: srv,
      endpoints: { dashboard: `${base}/`, metrics: `${base}/metrics` },
      close: () => srv.close(),
    };
  },
  // under --split each process is its own: none of them serves the pipeline's /health
};

/** The dashboard of `virgo up`: every stage of this process feeds it. */
async function pipelineDashboard(ctx: InProcess) {
  const { startDashboard } = await import('../dashboard/start.ts');
  const { stageFigures } = await import('../figures.ts');
  const learn = ctx.peer(learnStage);
  const handles = {
    learn,
    feeder: ctx.peer(feederStage),
    consumers: ctx.peer(consumerStage)?.consumers,
    queue: ctx.peer(queueStage),
    actuators: ctx.peer(actuatorsStage),
  };
  const source = ctx.peer(sourceStage);
  const actuators = handles.actuators;
  return startDashboard({
    bus: ctx.bus,
    ...(ctx.o.secrets?.dashboard ? { secret: ctx.o.secrets.dashboard } : {}),
    sources: {
      meta: () => ({
        command: 'virgo up',
        mode: ctx.distributed ? 'distributed' : 'embedded',
        ...(source ? { source: source.kind } : {}),
      }),
      deviceHosts: actuators
        ? [actuators.deviceIds.drone, actuators.deviceIds.webcam]
        : (ctx.o.devices ?? DEVICE_NAMES).map((d) => DEFAULT_DEVICE_IDS[d]),
      panels: () => stageFigures(handles),
      ...(learn
        ? {
            states: () => learn.host.variableStates(),
            pins: {
              pin: (host: string, key: string, value: string) => learn.host.pin(host, key, value),
              unpin: (host: string, key: string) => learn.host.unpin(host, key),
            },
          }
        : {}),
    },
  });
}
