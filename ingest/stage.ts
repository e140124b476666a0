// The consumer stage: group virgo-learners reads virgo.kernel-logs, parses each line, puts the
// lines of its partitions back into event-time order (event-order.ts: a watermark over the
// partitions that still have data), drops lines the learners already took (dedupe.ts), and hands
// the rest, mined, to the learners (in-process) before the Bus commits the batch's offsets.
// Lines it cannot read go to virgo.kernel-logs.dlq with their original bytes and a `virgo-error`
// header; an oversize line is cut and flagged, and its original also goes to the dead-letter topic
// so nothing is lost; a line too late for its host (older than the host's watermark minus the
// allowed lateness) goes there with reason `late`. No line stops the stage.
// Time: event time (the lines' own stamps; the message timestamp for lines without one) orders and
// judges lateness; processing time only tells an idle partition and paces the warnings.

import {
  type Bus,
  type BusMessage,
  brokerUnreachable,
  CONTENT_TYPES,
  type ConsumedOffset,
  GROUPS,
  HEADERS,
  type Membership,
  type OutgoingMessage,
  TOPICS,
  topicSpecs,
} from '../bus/index.ts';
import { hop } from '../runtime/latency.ts';
import { createLogger } from '../runtime/log.ts';
import type { KernelEvent } from '../schemas/index.ts';
import { decodeValue, MAX_LINE_BYTES } from './decode.ts';
import { keyH1, keyH2, lineKey } from './dedupe.ts';
import { toKernelEvent } from './event.ts';
import { OutstandingOffsets } from './event-order.ts';
import { KeySet } from './key-set.ts';
import { ingestMetrics } from './metrics.ts';
import { TemplateMiner } from './miner.ts';
import {
  IngestOrder,
  type IngestOrderOptions,
  type IngestOrderStats,
  orderMetrics,
  type PendingLine,
} from './order-state.ts';
import { classifyParsed, type ParseOptions, parseLine } from './parse.ts';
import type { Family } from './types.ts';

const log = createLogger('ingest.stage');
/** the flags of an event that has none: one frozen array, not one per line */
const NO_FLAGS: string[] = Object.freeze([]) as unknown as string[];
// Latency per line (runtime/latency.ts): from the record's Kafka timestamp (its producer's clock)
// to this stage's batch handler, and from there to the learners taking it (the reorder buffer and
// the wait for the batch before). Processing time.
const publishToStage = hop('publish→stage');
const stageToLearners = hop('stage→learners');

export interface IngestBatchContext {
  /** the batch whose arrival released these events (events may come from several partitions) */
  topic: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
  /** hosts of these events */
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
  /** the template miner, shared with whoever saves it (the learn stage keeps it in its snapshot,
   * so template ids survive restarts); default: a fresh one */
  miner?: TemplateMiner;
  maxLineBytes?: number;
  /** messages per batch read from the bus at most */
  maxBatch?: number;
  /**
   * Kafka: bytes (compressed, as stored) one fetch takes from a partition (default 128 KiB). The
   * event-time merge holds each partition's lines until the others reach their time, so this
   * bounds the reorder buffer in a replay: about partitions x the lines in this many bytes.
   */
  maxBytesPerPartition?: number;
  /** Called with the events a batch (or the idle check) released, in event-time order; the
   * batch's offsets are committed after it resolves. A rejection gets the same lines again. */
  onEvents: (events: KernelEvent[], ctx: IngestBatchContext) => Promise<void>;
  /** event-time state (reorder buffer, host watermarks, dedupe); the learn stage passes the one
   * it snapshots with the models. Default: a fresh one from `order` options */
  order?: IngestOrder;
  /** allowed lateness, buffer and dedupe bounds of a fresh event-time state */
  orderOptions?: IngestOrderOptions;
  /** how often the watermark is checked without a new batch (idle partitions), ms (default 200) */
  pumpMs?: number;
  /**
   * lines waiting in the reorder buffer past which a partition that reads ahead of the watermark
   * is paused until half of them went (default a tenth of the buffer's bound, 10,000)
   */
  alignAt?: number;
  /** late and duplicate lines are logged at most once per this, ms (default 10 s) */
  reportEveryMs?: number;
  /**
   * Exactly-once on Kafka: the bus commits no offsets and the stage publishes no dead letters;
   * the caller takes both (`positions()`, `takeDeadLetters()`) into its transactions, with the
   * learners' state and variables. The stage then also keeps which partition each host's lines
   * come from (`partitionOf`).
   */
  transactional?: boolean;
  /**
   * Called when the group assigned this consumer's partitions (join, rebalance), after lines
   * waiting from revoked partitions were dropped and before any line of the new assignment is
   * handled: the caller hands the revoked partitions' hosts over and restores the new ones'.
   */
  onPartitions?: (change: PartitionChange) => Promise<void>;
  /** the rejoin barrier of a transactional caller (SubscribeOptions.beforeRejoin) */
  beforeRejoin?: () => Promise<void>;
}

export interface PartitionChange {
  /** partitions this consumer got that it did not have */
  assigned: number[];
  /** partitions it had and lost */
  revoked: number[];
  /** its partitions now */
  all: number[];
  /** hosts whose lines came from the revoked partitions (transactional only) */
  revokedHosts: Set<string>;
}

/** A dead letter waiting for the caller's transaction, with the offset whose commit it goes with. */
export interface PendingDeadLetter {
  partition: number;
  offset: string;
  message: OutgoingMessage;
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
  /** lines dropped: the learners already took them */
  duplicates: number;
  /** lines dead-lettered as too late for their host */
  late: number;
  /** the event-time merger, watermarks and dedupe */
  order: IngestOrderStats;
}

export interface IngestStage {
  /** resolves once the consumer joined its group */
  ready: Promise<void>;
  stats(): IngestStats;
  readonly miner: TemplateMiner;
  readonly order: IngestOrder;
  /** whether some partition still has data to read: the input is replaying (a backlog) */
  backlog(): boolean;
  /**
   * The end of a bounded input: waits until every partition was read to the end the topic has
   * now, then releases every line still waiting for its event-time turn (a final watermark).
   */
  drain(timeoutMs?: number): Promise<void>;
  /** stops consuming after the batch in hand and commits its offsets; `beforeLeave` runs once the
   * batch in hand is done, while still a member of the group (a transactional caller's last commit) */
  close(opts?: { beforeLeave?: () => Promise<void> }): Promise<void>;
  /** runs `fn` between batches: no line is on its way to the learners meanwhile */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** transactional: the offsets to commit now (lines still waiting are read again) */
  positions(): ConsumedOffset[];
  /** transactional: the group generation and whether committing is safe now */
  membership(): Membership | undefined;
  /** transactional: the dead letters that go with `positions` (the rest stays) */
  takeDeadLetters(positions: readonly ConsumedOffset[]): PendingDeadLetter[];
  /** transactional: dead letters of a transaction that failed, for the next */
  putBackDeadLetters(letters: readonly PendingDeadLetter[]): void;
  /** transactional: the partition the host's lines come from */
  partitionOf(host: string): number | undefined;
  /** transactional: a host restored from elsewhere lives in `partition` */
  setPartitionOf(host: string, partition: number): void;
  /** the hosts whose partition is known (transactional) */
  partitionedHosts(): Map<string, number>;
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
  const miner = opts.miner ?? new TemplateMiner();
  // the miner counts evictions over its life (a restored one brings its own): the counter takes the rise
  let minerEvicted = miner.evictedCount;
  const order = opts.order ?? new IngestOrder(opts.orderOptions);
  const merger = order.merger;
  // What waits is not committed: a crash or a rebalance reads it again.
  const outstanding = new OutstandingOffsets();
  const settle = (items: readonly PendingLine[]) => {
    for (const p of items) outstanding.done(p.src.partition, Number(p.src.offset));
  };
  const maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const stats: Omit<IngestStats, 'order'> = {
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
    duplicates: 0,
    late: 0,
  };
  const truncatedFlags = ['truncated'];
  const transactional = opts.transactional === true;
  // transactional: dead letters wait for the caller's transaction, and each host's partition is known
  let pendingDead: PendingDeadLetter[] = [];
  const hostPartitions = new Map<string, number>();
  const publishDead = async (letters: { m: OutgoingMessage; partition: number; offset: string }[]) => {
    if (letters.length === 0) return;
    if (transactional) {
      for (const l of letters) pendingDead.push({ partition: l.partition, offset: l.offset, message: l.m });
      return;
    }
    await opts.bus.publish(
      dlqTopic,
      letters.map((l) => l.m),
      { compression: 'gzip' },
    );
  };
  const wmOf = (h: string) => order.hosts.get(h);
  const reports = new Reports(opts.reportEveryMs ?? 10_000, dlqTopic, order.hosts.allowedLatenessMs);

  // Batches, the idle check and drain() take turns: the merger and the learners see one at a time.
  let turn: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = turn.then(fn);
    turn = p.catch(() => {});
    return p;
  };

  // Event-time alignment: while more than alignAt lines wait, a partition that delivers lines past
  // the watermark is paused (they would only wait for the others); a paused partition is resumed
  // as soon as the watermark reached it (it is the one to wait for now, and must not wait for
  // itself), and all once the buffer is down to half. Bounds the buffer (and the memory of a
  // replay) far below maxBuffered.
  const alignAt = opts.alignAt ?? Math.max(1, Math.floor(merger.maxBuffered / 10));
  const pausedParts = new Map<number, () => void>();
  const align = (partition: number, pause: (() => () => void) | undefined): void => {
    const buffered = merger.stats().buffered;
    if (pause && buffered > alignAt && !pausedParts.has(partition) && merger.isAhead(partition)) {
      pausedParts.set(partition, pause());
      orderMetrics.paused.inc({ topic });
    }
  };
  const realign = (): void => {
    if (pausedParts.size === 0) return;
    const drained = merger.stats().buffered <= alignAt / 2;
    for (const [p, resume] of pausedParts) {
      if (!drained && merger.isAhead(p)) continue;
      resume();
      pausedParts.delete(p);
    }
  };

  // The partitions this consumer owns, with whether they hold anything: until known, nothing is
  // released (a partition not read yet may hold older lines than the first batch).
  let assigned: Promise<void> | undefined;
  let assignedSet: Set<number> | undefined;
  let totalPartitions = 0;
  let splitWarned = false;
  /** partitions are changing hands: nothing may be committed until the caller took them over */
  let handingOver = false;
  const onAssign = (a: { topic: string; partitions: number[] }[]) => {
    const mine = a.find((x) => x.topic === topic)?.partitions ?? [];
    // a new assignment starts unpaused (the merge state of revoked partitions is dropped)
    for (const resume of pausedParts.values()) resume();
    pausedParts.clear();
    handingOver = true;
    // In turn with batches and the idle check: nothing is on its way to the learners while the
    // partitions change hands; batches of the new assignment wait for it (they await `assigned`).
    const job = serial(async () => {
      let offsets: { partition: number; low: string; high: string }[] = [];
      try {
        offsets = await opts.bus.topicOffsets(topic);
      } catch (err) {
        log.warn('could not read the partition offsets; treating every assigned partition as holding data', {
          topic,
          err,
        });
      }
      const has = new Map(offsets.map((o) => [o.partition, BigInt(o.high) > BigInt(o.low)]));
      const before = assignedSet ?? new Set<number>();
      const now = new Set(mine);
      const revoked = [...before].filter((p) => !now.has(p));
      const added = mine.filter((p) => !before.has(p));
      // What waits from a revoked partition is not ours any more: its offsets were not
      // committed, so its new owner reads it again.
      if (revoked.length > 0) {
        const gone = new Set(revoked);
        merger.removeWhere((l) => gone.has(l.src.partition));
        for (const p of revoked) outstanding.dropPartition(p);
        pendingDead = pendingDead.filter((d) => !gone.has(d.partition));
      }
      const revokedHosts = new Set<string>();
      for (const [h, p] of hostPartitions) if (!now.has(p)) revokedHosts.add(h);
      for (const h of revokedHosts) hostPartitions.delete(h);
      merger.assign(mine.map((p) => ({ partition: p, hasData: has.get(p) ?? true })));
      assignedSet = now;
      totalPartitions = offsets.length;
      await opts.onPartitions?.({ assigned: added, revoked, all: [...mine], revokedHosts });
    });
    const done = job
      .catch((err: unknown) => {
        log.error('handing partitions over failed', { topic, err });
      })
      .finally(() => {
        if (assigned === done) handingOver = false;
      });
    assigned = done;
  };

  /** The context of lines released outside a fetched batch (the idle pump, the end of the input,
   * the close): from any partition, no offsets of their own. */
  const UNBATCHED: Omit<IngestBatchContext, 'hosts'> = {
    topic,
    partition: -1,
    firstOffset: '-1',
    lastOffset: '-1',
    isRunning: () => true,
  };

  // the identities handed over in one delivery (deliveries take turns: one set, cleared each
  // time, and one set of arrays, written from 0 each time: their storage stays, it holds numbers)
  const pendingIds = new KeySet();
  const takenKeys: number[] = [];
  const takenH1: number[] = [];
  const takenH2: number[] = [];

  /**
   * Hands released lines to the learners: drops those already taken (dedupe) and dead-letters
   * those too late for their host. Marks lines taken only once the learners took them.
   */
  const deliver = async (released: PendingLine[], ctx: Omit<IngestBatchContext, 'hosts'>): Promise<void> => {
    if (released.length === 0) return;
    const events: KernelEvent[] = [];
    // the lines the learners are given and their identities (lineKey's three numbers, in the
    // stage's arrays: taken[i] is takenKeys[i] …), side by side: no pair, no object per line
    const taken: PendingLine[] = [];
    const dlq: { m: OutgoingMessage; partition: number; offset: string }[] = [];
    const failed: { m: OutgoingMessage; partition: number; offset: string }[] = [];
    const families: Partial<Record<Family, number>> = {};
    const hosts = new Set<string>();
    const pendingWm = new Map<string, number>();
    pendingIds.clear();
    let duplicates = 0;
    let truncated = 0;
    for (const p of released) {
      const key = lineKey(p.host, p.ts, p.line);
      const h1 = keyH1;
      const h2 = keyH2;
      const a = order.hosts.get(p.host);
      const b = pendingWm.get(p.host);
      const wm = a === undefined ? b : b === undefined ? a : Math.max(a, b);
      if (pendingIds.has(key) || order.dedupe.seenKey(key, h1, h2, p.ts, wm)) {
        duplicates++;
        reports.duplicate(p.host);
        continue;
      }
      // late: order.hosts.isLate(p.host, p.ts, pendingWm), on the watermark just read
      if (wm !== undefined && p.ts < wm - order.hosts.allowedLatenessMs) {
        dlq.push({
          m: lateLetter(p, wm!, order.hosts.allowedLatenessMs),
          partition: p.src.partition,
          offset: p.src.offset,
        });
        reports.late(p, wm!);
        continue;
      }
      // the kernel family and fields only now: the lines waiting for their event-time turn did
      // not hold them, and a duplicate or late line never needs them
      try {
        classifyParsed(p.parsed);
      } catch (err) {
        // A bug of ours, not the line's (as a parse error when read): dead-letter it and go on,
        // so no line stops the stage.
        failed.push({
          m: lineLetter(p, `parse-error: ${(err as Error).message}`),
          partition: p.src.partition,
          offset: p.src.offset,
        });
        log.error('line failed to classify', {
          topic: p.src.topic,
          partition: p.src.partition,
          offset: p.src.offset,
          err,
        });
        continue;
      }
      const at = p.parsed.messageAt;
      const mined =
        at >= 0 ? miner.add(p.line, at, at + p.parsed.message.length) : miner.add(p.parsed.message);
      events.push(toKernelEvent(p.parsed, mined, p.cut ? truncatedFlags : NO_FLAGS));
      families[p.parsed.family] = (families[p.parsed.family] ?? 0) + 1;
      hosts.add(p.host);
      if (p.cut) truncated++;
      if (transactional && hostPartitions.get(p.host) !== p.src.partition)
        hostPartitions.set(p.host, p.src.partition);
      pendingIds.add(key);
      if (b === undefined || p.ts > b) pendingWm.set(p.host, p.ts);
      takenKeys[taken.length] = key;
      takenH1[taken.length] = h1;
      takenH2[taken.length] = h2;
      taken.push(p);
    }
    if (events.length > 0) {
      const handed = Date.now();
      for (const p of taken) stageToLearners.record(handed - p.receivedAt);
      await opts.onEvents(events, { ...ctx, hosts: [...hosts] });
    }
    await publishDead(failed.length > 0 ? [...dlq, ...failed] : dlq);
    // The learners took them: from now on they are counted, and a copy is a duplicate.
    settle(released);
    for (const p of taken) order.hosts.admit(p.host, p.ts);
    for (let i = 0; i < taken.length; i++) {
      const p = taken[i]!;
      order.dedupe.rememberKey(p.host, p.ts, takenKeys[i]!, takenH1[i]!, takenH2[i]!, wmOf);
    }
    stats.events += events.length;
    stats.truncated += truncated;
    stats.duplicates += duplicates;
    stats.late += dlq.length;
    if (failed.length) {
      stats.deadLettered += failed.length;
      stats.byReason['parse-error'] = (stats.byReason['parse-error'] ?? 0) + failed.length;
      ingestMetrics.deadLetters.inc({ reason: 'parse-error' }, failed.length);
    }
    if (duplicates) orderMetrics.duplicates.inc({ topic }, duplicates);
    if (dlq.length) {
      orderMetrics.late.inc({ topic }, dlq.length);
      stats.deadLettered += dlq.length;
      stats.byReason.late = (stats.byReason.late ?? 0) + dlq.length;
      ingestMetrics.deadLetters.inc({ reason: 'late' }, dlq.length);
    }
    for (const [f, n] of Object.entries(families) as [Family, number][]) {
      stats.byFamily[f] = (stats.byFamily[f] ?? 0) + n;
      ingestMetrics.events.inc({ family: f }, n);
    }
    if (truncated) {
      stats.byReason.truncated = (stats.byReason.truncated ?? 0) + truncated;
      ingestMetrics.truncated.inc(truncated);
    }
    // at most one line per interval: the first batch with news at once, then the pump's timer
    reports.flush();
    const ev = order.dedupe.evictedEarly;
    if (ev > reportedEvicted) {
      orderMetrics.dedupeEvicted.inc(ev - reportedEvicted);
      reportedEvicted = ev;
    }
  };
  let reportedEvicted = order.dedupe.evictedEarly;

  // Between batches a partition believed read to its end may have got new lines (an unkeyed
  // producer writes to several at once): look at the topic's high watermarks, at most every 100 ms.
  let lastLook = 0;
  const lookAtHighWatermarks = async (): Promise<void> => {
    const t = Date.now();
    if (t - lastLook < 100 || !assignedSet) return;
    lastLook = t;
    try {
      const offsets = await opts.bus.topicOffsets(topic);
      merger.observeHighWatermarks(
        offsets
          .filter((o) => assignedSet!.has(o.partition))
          .map((o) => ({ partition: o.partition, high: BigInt(o.high) })),
      );
    } catch (err) {
      log.debug('could not read the high watermarks; the batches will tell', { topic, err });
    }
  };

  const releaseNow = (): PendingLine[] => {
    const r = merger.release();
    if (r.forced > 0) {
      orderMetrics.forced.inc({ topic }, r.forced);
      reports.forced(r.forced, merger.maxBuffered);
    }
    realign();
    return r.items;
  };

  let draining = false;
  let unkeyed = 0;
  // the parser's options, set per message (not an object per line); the family is read at delivery
  const parseOpts: ParseOptions = { host: '', now: 0, classify: false };
  const onBatch = async (
    batch: BusMessage[],
    bctx: {
      topic: string;
      partition: number;
      isRunning(): boolean;
      highWatermark?: string;
      pause?(): () => void;
    },
  ): Promise<void> => {
    if (assigned) await assigned;
    // fetched before a rebalance took the partition away: its new owner reads it
    if (assignedSet && !assignedSet.has(bctx.partition)) return;
    const lines: PendingLine[] = [];
    const dlq: { m: OutgoingMessage; partition: number; offset: string }[] = [];
    const reasons: Record<string, number> = {};
    let count = 0;
    let bytes = 0;
    const receivedAt = Date.now();
    for (const m of batch) {
      bytes += m.value?.length ?? 0;
      if (m.timestamp > 0) publishToStage.record(receivedAt - m.timestamp);
      const d = decodeValue(m.value, maxLineBytes);
      if (!d.ok) {
        reasons[d.reason] = (reasons[d.reason] ?? 0) + 1;
        dlq.push({ m: dead(m, `${d.reason}: ${d.detail}`), partition: m.partition, offset: m.offset });
        continue;
      }
      const key = m.key && m.key.length > 0 ? m.key.toString('utf8') : '';
      const now = m.timestamp > 0 ? m.timestamp : Date.now();
      const contentType = m.headers[HEADERS.contentType] ?? CONTENT_TYPES.text;
      parseOpts.host = key;
      parseOpts.now = now;
      const offset = Number(m.offset);
      for (let i = 0; i < d.lines.length; i++) {
        count++;
        const line = d.lines[i]!;
        try {
          const parsed = parseLine(line, parseOpts);
          if (parsed.host !== key) unkeyed++;
          outstanding.add(m.partition, offset);
          lines.push({
            ts: parsed.ts,
            host: parsed.host,
            line,
            parsed,
            cut: d.truncated.length > 0 && d.truncated.includes(i),
            keyHost: key,
            src: {
              topic: m.topic,
              partition: m.partition,
              offset: m.offset,
              key: m.key,
              contentType,
              // a value that is this line and nothing else, ASCII (as many characters as bytes):
              // its bytes are the line's UTF-8, made again if it is dead-lettered (the waiting
              // line does not hold the message's buffer)
              raw: d.lines.length === 1 && line.length !== m.value!.length ? m.value : null,
              timestamp: now,
            },
            receivedAt,
          });
        } catch (err) {
          // A bug of ours, not the line's: keep the line (dead letter) and go on.
          reasons['parse-error'] = (reasons['parse-error'] ?? 0) + 1;
          dlq.push({
            m: dead(m, `parse-error: ${(err as Error).message}`),
            partition: m.partition,
            offset: m.offset,
          });
          log.error('line failed to parse', {
            topic: m.topic,
            partition: m.partition,
            offset: m.offset,
            err,
          });
        }
      }
      if (d.truncated.length > 0) {
        dlq.push({
          m: dead(m, `truncated: ${d.truncated.length} line(s) over ${maxLineBytes} bytes were cut`),
          partition: m.partition,
          offset: m.offset,
        });
      }
    }
    const first = batch[0]!.offset;
    const last = batch[batch.length - 1]!.offset;
    // Lines not keyed by their host, read by one of several consumers: the other consumers get
    // the rest of such a host's lines, so no one learns all of it. Say so once (README: Scaling out).
    if (unkeyed > 0 && assignedSet && assignedSet.size < totalPartitions) {
      orderMetrics.unkeyedSplit.inc({ topic }, unkeyed);
      if (!splitWarned) {
        splitWarned = true;
        log.warn(
          'lines not keyed by their host while other consumers share the topic: each learns part of such a host; key by host (publish-logs, kcat -K) or run one virgo learn',
          { topic, partitions: [...assignedSet].sort((a, b) => a - b), of: totalPartitions },
        );
      }
    }
    unkeyed = 0;
    await serial(async () => {
      // A batch read from behind belongs to the replay, also the one that reaches the end: its
      // lines are judged on event time (the learners' clock asks backlog()) until delivered.
      draining = merger.backlog();
      merger.add(bctx.partition, lines, {
        lastOffset: last,
        ...(bctx.highWatermark !== undefined ? { highWatermark: bctx.highWatermark } : {}),
      });
      await lookAtHighWatermarks();
      const released = releaseNow();
      align(bctx.partition, bctx.pause);
      try {
        await deliver(released, {
          topic: bctx.topic,
          partition: bctx.partition,
          firstOffset: first,
          lastOffset: last,
          isRunning: () => bctx.isRunning(),
        });
      } catch (err) {
        // The bus gives this batch again: keep what other batches left waiting, not this one's.
        const mine = new Set(lines);
        merger.putBack(released.filter((p) => !mine.has(p)));
        merger.removeWhere((p) => mine.has(p));
        settle(lines);
        throw err;
      } finally {
        draining = false;
      }
      orderMetrics.buffered.set({ topic }, merger.stats().buffered);
    });
    await publishDead(dlq);
    // Counted once the batch is done: a retried batch is not counted twice.
    stats.messages += batch.length;
    stats.lines += count;
    stats.batches++;
    stats.bytes += bytes;
    for (const [r, n] of Object.entries(reasons)) {
      stats.deadLettered += n;
      stats.byReason[r] = (stats.byReason[r] ?? 0) + n;
      ingestMetrics.deadLetters.inc({ reason: r }, n);
    }
    ingestMetrics.messages.inc(batch.length);
    ingestMetrics.lines.inc(count);
    ingestMetrics.templates.set(miner.size);
    const evicted = miner.evictedCount;
    if (evicted > minerEvicted) ingestMetrics.templatesEvicted.inc(evicted - minerEvicted);
    minerEvicted = evicted;
  };

  // Without a new batch the watermark still moves when a partition goes idle: look regularly.
  let pumpFailures = 0;
  let pumpBusy = false;
  const pump = setInterval(() => {
    reports.flush();
    if (pumpBusy || !assignedSet || merger.stats().buffered === 0) return;
    pumpBusy = true;
    void serial(async () => {
      await lookAtHighWatermarks();
      const released = releaseNow();
      try {
        await deliver(released, UNBATCHED);
        pumpFailures = 0;
      } catch (err) {
        merger.putBack(released);
        if (pumpFailures++ % 50 === 0)
          log.error('handing released lines to the learners failed; retrying', { err });
      }
      orderMetrics.buffered.set({ topic }, merger.stats().buffered);
    }).finally(() => {
      pumpBusy = false;
    });
  }, opts.pumpMs ?? 200);
  pump.unref();

  // The stage is the dead-letter topic's only writer: it creates it (docs/design.md §4).
  // It also creates its input topic when missing, with the partitions of the spec: a first
  // `virgo learn` must not die because no log line was published yet.
  try {
    await opts.bus.ensureTopics([
      topicSpecs().find((t) => t.topic === topic) ?? { topic, partitions: 4 },
      topicSpecs().find((t) => t.topic === dlqTopic) ?? { topic: dlqTopic, partitions: 1 },
    ]);
  } catch (err) {
    if (brokerUnreachable(err)) {
      clearInterval(pump);
      throw err;
    }
    log.warn('could not create the log and dead-letter topics; relying on auto-creation', {
      topic,
      dlqTopic,
      err,
    });
  }
  let sub: Awaited<ReturnType<Bus['subscribe']>>;
  try {
    sub = await opts.bus.subscribe({
      topics: [topic],
      groupId: opts.groupId ?? GROUPS.learners,
      fromBeginning: opts.fromBeginning ?? false,
      maxBatch: opts.maxBatch ?? 2_000,
      maxBytesPerPartition: opts.maxBytesPerPartition ?? 128 * 1024,
      onBatch,
      onAssign,
      commitOffset: (_topic, partition, next) => outstanding.commitOffset(partition, next),
      ...(transactional ? { commits: 'transactions' as const } : {}),
      ...(opts.beforeRejoin ? { beforeRejoin: opts.beforeRejoin } : {}),
    });
  } catch (err) {
    clearInterval(pump);
    throw err;
  }
  log.debug('ingest stage subscribed', { topic, dlqTopic, group: opts.groupId ?? GROUPS.learners });

  const drain = async (timeoutMs = 120_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (assigned) await assigned;
      const offsets = await opts.bus.topicOffsets(topic);
      const behind = offsets.filter(
        (o) =>
          BigInt(o.high) > BigInt(o.low) &&
          !(assignedSet && !assignedSet.has(o.partition)) &&
          !merger.reached(o.partition, BigInt(o.high)),
      );
      if (assignedSet && behind.length === 0) break;
      if (Date.now() > deadline) {
        log.warn('end of input: partitions not read to their end in time; releasing what was read', {
          topic,
          partitions: behind.map((o) => o.partition),
        });
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await serial(async () => {
      const all = merger.releaseAll();
      realign();
      await deliver(all, UNBATCHED);
      orderMetrics.buffered.set({ topic }, 0);
    });
    reports.flush(true);
  };

  return {
    ready: sub.ready,
    miner,
    order,
    backlog: () => draining || merger.backlog(),
    drain,
    exclusive: (fn) => serial(fn),
    positions: () => sub.positions?.() ?? [],
    membership: () => {
      const m = sub.membership?.();
      return m && handingOver ? { ...m, safe: false } : m;
    },
    takeDeadLetters: (positions) => {
      // a letter goes with the commit of an offset past it: the rest waits for a later one
      const at = new Map(positions.map((p) => [p.partition, BigInt(p.offset)]));
      const take: PendingDeadLetter[] = [];
      const keep: PendingDeadLetter[] = [];
      for (const d of pendingDead) (BigInt(d.offset) < (at.get(d.partition) ?? -1n) ? take : keep).push(d);
      pendingDead = keep;
      return take;
    },
    putBackDeadLetters: (letters) => {
      pendingDead = [...letters, ...pendingDead];
    },
    partitionOf: (host) => hostPartitions.get(host),
    setPartitionOf: (host, partition) => void hostPartitions.set(host, partition),
    partitionedHosts: () => new Map(hostPartitions),
    stats: () => ({
      ...stats,
      byReason: { ...stats.byReason },
      byFamily: { ...stats.byFamily },
      templates: miner.size,
      order: order.stats(),
    }),
    close: async (o = {}) => {
      clearInterval(pump);
      await sub.close({
        beforeLeave: async () => {
          await turn;
          await o.beforeLeave?.();
        },
      });
      await turn;
      // Kafka keeps what waits (its offsets were not committed: the next run reads it again);
      // the in-process bus ends with this process, so hand everything over now.
      if (opts.bus.kind === 'memory' && merger.stats().buffered > 0) {
        await serial(() => deliver(merger.releaseAll(), UNBATCHED)).catch((err: unknown) =>
          log.error('could not hand the last waiting lines over', { err }),
        );
      }
      reports.flush(true);
    },
  };
}

/** The dead letter of a line too late for its host: its original bytes, the reason and the times. */
function lateLetter(p: PendingLine, watermark: number, latenessMs: number): OutgoingMessage {
  const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));
  return lineLetter(
    p,
    `late: event time ${iso(p.ts)} is more than ${latenessMs / 1000}s behind host ${p.host}'s watermark ${iso(watermark)}`,
  );
}

/** The dead letter of a waiting line: its original bytes, `error` and where it came from. */
function lineLetter(p: PendingLine, error: string): OutgoingMessage {
  return {
    key: p.src.key,
    value: p.src.raw ?? Buffer.from(p.line, 'utf8'),
    headers: {
      [HEADERS.error]: error,
      [HEADERS.contentType]: p.src.contentType,
      'virgo-source': `${p.src.topic}/${p.src.partition}/${p.src.offset}`,
    },
    timestamp: p.src.timestamp,
  };
}

/** Late, duplicate and early-released lines, logged at most once per interval (processing time). */
class Reports {
  private lastAt = 0;
  private lateN = 0;
  private dupN = 0;
  private forcedN = 0;
  private readonly lateHosts = new Map<string, number>();
  private example: { host: string; ts: string; watermark: string } | undefined;

  constructor(
    private readonly everyMs: number,
    private readonly dlqTopic: string,
    private readonly latenessMs: number,
  ) {}

  late(p: PendingLine, watermark: number): void {
    this.lateN++;
    if (this.lateHosts.size < 1000 || this.lateHosts.has(p.host))
      this.lateHosts.set(p.host, (this.lateHosts.get(p.host) ?? 0) + 1);
    this.example ??= {
      host: p.host,
      ts: new Date(p.ts).toISOString(),
      watermark: new Date(watermark).toISOString(),
    };
  }

  duplicate(_host: string): void {
    this.dupN++;
  }

  forced(n: number, max: number): void {
    this.forcedN += n;
    if (this.forcedN === n) log.warn('reorder buffer full: releasing the oldest lines early', { max });
  }

  /** Logs what accumulated when the interval passed (or now, with `force`). */
  flush(force = false): void {
    if (this.lateN + this.dupN + this.forcedN === 0) return;
    const t = Date.now();
    if (!force && t - this.lastAt < this.everyMs) return;
    this.lastAt = t;
    if (this.lateN > 0) {
      const hosts = [...this.lateHosts].sort((a, b) => b[1] - a[1]).slice(0, 5);
      log.warn('lines arrived too late for their host and were dead-lettered (reason late)', {
        late: this.lateN,
        dlq: this.dlqTopic,
        allowedLatenessSec: this.latenessMs / 1000,
        hosts: Object.fromEntries(hosts),
        example: this.example,
      });
    }
    if (this.dupN > 0) {
      log.info('dropped lines the learners already took (same host, time and text)', {
        duplicates: this.dupN,
      });
    }
    if (this.forcedN > 0) {
      log.warn('lines released before their event-time turn (reorder buffer full)', { forced: this.forcedN });
    }
    this.lateN = 0;
    this.dupN = 0;
    this.forcedN = 0;
    this.lateHosts.clear();
    this.example = undefined;
  }
}
