// Export sinks follow a VariableTable. The table emits synchronously, so a sink only records the
// change (coalesced per host/key, bounded by the table's size) and writes on its own schedule:
// a slow or broken sink never blocks the table or the drivers reading it.
import { createLogger } from '../runtime/log.ts';
import type { VariableChange, VariableDelete, VariableTable } from './table.ts';

const log = createLogger('kernel-analytics.export');

export interface SinkStats {
  /** variables confirmed written */
  written: number;
  /** failed write attempts (each is retried) */
  errors: number;
  /** variables the sink cannot represent (never retried) */
  rejected: number;
  /** variables waiting to be written */
  pending: number;
  lastError: string | undefined;
}

export interface ExportSink {
  readonly name: string;
  /** records a change; never blocks, never throws */
  offer(change: VariableChange): void;
  /** records a removal */
  offerDelete?(d: VariableDelete): void;
  /** resolves once everything offered so far was written or given up on (counted) */
  flush(): Promise<void>;
  /** flushes, then releases connections */
  close(): Promise<void>;
  stats(): SinkStats;
}

export interface ExportOptions {
  /** offer every variable the table holds now, first (default true) */
  snapshot?: boolean;
  /** only this host's variables */
  host?: string;
}

export interface TableExport {
  /** stops following the table (sinks stay open) */
  detach(): void;
  flush(): Promise<void>;
  /** detaches and closes every sink */
  close(): Promise<void>;
}

/** Attaches sinks to a table: the snapshot (by default) and then every change. */
export function exportTable(
  table: VariableTable,
  sinks: ExportSink[],
  opts: ExportOptions = {},
): TableExport {
  const wanted = (host: string) => opts.host === undefined || host === opts.host;
  const onChange = (ch: VariableChange) => {
    if (!wanted(ch.host)) return;
    // Indexed, not for-of: with the try inside, V8 keeps an iterator object per change.
    for (let i = 0; i < sinks.length; i++) {
      const s = sinks[i]!;
      try {
        s.offer(ch);
      } catch (err) {
        // A sink bug must not break the table's other listeners (drivers, other sinks).
        log.error('export sink failed to take a change', { sink: s.name, err });
      }
    }
  };
  const onDelete = (d: VariableDelete) => {
    if (!wanted(d.host)) return;
    for (const s of sinks) {
      try {
        s.offerDelete?.(d);
      } catch (err) {
        log.error('export sink failed to take a removal', { sink: s.name, err });
      }
    }
  };
  if (opts.snapshot !== false) {
    for (const e of table.entries(opts.host)) onChange({ ...e, previous: undefined });
  }
  table.on('change', onChange);
  table.on('delete', onDelete);
  let attached = true;
  const detach = () => {
    if (!attached) return;
    attached = false;
    table.off('change', onChange);
    table.off('delete', onDelete);
  };
  return {
    detach,
    flush: async () => {
      await Promise.all(sinks.map((s) => s.flush()));
    },
    close: async () => {
      detach();
      await Promise.all(sinks.map((s) => s.close()));
    },
  };
}
