// The consumer stage: group virgo-learners reads virgo.kernel-logs, parses and mines each line,
// and hands the KernelEvents of a batch to the learners (in-process) before the Bus commits the
// batch's offsets. Lines it cannot read go to virgo.kernel-logs.dlq with their original bytes and
// a `virgo-error` header; an oversize line is cut and flagged, and its original also goes to the
// dead-letter topic so nothing is lost. No line stops the stage.

import { existsSync } from 'node:fs';
import {
  type Bus,
  type BusMessage,
  brokerUnreachable,
  CONTENT_TYPES,
  GROUPS,
  HEADERS,
  type OutgoingMessage,
  TOPICS,
  topicSpecs,
} from '../bus/index.ts';
import { createLogger } from '../runtime/log.ts';
import type { KernelEvent } from '../schemas/index.ts';
import { decodeValue, MAX_LINE_BYTES } from './decode.ts';
import { toKernelEvent } from './event.ts';
import { ingestMetrics } from './metrics.ts';
import { TemplateMiner } from './miner.ts';
import { parseLine } from './parse.ts';
import type { Family } from './types.ts';

const log = createLogger('ingest.stage');

export interface IngestBatchContext {
  topic: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
  /** hosts of this batch's events (a partition carries the hosts whose key hashes to it) */
  hosts: string[];
  /** false once the stage is closing or the partition was revoked */
  isRunning(): boolean;
}

export interface IngestStageOptions {
  bus: Bus;
  /** consumer group (default virgo-learners) */
  groupId?: string;
  /** default virgo.kernel-logs */
  topic?: string;
  /** default `<topic>.dlq`, i.e. virgo.kernel-logs.dlq */
  dlqTopic?: string;
  fromBeginning?: boolean;
  /** shared with whoever saves it; default: loaded from statePath, else a fresh miner */
  miner?: TemplateMiner;
  /** miner state file (e.g. stateDir('ingest')/templates.json): loaded at start when present,
   * saved atomically every saveEveryMs and on close, so template ids survive restarts */
  statePath?: string;
  /** default 60 000 */
  saveEveryMs?: number;
  maxLineBytes?: number;
  /** messages per batch handed to onEvents at most */
  maxBatch?: number;
  /** Called once per batch with at least one event; offsets are committed after it resolves.
   * A rejection gets the same batch again (at-least-once). */
  onEvents: (events: KernelEvent[], ctx: IngestBatchContext) => Promise<void>;
}

export interface IngestStats {
  /** Kafka messages read */
  messages: number;
  /** log lines read (a message may hold several) */
  lines: number;
  events: number;
  /** messages rejected to the dead-letter topic (empty, binary, invalid UTF-8, parse error) */
  deadLettered: number;
  /** lines cut to maxLineBytes (their originals are also on the dead-letter topic) */
  truncated: number;
  byReason: Record<string, number>;
  byFamily: Partial<Record<Family, number>>;
  batches: number;
  bytes: number;
  templates: number;
}

export interface IngestStage {
  /** resolves once the consumer joined its group */
  ready: Promise<void>;
  stats(): IngestStats;
  readonly miner: TemplateMiner;
  /** stops consuming after the batch in hand and commits its offsets */
  close(): Promise<void>;
}

function dead(m: BusMessage, reason: string): OutgoingMessage {
  return {
    key: m.key,
    value: m.value,
    headers: {
      [HEADERS.error]: reason,
      [HEADERS.contentType]: m.headers[HEADERS.contentType] ?? CONTENT_TYPES.text,
      'virgo-source': `${m.topic}/${m.partition}/${m.offset}`,
    },
    timestamp: m.timestamp,
  };
}

export async function startIngestStage(opts: IngestStageOptions): Promise<IngestStage> {
  const topic = opts.topic ?? TOPICS.kernelLogs;
  const dlqTopic = opts.dlqTopic ?? `${topic}.dlq`;
  const miner = opts.miner ?? loadMiner(opts.statePath);
  const saveEveryMs = opts.saveEveryMs ?? 60_000;
  let lastSave = Date.now();
  const save = () => {
    if (!opts.statePath) return;
    try {
      miner.save(opts.statePath);
      lastSave = Date.now();
    } catch (err) {
      log.error('could not save the template miner state', { path: opts.statePath, err });
    }
  };
  const maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const stats: IngestStats = {
    messages: 0,
    lines: 0,
    events: 0,
    deadLettered: 0,
    truncated: 0,
    byReason: {},
    byFamily: {},
    batches: 0,
    bytes: 0,
    templates: 0,
  };
  const truncatedFlags = ['truncated'];

  const onBatch = async (
    batch: BusMessage[],
    bctx: { topic: string; partition: number; isRunning(): boolean },
  ): Promise<void> => {
    const events: KernelEvent[] = [];
    const dlq: OutgoingMessage[] = [];
    const reasons: Record<string, number> = {};
    const families: Partial<Record<Family, number>> = {};
    const hosts = new Set<string>();
    let lines = 0;
    let truncated = 0;
    let bytes = 0;
    for (const m of batch) {
      bytes += m.value?.length ?? 0;
      const d = decodeValue(m.value, maxLineBytes);
      if (!d.ok) {
        reasons[d.reason] = (reasons[d.reason] ?? 0) + 1;
        dlq.push(dead(m, `${d.reason}: ${d.detail}`));
        continue;
      }
      const key = m.key && m.key.length > 0 ? m.key.toString('utf8') : '';
      const now = m.timestamp > 0 ? m.timestamp : Date.now();
      let failed = false;
      for (let i = 0; i < d.lines.length; i++) {
        lines++;
        try {
          const line = d.lines[i]!;
          const parsed = parseLine(line, { host: key, now });
          const at = parsed.messageAt;
          const mined = at >= 0 ? miner.add(line, at, at + parsed.message.length) : miner.add(parsed.message);
          const cut = d.truncated.length > 0 && d.truncated.includes(i);
          events.push(toKernelEvent(parsed, mined, cut ? truncatedFlags : []));
          families[parsed.family] = (families[parsed.family] ?? 0) + 1;
          hosts.add(parsed.host);
          if (cut) truncated++;
        } catch (err) {
          // A bug of ours, not the line's: keep the line (dead letter) and go on.
          if (!failed) {
            failed = true;
            reasons['parse-error'] = (reasons['parse-error'] ?? 0) + 1;
            dlq.push(dead(m, `parse-error: ${(err as Error).message}`));
            log.error('line failed to parse', {
              topic: m.topic,
              partition: m.partition,
              offset: m.offset,
              err,
            });
          }
        }
      }
      if (d.truncated.length > 0) {
        dlq.push(dead(m, `truncated: ${d.truncated.length} line(s) over ${maxLineBytes} bytes were cut`));
      }
    }
    if (events.length > 0) {
      await opts.onEvents(events, {
        topic: bctx.topic,
        partition: bctx.partition,
        firstOffset: batch[0]!.offset,
        lastOffset: batch[batch.length - 1]!.offset,
        hosts: [...hosts],
        isRunning: () => bctx.isRunning(),
      });
    }
    if (dlq.length > 0) await opts.bus.publish(dlqTopic, dlq, { compression: 'gzip' });
    // Counted once the batch is done: a retried batch is not counted twice.
    stats.messages += batch.length;
    stats.lines += lines;
    stats.events += events.length;
    stats.truncated += truncated;
    stats.batches++;
    stats.bytes += bytes;
    for (const [r, n] of Object.entries(reasons)) {
      stats.deadLettered += n;
      stats.byReason[r] = (stats.byReason[r] ?? 0) + n;
      ingestMetrics.deadLetters.inc({ reason: r }, n);
    }
    for (const [f, n] of Object.entries(families) as [Family, number][]) {
      stats.byFamily[f] = (stats.byFamily[f] ?? 0) + n;
      ingestMetrics.events.inc({ family: f }, n);
    }
    if (truncated) {
      stats.byReason.truncated = (stats.byReason.truncated ?? 0) + truncated;
      ingestMetrics.truncated.inc(truncated);
    }
    ingestMetrics.messages.inc(batch.length);
    ingestMetrics.lines.inc(lines);
    ingestMetrics.templates.set(miner.size);
    if (opts.statePath && Date.now() - lastSave >= saveEveryMs) save();
  };

  // The stage is the dead-letter topic's only writer: it creates it (docs/design.md §4).
  // It also creates its input topic when missing, with the partitions of the spec: a first
  // `virgo learn` must not die because no log line was published yet.
  try {
    await opts.bus.ensureTopics([
      topicSpecs().find((t) => t.topic === topic) ?? { topic, partitions: 4 },
      topicSpecs().find((t) => t.topic === dlqTopic) ?? { topic: dlqTopic, partitions: 1 },
    ]);
  } catch (err) {
    if (brokerUnreachable(err)) throw err;
    log.warn('could not create the log and dead-letter topics; relying on auto-creation', {
      topic,
      dlqTopic,
      err,
    });
  }
  const sub = await opts.bus.subscribe({
    topics: [topic],
    groupId: opts.groupId ?? GROUPS.learners,
    fromBeginning: opts.fromBeginning ?? false,
    maxBatch: opts.maxBatch ?? 2_000,
    onBatch,
  });
  log.debug('ingest stage subscribed', { topic, dlqTopic, group: opts.groupId ?? GROUPS.learners });
  return {
    ready: sub.ready,
    miner,
    stats: () => ({
      ...stats,
      byReason: { ...stats.byReason },
      byFamily: { ...stats.byFamily },
      templates: miner.size,
    }),
    close: async () => {
      await sub.close();
      save();
    },
  };
}

function loadMiner(path: string | undefined): TemplateMiner {
  if (!path || !existsSync(path)) return new TemplateMiner();
  try {
    const m = TemplateMiner.load(path);
    log.info('template miner state loaded', { path, templates: m.size });
    return m;
  } catch (err) {
    // A damaged state costs template history, not the stage: start afresh (it is rewritten).
    log.error('template miner state unreadable; starting with no templates', { path, err });
    return new TemplateMiner();
  }
}
