// publish-logs: log lines from a file or stdin onto virgo.kernel-logs, raw (DESIGN.md section 2):
// key = host, value = the line's bytes as read, header content-type: text/plain. That is exactly
// what `kcat -P -K` or rsyslog omkafka write, so any of them can feed the same topic.
// Batches are compressed (gzip) and sent one at a time, the next built while the previous is in
// flight, so lines of a host stay in order.
import { hostname } from 'node:os';
import { type Bus, CONTENT_TYPES, HEADERS, type OutgoingMessage, TOPICS, topicSpecs } from '../bus/index.ts';
import { createLogger } from '../runtime/log.ts';
import { fileLines, type LineChunk, streamLines } from './follow.ts';
import { publishMetrics } from './metrics.ts';
import { hostOf } from './parse.ts';

const log = createLogger('ingest.publish');

export interface PublishProgress {
  lines: number;
  bytes: number;
  elapsedMs: number;
  /** over the whole run */
  linesPerSec: number;
  /** true on the last call */
  done: boolean;
}

export interface PublishLogsOptions {
  bus: Bus;
  /** a file path, or '-' for `stdin` */
  source: string;
  /** follow the file like `tail -F` until `signal` aborts */
  follow?: boolean;
  /** with follow: start at the end of the file instead of its beginning */
  fromEnd?: boolean;
  /** key of every line; default: the host the line names, else os.hostname() */
  host?: string;
  /** default virgo.kernel-logs */
  topic?: string;
  /** lines per Kafka batch (default 5000) */
  batchSize?: number;
  compression?: 'gzip' | 'none';
  onProgress?: (p: PublishProgress) => void;
  /** how often onProgress is called while publishing (ms, default 500) */
  progressEveryMs?: number;
  signal?: AbortSignal;
  /** for source '-' (default process.stdin) */
  stdin?: NodeJS.ReadableStream;
  /** create the topic when missing (default true); publishers without admin rights say false */
  ensureTopic?: boolean;
  /** follow mode: how often to look at the file without a change event (ms) */
  pollMs?: number;
  /** follow mode: the file was opened, rotated, truncated, or is awaited (not there yet) */
  onFollow?: (what: 'opened' | 'rotated' | 'truncated' | 'waiting', path: string) => void;
}

export async function publishLogs(opts: PublishLogsOptions): Promise<{ lines: number; bytes: number }> {
  const topic = opts.topic ?? TOPICS.kernelLogs;
  const batchSize = Math.max(1, opts.batchSize ?? 5_000);
  const compression = opts.compression ?? 'gzip';
  const fallbackHost = opts.host ?? hostname();
  const headers = { [HEADERS.contentType]: CONTENT_TYPES.text };
  if (opts.ensureTopic ?? true) {
    const spec = topicSpecs().find((t) => t.topic === topic) ?? { topic, partitions: 4 };
    try {
      await opts.bus.ensureTopics([spec]);
    } catch (err) {
      // Unreachable brokers end the run here; a missing permission to create topics does not.
      if (/connect/i.test((err as Error).message)) throw err;
      log.warn('could not create the topic; publishing anyway', { topic, err });
    }
  }
  const source: AsyncGenerator<LineChunk> =
    opts.source === '-'
      ? streamLines(opts.stdin ?? process.stdin, opts.signal)
      : fileLines(opts.source, {
          follow: opts.follow ?? false,
          fromEnd: opts.fromEnd ?? false,
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
          ...(opts.onFollow ? { onEvent: opts.onFollow } : {}),
        });

  const started = Date.now();
  let lines = 0;
  let bytes = 0;
  let batch: OutgoingMessage[] = [];
  let batchBytes = 0;
  let inFlight: Promise<void> | undefined;
  let failure: unknown;
  let lastProgress = 0;
  const every = opts.progressEveryMs ?? 500;
  const progress = (done: boolean) => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!done && now - lastProgress < every) return;
    lastProgress = now;
    const elapsedMs = now - started;
    opts.onProgress({
      lines,
      bytes,
      elapsedMs,
      linesPerSec: elapsedMs > 0 ? (lines * 1000) / elapsedMs : 0,
      done,
    });
  };
  const flush = async () => {
    if (batch.length === 0) return;
    const msgs = batch;
    const n = msgs.length;
    const b = batchBytes;
    batch = [];
    batchBytes = 0;
    // One batch in flight: the next is built meanwhile, and order is kept.
    await settle();
    inFlight = opts.bus.publish(topic, msgs, { compression }).then(
      () => {
        lines += n;
        bytes += b;
        publishMetrics.lines.inc(n);
        publishMetrics.bytes.inc(b);
        progress(false);
      },
      (err: unknown) => {
        failure = err;
      },
    );
  };
  const settle = async () => {
    if (inFlight) await inFlight;
    inFlight = undefined;
    if (failure) throw failure;
  };

  const keyOf = (line: Buffer): string =>
    opts.host ?? hostOf(line.toString(line[0] === 123 ? 'utf8' : 'latin1')) ?? fallbackHost;

  for await (const chunk of source) {
    for (const line of chunk.lines) {
      if (line.length === 0) continue;
      batch.push({ key: keyOf(line), value: line, headers });
      batchBytes += line.length;
      if (batch.length >= batchSize) await flush();
    }
    if (chunk.idle) await flush();
  }
  await flush();
  await settle();
  progress(true);
  return { lines, bytes };
}
