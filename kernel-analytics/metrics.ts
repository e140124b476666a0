// This stage's Prometheus metrics. Hot paths count in plain fields and add to these per chunk or
// per tick: a labelled prom-client increment per line would cost more than parsing the line.
import { counter, gauge, histogram } from '../runtime/metrics.ts';

export const feederUpdates = counter(
  'virgo_feeder_updates_total',
  'variables the feeder received, by outcome (changed, unchanged, rejected, filtered)',
  ['feeder', 'outcome'],
);
export const feederRejects = counter(
  'virgo_feeder_rejects_total',
  'variables the feeder refused, by reason',
  ['feeder', 'reason'],
);
export const feederLinesSent = counter(
  'virgo_feeder_lines_sent_total',
  'key=value lines written to clients',
  ['feeder'],
);
export const feederDrops = counter('virgo_feeder_client_drops_total', 'feeder clients dropped, by reason', [
  'feeder',
  'reason',
]);
export const feederVariables = gauge('virgo_feeder_variables', 'variables the feeder holds', ['feeder']);
export const feederQueued = gauge(
  'virgo_feeder_queued_bytes',
  'bytes written to feeder clients and not yet taken by the kernel',
  ['feeder'],
);

export const consumerPairs = counter('virgo_consumer_pairs_total', 'key=value pairs the consumer accepted', [
  'consumer',
]);
export const consumerRejects = counter(
  'virgo_consumer_rejects_total',
  'lines the consumer refused, by reason',
  ['consumer', 'reason'],
);
export const consumerConnects = counter('virgo_consumer_connects_total', 'connections made to a feeder', [
  'consumer',
]);
export const consumerConnected = gauge('virgo_consumer_connected', '1 while connected to the feeder', [
  'consumer',
]);

export const exportWrites = counter('virgo_export_writes_total', 'variables written by an export sink', [
  'sink',
]);
export const exportErrors = counter('virgo_export_errors_total', 'failed export writes (retried), by sink', [
  'sink',
]);
export const exportRejects = counter(
  'virgo_export_rejects_total',
  'variables a sink cannot represent (e.g. a comma in a conf-file value)',
  ['sink'],
);
export const exportLatency = histogram(
  'virgo_export_latency_seconds',
  'per write, from the oldest change it carries to the sink confirming it',
  ['sink'],
  [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5],
);
