// The web dashboard of a `virgo` process (this folder): built from what that process has. `virgo up`
// has every stage; a --split child or `virgo feeder --metrics` only its own, and its page shows
// only that (each part of DashboardSources is optional). Variables come from the analytics topic
// on the process's bus when it has one, else from a variable table (no `why` then).
import type { Bus } from '../../bus/index.ts';
import type { VariableTable } from '../../kernel-analytics/index.ts';
import {
  enableProcessMetrics,
  type HttpRoutes,
  type MetricsServer,
  registry,
  serveMetrics,
} from '../../runtime/metrics.ts';
import { onShutdown } from '../../runtime/shutdown.ts';
import { type StageHandles, stageFigures } from '../figures.ts';
import { DashboardModel } from './model.ts';
import { Dashboard, type DashboardSources } from './server.ts';

export interface DashboardInputs {
  /** follow this bus's analytics topic (the variables with their evidence) */
  bus?: Bus;
  analyticsTopic?: string;
  /** or, without a bus, this table's changes (host/key=value only) */
  table?: VariableTable;
  sources?: DashboardSources;
  /** writes (pins) need it */
  secret?: string;
}

/** The dashboard's routes for serveMetrics(); close() ends its streams and its bus subscription. */
export async function startDashboard(inputs: DashboardInputs): Promise<HttpRoutes> {
  const model = new DashboardModel();
  const dash = new Dashboard({
    model,
    registry,
    ...(inputs.sources ? { sources: inputs.sources } : {}),
    ...(inputs.secret ? { secret: inputs.secret } : {}),
  });
  let stop: () => Promise<void> = async () => {};
  if (inputs.bus) {
    const { followAnalytics } = await import('./follow.ts');
    const sub = await followAnalytics(inputs.bus, model, {
      ...(inputs.analyticsTopic ? { topic: inputs.analyticsTopic } : {}),
    });
    stop = () => sub.close();
  } else if (inputs.table) {
    const table = inputs.table;
    const now = Date.now();
    for (const e of table.entries()) model.update(fromTable(e.host, e.key, e.value, e.ts), now);
    const onChange = (ch: { host: string; key: string; value: string; ts: number }) =>
      model.update(fromTable(ch.host, ch.key, ch.value, ch.ts), Date.now());
    const onDelete = (d: { host: string; key: string }) => model.remove(d.host, d.key);
    table.on('change', onChange);
    table.on('delete', onDelete);
    stop = async () => {
      table.off('change', onChange);
      table.off('delete', onDelete);
    };
  }
  dash.start();
  return {
    handle: (req, res) => dash.handle(req, res),
    close: async () => {
      await dash.close();
      await stop();
    },
  };
}

function fromTable(host: string, key: string, value: string, ts: number) {
  return {
    host,
    key,
    value,
    why: '(read from the feeder: key=value carries no evidence)',
    learner: '',
    model: '',
    confidence: 1,
    ts,
    type: 'string',
    unit: null,
  };
}

export interface StageMetricsOptions {
  /** what the page's header names (`virgo feeder`, …) */
  command: string;
  /** more header fields */
  meta?: Record<string, string>;
  health: () => { ok: boolean; [k: string]: unknown };
  /** the stage's handles, whose figures make the dashboard's panels */
  handles: StageHandles;
  /** where the dashboard reads the variables (a bus, else a table; neither: none) */
  variables?: Pick<DashboardInputs, 'bus' | 'table'>;
}

/**
 * /metrics, /health and the dashboard of a command that runs one stage on its own (`virgo feeder`,
 * `consume`, `queue serve`, `drivers up` with `--metrics`): process metrics on, the page built from
 * what this process has, the server stopped at shutdown.
 */
export async function serveStageMetrics(
  at: { host: string; port: number },
  o: StageMetricsOptions,
): Promise<MetricsServer> {
  enableProcessMetrics();
  const srv = await serveMetrics({
    host: at.host,
    port: at.port,
    health: o.health,
    routes: await startDashboard({
      ...o.variables,
      sources: { meta: () => ({ command: o.command, ...o.meta }), panels: () => stageFigures(o.handles) },
    }),
  });
  onShutdown('metrics', () => srv.close());
  return srv;
}
