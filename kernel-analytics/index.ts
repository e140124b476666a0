// kernel-analytics/: the :64000 feeder, the ring-buffer consumer and its variable table, and the
// exports (Redis, /etc/virgo_kernel_analytics.conf). Imports: schemas/, bus/, runtime/.
// Importing this module is cheap: ioredis loads only when RedisExporter.create() runs.

export {
  type ConfContents,
  type ConfDirOptions,
  ConfDirSink,
  ConfFile,
  ConfFileError,
  type ConfFileOptions,
  ConfFileSink,
  type ConfProblem,
  type ConfSinkOptions,
  ConfValueError,
  confPairError,
  DEFAULT_CONF_PATH,
  formatConf,
  parseConf,
} from './conf-file.ts';
export {
  type BackoffOptions,
  type ConsumerEvents,
  type ConsumerStats,
  type DisconnectInfo,
  RingConsumer,
  type RingConsumerOptions,
} from './consumer.ts';
export {
  type ExportOptions,
  type ExportSink,
  exportTable,
  type SinkStats,
  type TableExport,
} from './export.ts';
export {
  type Feeder,
  type FeederOptions,
  type FeederStats,
  type FeederUpdate,
  type FeederUpdateResult,
  startFeeder,
} from './feeder.ts';
export { KvLineParser, type KvLineParserOptions } from './kv-parser.ts';
export { FEEDER_PORT } from './ports.ts';
export { RedisExporter, type RedisExporterOptions, type WrittenBatch } from './redis-export.ts';
export { Ring, type RingEntry } from './ring.ts';
export {
  type ChangesOptions,
  type SetOptions,
  type SetResult,
  type TableEvents,
  type TableStats,
  type VariableChange,
  type VariableDelete,
  type VariableEntry,
  VariableTable,
  type VariableTableOptions,
} from './table.ts';
// What a key, host or value may be is the variable contract: ../schemas/variable.ts.
export {
  KV_REJECT_REASONS,
  type KvLine,
  type KvRejectReason,
  MAX_ANALYTICS_CONF,
  MAX_LINE_BYTES,
  parseKvLine,
  STREAMING_START,
} from './validate.ts';
