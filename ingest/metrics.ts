// Prometheus metrics of the ingest stage and publish-logs (served by runtime/metrics serveMetrics).
import { counter, gauge } from '../runtime/metrics.ts';

export const ingestMetrics = {
  messages: counter('virgo_ingest_messages_total', 'Kafka messages read from the kernel-logs topic'),
  lines: counter('virgo_ingest_lines_total', 'log lines parsed'),
  events: counter('virgo_ingest_events_total', 'KernelEvents handed to the learners', ['family']),
  deadLetters: counter(
    'virgo_ingest_dead_letters_total',
    'messages sent to the dead-letter topic, by reason (empty, binary, invalid-utf8, parse-error)',
    ['reason'],
  ),
  truncated: counter('virgo_ingest_truncated_total', 'lines cut to the maximum line length and flagged'),
  templates: gauge('virgo_ingest_templates', 'templates the miner holds'),
  templatesEvicted: counter(
    'virgo_ingest_templates_evicted_total',
    'templates the miner evicted past its maxTemplates (least recently used first)',
  ),
};

export const publishMetrics = {
  lines: counter('virgo_publish_lines_total', 'log lines published by publish-logs'),
  bytes: counter('virgo_publish_bytes_total', 'bytes of log lines published by publish-logs'),
  undecodable: counter(
    'virgo_publish_undecodable_lines_total',
    'lines published that the consumer stage dead-letters (same rule, ingest/decode.ts), by reason',
    ['reason'],
  ),
  skipped: counter('virgo_publish_skipped_empty_lines_total', 'zero-length lines publish-logs did not send'),
};
