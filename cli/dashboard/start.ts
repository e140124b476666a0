// The web dashboard of a `virgo` process (this folder): built from what that process has. `virgo up`
// has every stage; a --split child or `virgo feeder --metrics` only its own, and its page shows
// only that (each part of DashboardSources is optional). Variables come from the analytics topic
// on the process's bus when it has one, else from a variable table (no `why` then).
import type { Bus } from '../../bus/index.ts';
import type { VariableTable } from '../../kernel-analytics/index.ts';
import { type HttpRoutes, registry } from '../../runtime/metrics.ts';
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
