// The Bus's own record batch codec (bus/kafka-records.ts) plugged into kafkajs's request table, so
// kafkajs keeps what it does well (connections, SASL/SSL, metadata, retries, the consumer group
// protocol, offsets) while the per-message work runs in one pass per batch:
//
// - Produce (v3-v7, one wire layout): a message carrying PACKED holds the already encoded records
//   of one partition. kafkajs groups, partitions and sequences it as the one message it is (its
//   grouping copies the partition's array per message: quadratic in a batch's size), and our
//   encoder writes the batch header, the records and the CRC into the request. A request without
//   PACKED messages is kafkajs's own.
// - Fetch (v11): the response is read by readBatches/decodeRecords into BusMessages, and each
//   partition's records reach kafkajs as ONE message carrying PACKED_FETCH (its offset is the last
//   offset the partition's data covered, control records included, so kafkajs resolves and
//   filters it like the batch it stands for). kafkajs would otherwise build an object and parse
//   two BigInts per record, then filter every record by a third. A partition with aborted
//   transactions, or data in the old message-set format, is left to kafkajs's own decoder, and
//   bus/kafka.ts reads both forms.
//
// - Fetch prefetch: kafkajs's fetch loop is serial (fetch, hand the batches to eachBatch, wait for
//   it, fetch again), so the consumer sat idle for a round trip per fetch while a backlog waited
//   (librdkafka prefetches). When a fetch returned records and its partitions hold more (a
//   backlog), the fetch that follows it (the same request from the offsets just past what it
//   returned) is sent at once, while the batches are handled; its records are decoded only when
//   it is used. It is only a guess: kafkajs's next request is served from it only when it asks for
//   exactly those offsets (a subset of its partitions, e.g. one paused meanwhile, gets the
//   response filtered to them); any other request (a seek, a rebalance, a partition resumed, a
//   batch not handled to its end) discards it and is sent as usual. Fetch requests carry no
//   session (kafkajs sends full fetches), so a discarded one changes nothing on the broker.
//   VIRGO_KAFKA_PREFETCH=off turns it off (the codec stays).
// - Topic offsets: kafkajs's admin asks a topic's latest offsets, then its earliest, one round
//   trip after the other; `topicOffsetsReader` asks both at once on a cluster client of its own.
//
// This reaches into kafkajs's modules (src/protocol/...), so it is installed only on the kafkajs
// version it was written against; any other version runs kafkajs's own codec (slower, same
// behaviour). VIRGO_KAFKAJS_CODEC=kafkajs forces that too. kafkajs is imported by bus/ only.
import { createRequire } from 'node:module';
import { createLogger } from '../runtime/log.ts';
import {
  ATTR_CODEC,
  ATTR_CONTROL,
  BATCH_HEADER_BYTES,
  decodeRecords,
  type EncodedRecords,
  readBatches,
  writeRecordBatch,
} from './kafka-records.ts';
import type { BusMessage } from './types.ts';

const log = createLogger('bus.kafka');
const require = createRequire(import.meta.url);

/** The kafkajs release whose internals this module was written against (its last release). */
export const KAFKAJS_VERSION = '2.2.4';

/** On a pseudo-message handed to kafkajs's producer: one partition's encoded records. */
export const PACKED = Symbol('virgo.packedRecords');
/** On a pseudo-message kafkajs's consumer hands to eachBatch: the partition's BusMessages. */
export const PACKED_FETCH = Symbol('virgo.packedFetch');

export interface PackedRecords {
  encoded: EncodedRecords;
  /** the records as they go on the wire: `encoded.records`, or compressed with `codec` */
  payload: Buffer;
  codec: number;
}

export interface PackedFetch {
  messages: BusMessage[];
}

// --- the parts of kafkajs used here (CommonJS, untyped) ---
interface KjsEncoder {
  buf: Buffer;
  offset: number;
}
type EncoderCtor = new (size?: number) => KjsEncoder;
interface KjsRequest {
  request: { encode: () => Promise<KjsEncoder> };
  response: { decode: (b: Buffer) => Promise<unknown>; parse: (d: unknown) => Promise<unknown> };
}
type Protocol = (opts: { version: number }) => ((args: Record<string, unknown>) => KjsRequest) | undefined;
interface Definition {
  versions: string[];
  protocol: Protocol;
}
interface Codec {
  decompress(b: Buffer): Promise<Buffer>;
}

interface ProduceArgs {
  acks: number;
  timeout: number;
  compression?: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  topicData: {
    topic: string;
    partitions: { partition: number; firstSequence?: number; messages: Record<symbol, unknown>[] }[];
  }[];
}

interface FetchArgs {
  topics: { topic: string; partitions: { partition: number; fetchOffset: string }[] }[];
}

let installed: boolean | undefined;

/** Installs the codec into kafkajs once; false when this kafkajs is not the one it fits. */
export function installFastPath(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  if (process.env.VIRGO_KAFKAJS_CODEC === 'kafkajs') {
    log.info('VIRGO_KAFKAJS_CODEC=kafkajs: using kafkajs own record codec');
    return false;
  }
  try {
    const version = (require('kafkajs/package.json') as { version: string }).version;
    if (version !== KAFKAJS_VERSION) {
      log.warn('kafkajs is not the version the fast record codec fits; using kafkajs own codec', {
        version,
        fits: KAFKAJS_VERSION,
      });
      return false;
    }
    const { requests } = require('kafkajs/src/protocol/requests/index.js') as {
      requests: Record<string, Definition>;
    };
    const Encoder = require('kafkajs/src/protocol/encoder.js') as EncoderCtor;
    const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => unknown;
    const decodeMessages = require('kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js') as (
      d: unknown,
    ) => Promise<unknown[]>;
    const { lookupCodecByAttributes } = require('kafkajs/src/protocol/message/compression/index.js') as {
      lookupCodecByAttributes: (attributes: number) => Codec | null;
    };
    const produce = requests.Produce!;
    const fetch = requests.Fetch!;
    requests.Produce = {
      versions: produce.versions,
      protocol: ({ version }) => {
        const stock = produce.protocol({ version });
        if (!stock || version < 3 || version > 7) return stock;
        return (args) => {
          const r = stock(args);
          const a = args as unknown as ProduceArgs;
          if (isPacked(a)) r.request.encode = async () => encodeProduce(a, Encoder);
          return r;
        };
      },
    };
    requests.Fetch = {
      versions: fetch.versions,
      protocol: ({ version }) => {
        const stock = fetch.protocol({ version });
        if (!stock || version !== 11) return stock;
        return (args) => {
          const r = stock(args);
          const offsets = fetchOffsets(args as unknown as FetchArgs);
          // a prefetch's records are decoded when it is used (a dropped one costs no decode)
          const lazy = decodeLater;
          r.response = {
            decode: (raw) =>
              decodeFetchV11(
                raw,
                offsets,
                lookupCodecByAttributes,
                (b) => decodeMessages(new Decoder(b)),
                lazy,
              ),
            parse: r.response.parse,
          };
          return r;
        };
      },
    };
    if (process.env.VIRGO_KAFKA_PREFETCH !== 'off') {
      const Broker = require('kafkajs/src/broker/index.js') as { prototype: BrokerProto };
      Broker.prototype.fetch = prefetching(Broker.prototype.fetch);
    }
    installed = true;
  } catch (err) {
    log.warn('could not install the fast record codec; using kafkajs own codec', { err });
  }
  return installed;
}

function isPacked(a: ProduceArgs): boolean {
  for (const t of a.topicData)
    for (const p of t.partitions) if (p.messages.length !== 1 || !p.messages[0]![PACKED]) return false;
  return a.topicData.length > 0;
}

/** Produce request v3-v7: transactional_id acks timeout [topic [partition records]] */
function encodeProduce(a: ProduceArgs, Encoder: EncoderCtor): KjsEncoder {
  const txn = a.transactionalId ?? null;
  const producerId = BigInt(String(a.producerId ?? -1));
  if (producerId !== -1n || txn !== null)
    // PACKED carries one message per partition: sequence numbers would count it as one record
    throw new Error('packed records cannot go through an idempotent or transactional producer');
  let size = 2 + (txn === null ? 0 : Buffer.byteLength(txn)) + 2 + 4 + 4;
  for (const t of a.topicData) {
    size += 2 + Buffer.byteLength(t.topic) + 4;
    for (const p of t.partitions) {
      const packed = p.messages[0]![PACKED] as PackedRecords;
      if ((a.compression ?? 0) !== packed.codec)
        throw new Error(`records packed with codec ${packed.codec}, request asks ${a.compression ?? 0}`);
      size += 4 + 4 + BATCH_HEADER_BYTES + packed.payload.length;
    }
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  if (txn === null) o = out.writeInt16BE(-1, o);
  else {
    o = out.writeInt16BE(Buffer.byteLength(txn), o);
    o += out.write(txn, o, 'utf8');
  }
  o = out.writeInt16BE(a.acks, o);
  o = out.writeInt32BE(a.timeout, o);
  o = out.writeInt32BE(a.topicData.length, o);
  for (const t of a.topicData) {
    o = out.writeInt16BE(Buffer.byteLength(t.topic), o);
    o += out.write(t.topic, o, 'utf8');
    o = out.writeInt32BE(t.partitions.length, o);
    for (const p of t.partitions) {
      const { encoded, payload, codec } = p.messages[0]![PACKED] as PackedRecords;
      o = out.writeInt32BE(p.partition, o);
      o = out.writeInt32BE(BATCH_HEADER_BYTES + payload.length, o);
      o = writeRecordBatch(out, o, encoded, payload, {
        codec,
        transactional: false,
        producerId,
        producerEpoch: a.producerEpoch ?? 0,
        baseSequence: p.firstSequence ?? 0,
      });
    }
  }
  const enc = new Encoder(0);
  enc.buf = out;
  enc.offset = o;
  return enc;
}

function fetchOffsets(a: FetchArgs): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of a.topics)
    for (const p of t.partitions) m.set(`${t.topic}\0${p.partition}`, Number(p.fetchOffset));
  return m;
}

/**
 * Fetch response v11: throttle_time_ms error_code session_id [topic [partition error_code
 * high_watermark last_stable_offset log_start_offset [aborted_transactions]
 * preferred_read_replica records]], into the structure kafkajs's own decoder returns.
 */
async function decodeFetchV11(
  raw: Buffer,
  offsets: Map<string, number>,
  codecOf: (attributes: number) => Codec | null,
  stockMessages: (sizeAndRecords: Buffer) => Promise<unknown[]>,
  lazy = false,
): Promise<unknown> {
  let o = 0;
  const clientSideThrottleTime = raw.readInt32BE(o);
  const errorCode = raw.readInt16BE(o + 4);
  const sessionId = raw.readInt32BE(o + 6);
  o += 10;
  const topics = raw.readInt32BE(o);
  o += 4;
  const responses = [];
  for (let t = 0; t < topics; t++) {
    const tl = raw.readInt16BE(o);
    const topicName = raw.toString('utf8', o + 2, o + 2 + tl);
    o += 2 + tl;
    const count = raw.readInt32BE(o);
    o += 4;
    const partitions = [];
    for (let i = 0; i < count; i++) {
      const partition = raw.readInt32BE(o);
      const pErr = raw.readInt16BE(o + 4);
      const highWatermark = raw.readBigInt64BE(o + 6).toString();
      const lastStableOffset = raw.readBigInt64BE(o + 14).toString();
      const lastStartOffset = raw.readBigInt64BE(o + 22).toString();
      o += 30;
      const nAborted = raw.readInt32BE(o);
      o += 4;
      const abortedTransactions = [];
      for (let k = 0; k < nAborted; k++) {
        abortedTransactions.push({
          producerId: raw.readBigInt64BE(o).toString(),
          firstOffset: raw.readBigInt64BE(o + 8).toString(),
        });
        o += 16;
      }
      const preferredReadReplica = raw.readInt32BE(o);
      const size = raw.readInt32BE(o + 4);
      const recStart = o + 8;
      const recEnd = recStart + Math.max(0, size);
      let messages: unknown[] = [];
      let later: (() => Promise<unknown[]>) | undefined;
      if (size > 0) {
        const minOffset = offsets.get(`${topicName}\0${partition}`) ?? 0;
        const sizeAt = o + 4;
        const records = async () => {
          const packed =
            abortedTransactions.length === 0
              ? await packPartition(raw, recStart, recEnd, topicName, partition, minOffset, codecOf)
              : null;
          return packed ?? (await stockMessages(raw.subarray(sizeAt, recEnd)));
        };
        if (lazy) later = records;
        else messages = await records();
      }
      o = recEnd;
      partitions.push({
        ...(later ? { [DECODE_LATER]: later } : {}),
        partition,
        errorCode: pErr,
        highWatermark,
        lastStableOffset,
        lastStartOffset,
        abortedTransactions,
        preferredReadReplica,
        messages,
      });
    }
    responses.push({ topicName, partitions });
  }
  return { throttleTime: 0, clientSideThrottleTime, errorCode, sessionId, responses };
}

/** One partition's record batches as one kafkajs message holding its BusMessages, or null. */
async function packPartition(
  raw: Buffer,
  start: number,
  end: number,
  topic: string,
  partition: number,
  minOffset: number,
  codecOf: (attributes: number) => Codec | null,
): Promise<unknown[] | null> {
  const batches = readBatches(raw, start, end);
  if (!batches) return null;
  if (batches.length === 0) return [];
  const messages: BusMessage[] = [];
  for (const b of batches) {
    if (b.attributes & ATTR_CONTROL || b.lastOffset < minOffset) continue;
    if ((b.attributes & ATTR_CODEC) === 0) {
      decodeRecords(raw, b.start, b.end, b, topic, partition, minOffset, messages);
    } else {
      const codec = codecOf(b.attributes);
      if (!codec) return null;
      const plain = await codec.decompress(raw.subarray(b.start, b.end));
      decodeRecords(plain, 0, plain.length, b, topic, partition, minOffset, messages);
    }
  }
  const last = batches[batches.length - 1]!;
  return [
    {
      magicByte: 2,
      attributes: 0,
      timestamp: String(last.maxTimestamp),
      offset: String(last.lastOffset),
      key: null,
      value: null,
      headers: {},
      isControlRecord: false,
      batchContext: {},
      [PACKED_FETCH]: { messages } satisfies PackedFetch,
    },
  ];
}

// --- fetch prefetch ---

interface FetchRequestArgs {
  maxWaitTime?: number;
  minBytes?: number;
  maxBytes?: number;
  isolationLevel?: number;
  rackId?: string;
  topics: { topic: string; partitions: { partition: number; fetchOffset: string; maxBytes?: number }[] }[];
}
interface FetchedPartition {
  partition: number;
  highWatermark: string;
  lastStableOffset: string;
  messages: { offset: string; [PACKED_FETCH]?: PackedFetch }[];
  [DECODE_LATER]?: () => Promise<FetchedPartition['messages']>;
}

/** On a partition of a prefetched response: decodes its records (set while sending a prefetch). */
const DECODE_LATER = Symbol('virgo.decodeLater');
let decodeLater = false;

/** Decodes the records of a prefetched response's partitions, now that it is used. */
async function decodeDeferred(response: FetchResponse): Promise<void> {
  for (const r of response.responses)
    for (const p of r.partitions) {
      const later = p[DECODE_LATER];
      if (!later) continue;
      p.messages = await later();
      delete p[DECODE_LATER];
    }
}
interface FetchResponse {
  responses: { topicName: string; partitions: FetchedPartition[] }[];
  [k: string]: unknown;
}
type BrokerFetch = (this: object, args: FetchRequestArgs) => Promise<FetchResponse>;
interface BrokerProto {
  fetch: BrokerFetch;
}
interface Prefetched {
  args: FetchRequestArgs;
  /** topic\0partition -> the fetch offset it was sent with */
  offsets: Map<string, string>;
  response: Promise<FetchResponse | undefined>;
}

/** How often the next fetch was served by the prefetch, or discarded it (bench, tests). */
export const prefetchStats = { sent: 0, used: 0, discarded: 0 };

const pending = new WeakMap<object, Prefetched>();

function sameShape(a: FetchRequestArgs, b: FetchRequestArgs): boolean {
  return (
    a.maxWaitTime === b.maxWaitTime &&
    a.minBytes === b.minBytes &&
    a.maxBytes === b.maxBytes &&
    a.isolationLevel === b.isolationLevel &&
    a.rackId === b.rackId
  );
}

/** The prefetched request covers `args`: same settings, each partition asked at the same offset. */
function covers(pre: Prefetched, args: FetchRequestArgs): boolean {
  if (!sameShape(pre.args, args)) return false;
  for (const t of args.topics)
    for (const p of t.partitions)
      if (pre.offsets.get(`${t.topic}\0${p.partition}`) !== p.fetchOffset) return false;
  return true;
}

/** `response` with only the partitions `args` asked for. */
function only(response: FetchResponse, args: FetchRequestArgs, pre: Prefetched): FetchResponse {
  let asked = 0;
  for (const t of args.topics) asked += t.partitions.length;
  if (asked === pre.offsets.size) return response;
  const want = new Set<string>();
  for (const t of args.topics) for (const p of t.partitions) want.add(`${t.topic}\0${p.partition}`);
  return {
    ...response,
    responses: response.responses
      .map((r) => ({
        ...r,
        partitions: r.partitions.filter((p) => want.has(`${r.topicName}\0${p.partition}`)),
      }))
      .filter((r) => r.partitions.length > 0),
  };
}

/**
 * The request kafkajs sends next if every partition's batch is handled to its end: each partition
 * from the offset after the packed message's (the last offset the response covered), one that
 * returned nothing from the same offset; undefined when no partition has more to read than the
 * response held, or a partition came through kafkajs's own decoder (its next offset is not known
 * here).
 */
function nextRequest(args: FetchRequestArgs, response: FetchResponse): FetchRequestArgs | undefined {
  const got = new Map<string, FetchedPartition>();
  for (const r of response.responses)
    for (const p of r.partitions) got.set(`${r.topicName}\0${p.partition}`, p);
  let behind = false;
  const topics = args.topics.map((t) => ({
    topic: t.topic,
    partitions: t.partitions.map((p) => {
      const data = got.get(`${t.topic}\0${p.partition}`);
      const first = data?.messages[0];
      if (!data || !first) return p;
      if (data.messages.length !== 1 || !first[PACKED_FETCH]) return undefined;
      const next = BigInt(first.offset) + 1n;
      // more than this response held was there to read (a backlog): the next fetch has records
      // at once. A consumer that caught up is left alone: its next fetch would wait for new
      // records, and sent early it would come back with fewer of them (more, smaller fetches).
      const lso = BigInt(data.lastStableOffset);
      if ((lso >= 0n ? lso : BigInt(data.highWatermark)) > next) behind = true;
      return { ...p, fetchOffset: next.toString() };
    }),
  }));
  if (!behind) return undefined;
  for (const t of topics) if (t.partitions.some((p) => p === undefined)) return undefined;
  return { ...args, topics: topics as FetchRequestArgs['topics'] };
}

function prefetching(fetch: BrokerFetch): BrokerFetch {
  return async function (this: object, args: FetchRequestArgs): Promise<FetchResponse> {
    const pre = pending.get(this);
    pending.delete(this);
    let response: FetchResponse | undefined;
    if (pre && covers(pre, args)) {
      const r = await pre.response;
      if (r) {
        response = only(r, args, pre);
        try {
          await decodeDeferred(response);
          prefetchStats.used++;
        } catch {
          // records it cannot decode: kafkajs's own request meets the same, and says so
          response = undefined;
        }
      }
    } else if (pre) prefetchStats.discarded++;
    // no prefetch, another request, or the prefetch failed: this one is sent as kafkajs asked
    response ??= await fetch.call(this, args);
    const next = nextRequest(args, response);
    if (next) {
      const offsets = new Map<string, string>();
      for (const t of next.topics)
        for (const p of t.partitions) offsets.set(`${t.topic}\0${p.partition}`, p.fetchOffset);
      prefetchStats.sent++;
      // Broker.fetch builds the request before its first await: the flag reaches it, and only it
      decodeLater = true;
      let sent: Promise<FetchResponse>;
      try {
        sent = fetch.call(this, next);
      } finally {
        decodeLater = false;
      }
      // a failure is kafkajs's to see on the request it sends itself (sent again then)
      pending.set(this, { args: next, offsets, response: sent.catch(() => undefined) });
    }
    return response;
  };
}

// --- topic offsets in one round trip ---

interface KjsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findTopicPartitionMetadata(topic: string): { partitionId: number }[];
  fetchTopicsOffset(
    topics: { topic: string; fromBeginning: boolean; partitions: { partition: number }[] }[],
  ): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>;
}

export interface TopicOffsetsReader {
  /** per partition the earliest and the latest (last stable) offset, by partition number */
  read(topic: string): Promise<{ partition: number; low: string; high: string }[]>;
  close(): Promise<void>;
}

/**
 * Reads topic offsets with both ListOffsets requests in flight together (kafkajs's admin sends
 * the second after the first returned); undefined where the fast path is not installed. Errors
 * are kafkajs's (the caller retries the retriable ones); metadata is refreshed after one.
 */
export function topicOffsetsReader(kafka: object): TopicOffsetsReader | undefined {
  if (!installFastPath()) return undefined;
  const create = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === 'private:Kafka:createCluster',
  );
  if (!create) return undefined;
  const factory = (kafka as Record<symbol, unknown>)[create];
  if (typeof factory !== 'function') return undefined;
  const cluster = factory({ allowAutoTopicCreation: false }) as KjsCluster;
  let connected: Promise<void> | undefined;
  return {
    async read(topic) {
      connected ??= cluster.connect().catch((err: unknown) => {
        connected = undefined;
        throw err;
      });
      await connected;
      try {
        await cluster.addTargetTopic(topic);
        await cluster.refreshMetadataIfNecessary();
        const partitions = cluster
          .findTopicPartitionMetadata(topic)
          .map((p) => ({ partition: p.partitionId }));
        const [high, low] = await Promise.all(
          [false, true].map((fromBeginning) =>
            cluster.fetchTopicsOffset([{ topic, fromBeginning, partitions }]),
          ),
        );
        const lows = new Map((low![0]?.partitions ?? []).map((p) => [p.partition, p.offset]));
        return (high![0]?.partitions ?? []).map((p) => ({
          partition: p.partition,
          high: p.offset,
          low: lows.get(p.partition) ?? '0',
        }));
      } catch (err) {
        await cluster.refreshMetadata().catch(() => {});
        throw err;
      }
    },
    close: async () => {
      const was = connected;
      connected = undefined;
      if (was) await was.then(() => cluster.disconnect()).catch(() => {});
    },
  };
}
