// What the dashboard shows, held in memory and bounded: the latest record of each host/key with a
// short history of its numeric values (the sparkline), and the changes not yet pushed to the
// browsers. Time: `seen` and the history's times are processing time (this process's wall clock,
// when the record arrived); `ts` is the stamp the variable carries, shown as it is.
import { counter } from '../../runtime/metrics.ts';
import type { AnalyticsVariable } from '../../schemas/index.ts';

/** One analytics variable as the dashboard receives it: the record on the analytics topic. */
export type DashVariable = AnalyticsVariable;

/** A variable as sent to the browser: the record, when it arrived, its numeric history. */
export interface VariableRow extends DashVariable {
  /** processing time (ms) the latest value arrived */
  seen: number;
  /** values received (changed or not) since the dashboard started */
  updates: number;
  /** [seen ms, number] of the latest numeric values, oldest first, at most `historyPoints` */
  history: [number, number][];
}

/** The change pushed for one variable: the record and the history point it added, if numeric. */
export interface VariableDelta extends DashVariable {
  seen: number;
  updates: number;
  point?: [number, number];
}

export interface ModelOptions {
  /** host/key variables held; past it new ones are refused and counted (default 2000) */
  maxVariables?: number;
  /** numeric points kept per variable (default 120) */
  historyPoints?: number;
}

const refusedTotal = counter(
  'virgo_dashboard_variables_refused_total',
  'variables the dashboard did not show because it held its maximum already',
);

const TRUE = new Set(['true', 'yes', 'on']);
const FALSE = new Set(['false', 'no', 'off']);

/** The number a value plots as: numbers, and booleans as 1/0; undefined for other text. */
export function plotValue(value: string): number | undefined {
  const t = value.trim();
  if (t === '') return undefined;
  const n = Number(t);
  if (Number.isFinite(n)) return n;
  const l = t.toLowerCase();
  if (TRUE.has(l)) return 1;
  if (FALSE.has(l)) return 0;
  return undefined;
}

export class DashboardModel {
  readonly maxVariables: number;
  readonly historyPoints: number;
  private readonly rows = new Map<string, VariableRow>();
  private pending = new Map<string, VariableDelta | { host: string; key: string; removed: true }>();
  private refusedCount = 0;

  constructor(opts: ModelOptions = {}) {
    this.maxVariables = opts.maxVariables ?? 2000;
    this.historyPoints = opts.historyPoints ?? 120;
    if (!Number.isInteger(this.maxVariables) || this.maxVariables < 1)
      throw new RangeError(`maxVariables must be an integer >= 1, got ${this.maxVariables}`);
    if (!Number.isInteger(this.historyPoints) || this.historyPoints < 2)
      throw new RangeError(`historyPoints must be an integer >= 2, got ${this.historyPoints}`);
  }

  /** Takes one record; `now` is processing time. */
  update(v: DashVariable, now: number): 'added' | 'updated' | 'refused' {
    const id = `${v.host}/${v.key}`;
    let row = this.rows.get(id);
    const added = row === undefined;
    if (!row) {
      if (this.rows.size >= this.maxVariables) {
        this.refusedCount++;
        refusedTotal.inc();
        return 'refused';
      }
      row = { ...v, seen: now, updates: 0, history: [] };
      this.rows.set(id, row);
    }
    Object.assign(row, v, { seen: now, updates: row.updates + 1 });
    const num = plotValue(v.value);
    let point: [number, number] | undefined;
    if (num !== undefined) {
      point = [now, num];
      row.history.push(point);
      if (row.history.length > this.historyPoints)
        row.history.splice(0, row.history.length - this.historyPoints);
    }
    const { history: _h, ...rest } = row;
    this.pending.set(id, { ...rest, ...(point ? { point } : {}) });
    return added ? 'added' : 'updated';
  }

  /** A tombstone: the variable is gone. */
  remove(host: string, key: string): boolean {
    const id = `${host}/${key}`;
    if (!this.rows.delete(id)) return false;
    this.pending.set(id, { host, key, removed: true });
    return true;
  }

  /** Every variable with its history, copied (a new browser's snapshot). */
  snapshot(): VariableRow[] {
    return [...this.rows.values()].map((r) => ({ ...r, history: r.history.map((p) => [p[0], p[1]]) }));
  }

  /** The changes since the last call, newest per variable. */
  takeChanges(): (VariableDelta | { host: string; key: string; removed: true })[] {
    if (this.pending.size === 0) return [];
    const out = [...this.pending.values()];
    this.pending = new Map();
    return out;
  }

  has(host: string, key: string): boolean {
    return this.rows.has(`${host}/${key}`);
  }

  get size(): number {
    return this.rows.size;
  }

  /** variables not shown because the model was full */
  get refused(): number {
    return this.refusedCount;
  }
}
