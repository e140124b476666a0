// publish-logs: log lines from a file or stdin onto virgo.kernel-logs, raw (DESIGN.md section 2):
// key = host, value = the line's bytes as read, header content-type: text/plain. That is exactly
// what `kcat -P -K` or rsyslog omkafka write, so any of them can feed the same topic.
// Batches are compressed (gzip); up to two are in flight at once on the producer's connection, which
// keeps them in order (as Kafka's own producer does, only a retried batch could overtake another).
// Batches stay small (1000 lines) because kafkajs groups a send's messages in quadratic time.
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
  /** lines per Kafka batch (default 1000) */
  batchSize?: number;
  /** batches in flight at once (default 2) */
  maxInFlight?: number;
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
  const batchSize = Math.max(1, opts.batchSize ?? 1_000);
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
  const inFlight = new Set<Promise<void>>();
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
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    if (failure) throw failure;
    const sent: Promise<void> = opts.bus
      .publish(topic, msgs, { compression })
      .then(
        () => {
          lines += n;
          bytes += b;
          publishMetrics.lines.inc(n);
          publishMetrics.bytes.inc(b);
          progress(false);
        },
        (err: unknown) => {
          failure ??= err;
        },
      )
      .then(() => {
        inFlight.delete(sent);
      });
    inFlight.add(sent);
  };
  const settle = async () => {
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
