// queue-bridge/: the VIRGO queue (:60000 text, ZeroMQ ROUTER), KingCobra and its crash-safe
// REQUEST_REPLY segment log, the original's queue-file format, and replay into Kafka.
// Imports: schemas/, bus/, runtime/. zeromq is loaded only when a ZeroMQ endpoint is asked for.
export { type Clock, createClock, formatTs, type Timestamp } from './clock.ts';
export { crc32c } from './crc32c.ts';
export { LogError, type LogErrorCode, NotQueuedError, QueueBusyError, ReplayError } from './errors.ts';
export {
  encodeFrame,
  encodeFrameV2,
  FORMAT_1,
  FRAME_HEADER_BYTES,
  FRAME_V2_HEADER_BYTES,
  FrameReader,
  type FrameResult,
  format2,
} from './frame.ts';
export {
  defaultHandler,
  type Handler,
  KingCobra,
  type KingCobraOptions,
  type KingCobraStats,
  ORIGINAL_REPLY_TEXT,
  type Outcome,
} from './kingcobra.ts';
export {
  addrToHexIp,
  type ExportOptions,
  exportLegacy,
  hexIpToAddr,
  importLegacy,
  LEGACY_RECORD_BYTES,
  type LegacyParse,
  legacyRecord,
  parseLegacy,
} from './legacy.ts';
export { type Loss, MANIFEST_NAME, type Manifest, readManifest } from './manifest.ts';
export { QUEUE_PORT, QUEUE_ZMQ_ENDPOINT, QUEUE_ZMQ_PORT } from './ports.ts';
export type { LiveSegment } from './recovery.ts';
export {
  checkpointName,
  type ReplayClock,
  type ReplayOptions,
  type ReplayProgress,
  type ReplayResult,
  realClock,
  replay,
} from './replay.ts';
export { listQuarantined, listSegments, segmentName } from './segment-files.ts';
export { encodeSegmentHeader, parseSegmentHeader, SEGMENT_HEADER_BYTES } from './segment-header.ts';
export {
  defaultLogIO,
  type LogIO,
  type LogRecord,
  type LogStats,
  openSegmentLog,
  type ReadDamage,
  type ReadOptions,
  type RecoveryReport,
  SegmentLog,
  type SegmentLogOptions,
} from './segment-log.ts';
export { type Damage, type ScannedFrame, type SegmentScan, scanSegment } from './segment-scan.ts';
export {
  type QueueService,
  type QueueServiceOptions,
  type QueueStats,
  type SubmitResult,
  startQueueService,
} from './service.ts';
