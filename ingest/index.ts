// ingest/: kernel log lines in, KernelEvents out (docs/design.md §2, §5.2).
// Owns: the line parser and kernel families, the template miner, publish-logs, the consumer stage
// with its dead-letter queue. Imports: schemas/, bus/, runtime/.

export {
  brokerTopic,
  CHECKPOINT_VERSION,
  type Checkpoint,
  CheckpointWriter,
  checkpointPath,
  loadCheckpoint,
} from './checkpoint.ts';
export {
  cutUtf8,
  type Decoded,
  type DecodeReason,
  decodeValue,
  lineRejection,
  MAX_LINE_BYTES,
  type Rejection,
  rejection,
} from './decode.ts';
export {
  type DedupeJson,
  type HostIdBlocks,
  ID_BLOCK,
  type IdBlock,
  LineDedupe,
  type LineId,
  lineId,
} from './dedupe.ts';
export { kernelEvent, toKernelEvent } from './event.ts';
export { EventTimeMerger, HostWatermarks, type MergerStats, type Timed } from './event-order.ts';
export { type Classified, classify } from './families.ts';
export {
  FINGERPRINT_BYTES,
  type FileIdentity,
  type FilePosition,
  type FollowEvent,
  fileLines,
  type LineChunk,
  LineSplitter,
  type ReadLinesOptions,
  streamLines,
} from './follow.ts';
export { type HpcHeader, hpcHeader, hpcLabel } from './hpc.ts';
export { maskMessage, Scanner, WILDCARD } from './mask.ts';
export { ingestMetrics, publishMetrics } from './metrics.ts';
export {
  type MineResult,
  type MinerOptions,
  type MinerState,
  type TemplateChange,
  TemplateMiner,
  templateIdOf,
} from './miner.ts';
export {
  type HostOrderExport,
  type HostOrderState,
  IngestOrder,
  type IngestOrderOptions,
  type IngestOrderStats,
  orderMetrics,
  type PendingLine,
} from './order-state.ts';
export { hostOf, parseLine } from './parse.ts';
export {
  DEFAULT_BATCH_BYTES,
  type PublishLogsOptions,
  type PublishProgress,
  type PublishResult,
  publishLogs,
} from './publish.ts';
export { SEVERITY, severityAt, severityOfName } from './severity.ts';
export { DEFAULT_LINGER_MS, sourceProblem } from './source.ts';
export {
  type IngestBatchContext,
  type IngestStage,
  type IngestStageOptions,
  type IngestStats,
  type PartitionChange,
  type PendingDeadLetter,
  startIngestStage,
} from './stage.ts';
export type { Family, LineFormat, ParsedLine, ParseOptions } from './types.ts';
export { FAMILIES } from './types.ts';
