// queue-bridge/: the VIRGO queue (:60000 text, ZeroMQ ROUTER), KingCobra and its crash-safe
// REQUEST_REPLY segment log, the original's queue-file format, and replay into Kafka.
// Imports: schemas/, bus/, runtime/. zeromq is loaded only when a ZeroMQ endpoint is asked for.
export { type Clock, createClock, formatTs, type Timestamp } from './clock.ts';
export { crc32c } from './crc32c.ts';
export { LogError, type LogErrorCode, NotQueuedError, QueueBusyError, ReplayError } from './errors.ts';
export { encodeFrame, FRAME_HEADER_BYTES, FrameReader, type FrameResult } from './frame.ts';
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
export { QUEUE_PORT, QUEUE_ZMQ_ENDPOINT, QUEUE_ZMQ_PORT } from './ports.ts';
export {
  checkpointName,
  type ReplayClock,
  type ReplayOptions,
  type ReplayProgress,
  type ReplayResult,
  realClock,
  replay,
} from './replay.ts';
export { listSegments, segmentName } from './segment-files.ts';
export {
  defaultLogIO,
  type LogIO,
  type LogRecord,
  type LogStats,
  openSegmentLog,
  type ReadOptions,
  type RecoveryReport,
  SegmentLog,
  type SegmentLogOptions,
} from './segment-log.ts';
export {
  type QueueService,
  type QueueServiceOptions,
  type QueueStats,
  type SubmitResult,
  startQueueService,
} from './service.ts';
