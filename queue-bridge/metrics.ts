// Prometheus metrics of the queue bridge (get-or-create, so several logs/services share them).
import { counter, gauge, histogram } from '../runtime/metrics.ts';

export const logAppends = counter(
  'virgo_kingcobra_log_appends_total',
  'records made durable in the segment log',
);
export const logBatches = histogram(
  'virgo_kingcobra_log_batch_records',
  'records per group commit (one write + fdatasync)',
  [],
  [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
);
export const logSyncSeconds = histogram(
  'virgo_kingcobra_log_fdatasync_seconds',
  'fdatasync latency of the segment log',
  [],
  [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
);
export const logErrors = counter('virgo_kingcobra_log_errors_total', 'segment-log failures, by operation', [
  'op',
]);
export const logRecovered = counter(
  'virgo_kingcobra_log_truncated_bytes_total',
  'bytes cut from damaged or torn segment tails at recovery',
);
export const requests = counter('virgo_kingcobra_requests_total', 'requests by front and outcome', [
  'front',
  'outcome',
]);

// Label lookups hash their labels on every call; the hot path keeps the children.
const requestCounters = new Map<string, { inc(n?: number): void }>();
export function countRequest(front: string, outcome: string): void {
  const k = `${front}\0${outcome}`;
  let c = requestCounters.get(k);
  if (!c) {
    c = requests.labels({ front, outcome });
    requestCounters.set(k, c);
  }
  c.inc();
}
export const inflight = gauge('virgo_kingcobra_inflight', 'requests accepted and not yet replied');
export const replayed = counter('virgo_kingcobra_replayed_total', 'records replayed into Kafka', ['topic']);
