// publish-logs: log lines from a file or stdin onto virgo.kernel-logs, raw (docs/design.md §5.2):
// key = host, value = the line's bytes as read, header content-type: text/plain. That is exactly
// what `kcat -P -K` or rsyslog omkafka write, so any of them can feed the same topic.
// Batches are compressed (gzip); up to two are in flight at once on the producer's connection, which
// keeps them in order (as Kafka's own producer does, only a retried batch could overtake another).
// Batches stay at 1000 lines: larger ones measured no cheaper per line with the Bus's own record
// codec (bus/README.md), and they bound what a crash sends again (the batches in flight).
// A batch goes out when it is full (lines or bytes), when the source has nothing more for now, or
// `lingerMs` after its first line (Kafka's linger.ms, Vector's batch timeout): a slow live source
// (`dmesg -w`, `journalctl -f`, a quiet file) flows within the linger instead of waiting for 1000
// lines. The linger runs on processing time (the wall clock of this process).
// With a checkpoint, a followed file's position (device, inode, fingerprint, offset) is written
// after the Bus acknowledged the lines before it, and a restart continues there.
import { hostname } from 'node:os';
import {
  type Bus,
  brokerUnreachable,
  CONTENT_TYPES,
  HEADERS,
  type OutgoingMessage,
  TOPICS,
  topicSpecs,
} from '../bus/index.ts';
import { createLogger } from '../runtime/log.ts';
import { CheckpointWriter, loadCheckpoint } from './checkpoint.ts';
import { type DecodeReason, lineRejection } from './decode.ts';
import { type FilePosition, type FollowEvent, fileLines, type LineChunk, streamLines } from './follow.ts';
import { publishMetrics } from './metrics.ts';
import { hostOf } from './parse.ts';
import { DEFAULT_LINGER_MS } from './source.ts';

const log = createLogger('ingest.publish');

/** Default bound on a batch's bytes (before compression), below Kafka's 1 MB message-set default. */
export const DEFAULT_BATCH_BYTES = 900_000;

export interface PublishProgress {
  /** lines acknowledged by the Bus */
  lines: number;
  bytes: number;
  /** of `lines`, how many the consumer stage dead-letters (the same rule: ingest/decode.ts) */
  deadLettered: number;
  elapsedMs: number;
  /** over the whole run */
  linesPerSec: number;
  /** true on the last call */
  done: boolean;
}

export interface PublishResult {
  /** lines acknowledged by the Bus */
  lines: number;
  bytes: number;
  /** of `lines`, those the consumer stage will dead-letter, by reason (same rule as the stage) */
  deadLettered: number;
  byReason: Partial<Record<DecodeReason, number>>;
  /** zero-length lines, not published (a blank line carries nothing; counted, not lost) */
  skippedEmpty: number;
  elapsedMs: number;
  /** first line acknowledged, ms after the start (processing time); undefined when none */
  firstAckMs: number | undefined;
}

export interface PublishLogsOptions {
  bus: Bus;
  /** a file path, or '-' for `stdin` */
  source: string;
  /** follow the file like `tail -F` until `signal` aborts */
  follow?: boolean;
  /** with follow: start at the end of the file instead of its beginning (unless a checkpoint says
   * where to continue) */
  fromEnd?: boolean;
  /** with follow: the checkpoint file (see ingest/checkpoint.ts); resumed from when present,
   * written after every acknowledged batch */
  checkpoint?: string;
  /** key of every line; default: the host the line names, else os.hostname() */
  host?: string;
  /** default virgo.kernel-logs */
  topic?: string;
  /** the topic as the broker names it (namespace prefix included), for the checkpoint; default topic */
  checkpointTopic?: string;
  /** lines per Kafka batch (default 1000) */
  batchSize?: number;
  /** bytes per batch at most, before compression (default 900 000); a longer line goes alone */
  batchBytes?: number;
  /** a partial batch is sent this long after its first line (ms, default 200; 0: at once) */
  lingerMs?: number;
  /** batches in flight at once (default 2) */
  maxInFlight?: number;
  compression?: 'gzip' | 'none';
  onProgress?: (p: PublishProgress) => void;
  /** how often onProgress is called while publishing (ms, default 500); the last change is
   * always reported within this time */
  progressEveryMs?: number;
  signal?: AbortSignal;
  /** for source '-' (default process.stdin) */
  stdin?: NodeJS.ReadableStream;
  /** create the topic when missing (default true); publishers without admin rights say false */
  ensureTopic?: boolean;
  /** follow mode: how often to look at the file without a change event (ms) */
  pollMs?: number;
  /** follow mode: the file was opened, resumed, rotated, truncated, or is awaited (not there yet) */
  onFollow?: (what: FollowEvent, path: string) => void;
}

interface Batch {
  msgs: OutgoingMessage[];
  bytes: number;
  bad: number;
  reasons: Partial<Record<DecodeReason, number>>;
  /** where the file stands after the batch's last line (followed files) */
  mark: FilePosition | undefined;
}

function emptyBatch(): Batch {
  return { msgs: [], bytes: 0, bad: 0, reasons: {}, mark: undefined };
}

export async function publishLogs(opts: PublishLogsOptions): Promise<PublishResult> {
  const topic = opts.topic ?? TOPICS.kernelLogs;
  const batchSize = Math.max(1, opts.batchSize ?? 1_000);
  const batchBytes = Math.max(1, opts.batchBytes ?? DEFAULT_BATCH_BYTES);
  const lingerMs = Math.max(0, opts.lingerMs ?? DEFAULT_LINGER_MS);
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 2);
  const compression = opts.compression ?? 'gzip';
  const fallbackHost = opts.host ?? hostname();
  const headers = { [HEADERS.contentType]: CONTENT_TYPES.text };
  if (opts.ensureTopic ?? true) {
    const spec = topicSpecs().find((t) => t.topic === topic) ?? { topic, partitions: 4 };
    try {
      await opts.bus.ensureTopics([spec]);
    } catch (err) {
      // Unreachable brokers end the run here; a missing permission to create topics does not.
      if (brokerUnreachable(err)) throw err;
      log.warn('could not create the topic; publishing anyway', { topic, err });
    }
  }

  const follow = opts.follow === true && opts.source !== '-';
  const checkpointTopic = opts.checkpointTopic ?? topic;
  const writer =
    follow && opts.checkpoint
      ? new CheckpointWriter(opts.checkpoint, opts.source, checkpointTopic)
      : undefined;
  const resumeAt = writer ? loadCheckpoint(writer.file, opts.source, checkpointTopic)?.position : undefined;
  if (resumeAt) log.info('resuming from the checkpoint', { file: opts.source, checkpoint: resumeAt });

  // Stops the source when a batch fails while the reader waits for lines: the error ends the run
  // instead of waiting for the next line to notice it.
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const source: AsyncGenerator<LineChunk> =
    opts.source === '-'
      ? streamLines(opts.stdin ?? process.stdin, signal)
      : fileLines(opts.source, {
          follow,
          fromEnd: opts.fromEnd ?? false,
          signal,
          ...(resumeAt ? { resume: resumeAt } : {}),
          ...(writer ? { holdPartial: true } : {}),
          ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
          ...(opts.onFollow ? { onEvent: opts.onFollow } : {}),
        });

  const started = Date.now();
  let firstAckMs: number | undefined;
  let lines = 0;
  let bytes = 0;
  let deadLettered = 0;
  let skippedEmpty = 0;
  const byReason: Partial<Record<DecodeReason, number>> = {};
  let batch = emptyBatch();
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  // Progress: at most every `every` ms, and the last change always within `every` ms (trailing).
  const every = opts.progressEveryMs ?? 500;
  let lastProgress = 0;
  let progressTimer: NodeJS.Timeout | undefined;
  const report = (done: boolean) => {
    const now = Date.now();
    lastProgress = now;
    const elapsedMs = now - started;
    opts.onProgress?.({
      lines,
      bytes,
      deadLettered,
      elapsedMs,
      linesPerSec: elapsedMs > 0 ? (lines * 1000) / elapsedMs : 0,
      done,
    });
  };
  const progress = () => {
    if (!opts.onProgress || progressTimer) return;
    const wait = every - (Date.now() - lastProgress);
    if (wait <= 0) report(false);
    else {
      progressTimer = setTimeout(() => {
        progressTimer = undefined;
        report(false);
      }, wait);
      progressTimer.unref();
    }
  };

  // Acknowledged batches advance the checkpoint in send order only: a later batch acknowledged
  // before an earlier one (a retry) must not move it past lines not yet acknowledged.
  let sentSeq = 0;
  let ackedSeq = 0;
  const acked = new Map<number, FilePosition | undefined>();
  const acknowledge = (seq: number, mark: FilePosition | undefined) => {
    acked.set(seq, mark);
    let last: FilePosition | undefined;
    while (acked.has(ackedSeq + 1)) {
      ackedSeq++;
      last = acked.get(ackedSeq) ?? last;
      acked.delete(ackedSeq);
    }
    if (last && writer) {
      try {
        writer.save(last);
      } catch (err) {
        // The lines are in Kafka; a restart would send them again (duplicates, not a gap).
        log.error('could not write the checkpoint', { file: writer.file, err });
      }
    }
  };

  // Sends run one after another (a chain), whoever starts them: the reading loop when a batch is
  // full, or the linger timer while the loop waits for the source.
  let chain: Promise<void> = Promise.resolve();
  let lingerTimer: NodeJS.Timeout | undefined;
  const send = async (b: Batch): Promise<void> => {
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    if (failure) throw failure;
    const seq = ++sentSeq;
    const sent: Promise<void> = opts.bus
      .publish(topic, b.msgs, { compression })
      .then(
        () => {
          firstAckMs ??= Date.now() - started;
          lines += b.msgs.length;
          bytes += b.bytes;
          deadLettered += b.bad;
          for (const [r, n] of Object.entries(b.reasons) as [DecodeReason, number][]) {
            byReason[r] = (byReason[r] ?? 0) + n;
            publishMetrics.undecodable.inc({ reason: r }, n);
          }
          publishMetrics.lines.inc(b.msgs.length);
          publishMetrics.bytes.inc(b.bytes);
          acknowledge(seq, b.mark);
          progress();
        },
        (err: unknown) => {
          failure ??= err;
          stop.abort();
        },
      )
      .then(() => {
        inFlight.delete(sent);
      });
    inFlight.add(sent);
  };
  const flush = (): Promise<void> => {
    clearTimeout(lingerTimer);
    lingerTimer = undefined;
    if (batch.msgs.length === 0) {
      // Lines that were all skipped still move the checkpoint, once what precedes them is acknowledged.
      if (batch.mark && writer) {
        const mark = batch.mark;
        batch.mark = undefined;
        chain = chain.then(async () => {
          await Promise.all(inFlight);
          if (!failure) acknowledge(++sentSeq, mark);
        });
      }
      return chain;
    }
    const b = batch;
    batch = emptyBatch();
    chain = chain.then(() => send(b));
    return chain;
  };
  const linger = () => {
    if (lingerTimer || lingerMs === 0) return;
    lingerTimer = setTimeout(() => {
      lingerTimer = undefined;
      // A failure here surfaces in the reading loop (the source is stopped) and in settle().
      flush().catch(() => {});
    }, lingerMs);
  };
  const settle = async () => {
    try {
      await chain;
    } catch {
      // the failure is rethrown below
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
  };

  // One key Buffer per host: kafkajs would encode a string key for every message.
  const keys = new Map<string, Buffer>();
  const keyBuf = (host: string): Buffer => {
    let k = keys.get(host);
    if (!k) {
      if (keys.size > 10_000) keys.clear();
      k = Buffer.from(host, 'utf8');
      keys.set(host, k);
    }
    return k;
  };
  const keyOf = (line: Buffer): Buffer =>
    keyBuf(opts.host ?? hostOf(line.toString(line[0] === 123 ? 'utf8' : 'latin1')) ?? fallbackHost);

  try {
    for await (const chunk of source) {
      const { ends, file } = chunk;
      for (let i = 0; i < chunk.lines.length; i++) {
        const line = chunk.lines[i]!;
        if (line.length === 0) {
          skippedEmpty++;
          publishMetrics.skipped.inc();
        } else {
          if (batch.msgs.length > 0 && batch.bytes + line.length > batchBytes) await flush();
          batch.msgs.push({ key: keyOf(line), value: line, headers });
          batch.bytes += line.length;
          const bad = lineRejection(line);
          if (bad) {
            batch.bad++;
            batch.reasons[bad.reason] = (batch.reasons[bad.reason] ?? 0) + 1;
          }
        }
        if (ends && file) batch.mark = { ...file, offset: ends[i]! };
        if (batch.msgs.length >= batchSize) await flush();
      }
      if (chunk.idle || lingerMs === 0) await flush();
      else if (batch.msgs.length > 0) linger();
      if (failure) break;
    }
    await flush();
  } finally {
    clearTimeout(lingerTimer);
    await settle().finally(() => {
      clearTimeout(progressTimer);
      progressTimer = undefined;
    });
  }
  if (opts.onProgress) report(true);
  if (skippedEmpty > 0) log.debug('zero-length lines not published', { count: skippedEmpty });
  return {
    lines,
    bytes,
    deadLettered,
    byReason,
    skippedEmpty,
    elapsedMs: Date.now() - started,
    firstAckMs,
  };
}
