// Replay of a KingCobra segment log into Kafka (`virgo.kingcobra-requests`, docs/design.md §4).
//
// Order: records are published in log order, one batch at a time, each awaited before the next
// (the topic has one partition, so Kafka keeps that order).
// Resumable: after each acknowledged batch a checkpoint (next offset + that record's id) is
// written atomically into the queue directory; the next run starts there.
// Idempotent: every message's key is the record's id, which is stored in the log and so never
// changes between runs. A crash between a batch and its checkpoint re-sends at most that batch
// with the same keys, and an explicit --from-offset re-sends with the same keys, so a consumer
// that dedupes by key sees each record once.
// Virtual time (--tdf F): the first replayed record's time is the seed; a record recorded t
// seconds after it is published t/F seconds after the replay started.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { type Bus, CONTENT_TYPES, HEADERS, type OutgoingMessage, TOPICS } from '../bus/index.ts';
import { createLogger } from '../runtime/log.ts';
import { codecFor, type KingCobraKind, type KingCobraMessage } from '../schemas/index.ts';
import { ReplayError } from './errors.ts';
import { replayed } from './metrics.ts';
import { readJsonFile, writeFileDurably } from './segment-files.ts';
import { SegmentLog } from './segment-log.ts';

const log = createLogger('kingcobra.replay');

export interface ReplayClock {
  /** milliseconds, monotonic */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: ReplayClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done);
    }),
};

export interface ReplayProgress {
  published: number;
  skipped: number;
  /** the next offset to replay */
  nextOffset: number;
  /** the log's end when the replay started */
  endOffset: number;
  /** records per second so far */
  rate: number;
  /** with a time-dilation factor: the replayed (recorded) time reached */
  virtualTime?: Date;
}

export interface ReplayOptions {
  /** an open SegmentLog, or a queue directory (opened read-only: a service may be writing it) */
  log: SegmentLog | string;
  bus: Bus;
  topic?: string;
  /** start here instead of at the checkpoint */
  fromOffset?: number;
  /** start at the first record at or after this time instead of at the checkpoint */
  since?: Date;
  /** time-dilation factor: replay the recorded inter-arrival times divided by this */
  tdf?: number;
  /** only these kinds (default both: requests and replies) */
  kinds?: KingCobraKind[];
  /** records per publish and per checkpoint (default 5000) */
  batchSize?: number;
  /** names the checkpoint; replays to different clusters keep separate ones (default: topic) */
  target?: string;
  /** false: neither read nor write a checkpoint */
  checkpoint?: boolean;
  onProgress?: (p: ReplayProgress) => void;
  signal?: AbortSignal;
  clock?: ReplayClock;
}

export interface ReplayResult {
  published: number;
  /** records before the start point (already replayed, or before --from-offset/--since) or of a kind left out */
  skipped: number;
  startOffset: number;
  nextOffset: number;
  seconds: number;
}

interface Checkpoint {
  topic: string;
  target: string;
  nextOffset: number;
  /** id of the record at nextOffset - 1: tells a replaced or rewritten log from ours */
  lastId: string | null;
  updated: string;
}

export function checkpointName(topic: string, target: string): string {
  const h = createHash('sha256').update(`${topic}\0${target}`).digest('hex').slice(0, 12);
  return `replay-${topic.replace(/[^A-Za-z0-9._-]/g, '_')}-${h}.json`;
}

async function recordAt(logv: SegmentLog, offset: number): Promise<KingCobraMessage | undefined> {
  for await (const r of logv.read({ fromOffset: offset })) return r.offset === offset ? r.message : undefined;
  return undefined;
}

export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const topic = opts.topic ?? TOPICS.kingcobraRequests;
  const target = opts.target ?? topic;
  const clock = opts.clock ?? realClock;
  const batchSize = Math.max(1, opts.batchSize ?? 5000);
  const tdf = opts.tdf;
  if (tdf !== undefined && !(tdf > 0 && Number.isFinite(tdf))) {
    throw new ReplayError(`--tdf must be a positive number (a time-dilation factor), got ${tdf}`);
  }
  const kinds = new Set<KingCobraKind>(opts.kinds ?? ['REQUEST', 'REPLY']);
  const ownLog = typeof opts.log === 'string';
  const segLog = typeof opts.log === 'string' ? new SegmentLog(opts.log, { readOnly: true }) : opts.log;
  if (!segLog.isOpen) await segLog.open();
  const useCheckpoint = opts.checkpoint !== false;
  const cpName = checkpointName(topic, target);
  const cpPath = join(segLog.dir, cpName);
  const codec = codecFor('KingCobraMessage');
  const t0 = clock.now();

  try {
    let start = segLog.firstOffset;
    const explicit = opts.fromOffset !== undefined || opts.since !== undefined;
    if (opts.fromOffset !== undefined) {
      if (!Number.isSafeInteger(opts.fromOffset) || opts.fromOffset < 0) {
        throw new ReplayError(`--from-offset must be a whole number ≥ 0, got ${opts.fromOffset}`);
      }
      start = Math.max(start, opts.fromOffset);
    } else if (!explicit && useCheckpoint) {
      const cp = await readJsonFile<Checkpoint>(cpPath).catch((err: Error) => {
        throw new ReplayError(
          `checkpoint ${cpPath} is unreadable (${err.message}); delete it to start over, or give --from-offset N`,
        );
      });
      if (cp && !(Number.isSafeInteger(cp.nextOffset) && cp.nextOffset >= 0)) {
        throw new ReplayError(
          `checkpoint ${cpPath} has no valid nextOffset; delete it or give --from-offset N`,
        );
      }
      if (cp && cp.nextOffset > start) {
        const at = cp.lastId === null ? undefined : await recordAt(segLog, cp.nextOffset - 1);
        if (cp.lastId !== null && at?.id !== cp.lastId) {
          throw new ReplayError(
            `checkpoint ${cpPath} says offset ${cp.nextOffset - 1} is ${cp.lastId}, but the log has ` +
              `${at ? at.id : 'no record there'} (was the queue directory replaced or restored?); ` +
              'choose where to start with --from-offset N or --since TIME',
          );
        }
        start = cp.nextOffset;
      }
    }
    const endOffset = segLog.nextOffset;
    await opts.bus.ensureTopics([{ topic, partitions: 1 }]);

    let published = 0;
    let skipped = Math.max(0, Math.min(start, endOffset) - segLog.firstOffset);
    let nextOffset = start;
    let batch: OutgoingMessage[] = [];
    let batchEnd = start;
    let batchLastId: string | null = null;
    let seedMs: number | undefined;
    let virtualMs: number | undefined;
    const headers = { [HEADERS.contentType]: CONTENT_TYPES.avro, [HEADERS.schema]: codec.fingerprintHex };

    const progress = () =>
      opts.onProgress?.({
        published,
        skipped,
        nextOffset,
        endOffset,
        rate: published / Math.max(1e-3, (clock.now() - t0) / 1000),
        ...(virtualMs !== undefined ? { virtualTime: new Date(virtualMs) } : {}),
      });

    // One publish in flight at a time (a retried request can never overtake a later one), while
    // the next batch is read and encoded; each checkpoint is written after its batch is acked,
    // in order, alongside the next publish.
    let inflight: Promise<void> = Promise.resolve();
    let checkpoints: Promise<void> = Promise.resolve();
    let failure: unknown;
    let queuedEnd = start;
    const flush = async () => {
      if (batchEnd <= queuedEnd) return;
      const msgs = batch;
      const end = batchEnd;
      const endId = batchLastId;
      batch = [];
      queuedEnd = end;
      await inflight;
      if (failure) return;
      inflight = (async () => {
        if (msgs.length > 0) {
          await opts.bus.publish(topic, msgs);
          published += msgs.length;
          replayed.inc({ topic }, msgs.length);
        }
        nextOffset = end;
        if (useCheckpoint) {
          const cp: Checkpoint = {
            topic,
            target,
            nextOffset: end,
            lastId: endId,
            updated: new Date().toISOString(),
          };
          checkpoints = checkpoints.then(() =>
            writeFileDurably(segLog.dir, cpName, `${JSON.stringify(cp)}\n`),
          );
        }
        progress();
      })().catch((err: unknown) => {
        failure ??= err;
      });
    };
    const settle = async () => {
      await inflight;
      await checkpoints.catch((err: unknown) => {
        failure ??= err;
      });
      if (failure) throw failure;
    };

    const readOpts = {
      fromOffset: start,
      ...(opts.since !== undefined ? { since: opts.since } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    let first = true;
    let startAt = start;
    try {
      for await (const { offset, message } of segLog.read(readOpts)) {
        if (offset >= endOffset || failure) break;
        if (first && opts.since !== undefined) {
          // records between the start offset and the first one at/after --since
          skipped += offset - start;
          startAt = offset;
          first = false;
        }
        const ms = message.ts_sec * 1000 + message.ts_nsec / 1e6;
        if (tdf !== undefined) {
          seedMs ??= ms;
          const due = t0 + Math.max(0, ms - seedMs) / tdf;
          const wait = due - clock.now();
          if (wait > 0) {
            await flush();
            await clock.sleep(wait, opts.signal);
            if (opts.signal?.aborted) break;
          }
          virtualMs = ms;
        }
        if (kinds.has(message.kind)) {
          // partition 0: the replay is one total order even when the topic has more partitions
          batch.push({ key: message.id, value: codec.encode(message), headers, partition: 0 });
        } else {
          skipped++;
        }
        batchEnd = offset + 1;
        batchLastId = message.id;
        if (batch.length >= batchSize) await flush();
      }
      await flush();
    } catch (err) {
      failure ??= err;
    }
    // also on failure: no checkpoint write may outlive this call
    await settle();
    const seconds = (clock.now() - t0) / 1000;
    log.info('replayed', { topic, published, skipped, from: start, next: nextOffset, seconds });
    return { published, skipped, startOffset: startAt, nextOffset, seconds };
  } finally {
    if (ownLog) await segLog.close();
  }
}
