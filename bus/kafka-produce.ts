// How bus/kafka.ts turns one publish call into produce requests on the fast path
// (bus/kafka-fastpath.ts): every message's partition in one pass (explicit, else murmur2 of the
// key as every Kafka producer computes it, else round-robin over the partitions that have a
// leader), a stable counting sort by partition (so order within a partition is the call's order),
// and per partition record batches of at most `maxBatchBytes`, encoded (and compressed) only when
// their turn comes.
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { PACKED, type PackedRecords } from './kafka-fastpath.ts';
import { encodeRecords, partitionOfKey } from './kafka-records.ts';
import { BusError, type OutgoingMessage } from './types.ts';

const gzip = promisify(gzipCb);

/** What the producer last knew of a topic's partitions (kafkajs's metadata, seen through its partitioner). */
export interface TopicPartitions {
  count: number;
  /** partitions with a leader, for keyless messages */
  available: number[];
  /** string key -> partition, for this partition count (bounded) */
  keyCache: Map<string, number>;
  roundRobin: number;
}

const KEY_CACHE_MAX = 10_000;

/**
 * Each message's partition and the message indexes grouped by partition, in call order within
 * each: `order[start[p] .. start[p + 1])` are partition p's messages.
 */
export function planPartitions(
  topic: string,
  messages: readonly OutgoingMessage[],
  t: TopicPartitions,
): { order: Int32Array; start: Int32Array } {
  const n = messages.length;
  const part = new Int32Array(n);
  const counts = new Int32Array(t.count + 1);
  let lastKey: unknown;
  let lastPart = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    let p: number;
    if (m.partition !== undefined) {
      p = m.partition;
      if (!Number.isInteger(p) || p < 0 || p >= t.count)
        throw new BusError('invalid', `topic ${topic} has no partition ${p} (it has ${t.count})`);
    } else if (m.key !== null && m.key !== undefined) {
      const k = m.key;
      if (k === lastKey) p = lastPart;
      else if (typeof k === 'string') {
        let c = t.keyCache.get(k);
        if (c === undefined) {
          c = partitionOfKey(Buffer.from(k, 'utf8'), t.count);
          if (t.keyCache.size >= KEY_CACHE_MAX) t.keyCache.clear();
          t.keyCache.set(k, c);
        }
        p = c;
      } else p = partitionOfKey(k, t.count);
      lastKey = k;
      lastPart = p;
    } else {
      const pool = t.available.length > 0 ? t.available : null;
      t.roundRobin = (t.roundRobin + 1) & 0x7fffffff;
      p = pool ? pool[t.roundRobin % pool.length]! : t.roundRobin % t.count;
    }
    part[i] = p;
    counts[p + 1]!++;
  }
  const start = new Int32Array(t.count + 1);
  for (let p = 0; p < t.count; p++) start[p + 1] = start[p]! + counts[p + 1]!;
  const fill = start.slice(0, t.count);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[fill[part[i]!]!++] = i;
  return { order, start };
}

/**
 * The call's produce rounds: round r holds the r-th batch of every partition that has one, as
 * pseudo-messages kafkajs's producer carries (one per partition). Rounds go out one after the
 * other, so a partition's batches reach the broker in order even when one is retried.
 */
export async function* packedRounds(
  messages: readonly OutgoingMessage[],
  plan: { order: Int32Array; start: Int32Array },
  codec: 0 | 1,
  maxBatchBytes: number,
): AsyncGenerator<{ partition: number; key: null; value: null; [PACKED]: PackedRecords }[]> {
  const { order, start } = plan;
  const partitions = start.length - 1;
  const next = start.slice(0, partitions);
  const now = Date.now();
  for (;;) {
    const round: { partition: number; key: null; value: null; [PACKED]: PackedRecords }[] = [];
    for (let p = 0; p < partitions; p++) {
      const from = next[p]!;
      const end = start[p + 1]!;
      if (from >= end) continue;
      const encoded = encodeRecords(messages, order, from, end, now, maxBatchBytes);
      next[p] = from + encoded.count;
      const payload = codec === 1 ? await gzip(encoded.records) : encoded.records;
      round.push({ partition: p, key: null, value: null, [PACKED]: { encoded, payload, codec } });
    }
    if (round.length === 0) return;
    yield round;
  }
}
