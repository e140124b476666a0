// Kafka's record batch (magic 2, the only format Kafka 4 reads and writes) encoded and decoded in
// one pass over one buffer, for bus/kafka.ts. kafkajs does the same work per record with an object,
// a zero-filled 512-byte buffer, a Buffer per varint and BigInt arithmetic per offset and timestamp
// (see bus/README.md, "Speed"); at 100-byte messages that, not the network, bounds its throughput.
// Wire format: https://kafka.apache.org/documentation/#recordbatch
import type { BusMessage, Headers, OutgoingMessage } from './types.ts';

// ---------------------------------------------------------------------------------------------
// CRC-32C (Castagnoli), the checksum of a record batch: slice-by-16 over aligned 32-bit words
// (2.5x kafkajs's byte-at-a-time table on a 512 KiB batch), bytes at the unaligned ends.

const CRC = (() => {
  const t = new Int32Array(16 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 16; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/** Words are read in the machine's byte order, which the tables assume is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = CRC;
  let crc = -1;
  let i = start;
  if (LITTLE_ENDIAN) {
    while (i < end && ((buf.byteOffset + i) & 3) !== 0) crc = t[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8);
    const n = (end - i) >>> 4;
    if (n > 0) {
      const w = new Int32Array(buf.buffer, buf.byteOffset + i, n * 4);
      for (let j = 0; j < w.length; j += 4) {
        const a = w[j]! ^ crc;
        const b = w[j + 1]!;
        const c = w[j + 2]!;
        const d = w[j + 3]!;
        crc =
          t[3840 + (a & 0xff)]! ^
          t[3584 + ((a >>> 8) & 0xff)]! ^
          t[3328 + ((a >>> 16) & 0xff)]! ^
          t[3072 + (a >>> 24)]! ^
          t[2816 + (b & 0xff)]! ^
          t[2560 + ((b >>> 8) & 0xff)]! ^
          t[2304 + ((b >>> 16) & 0xff)]! ^
          t[2048 + (b >>> 24)]! ^
          t[1792 + (c & 0xff)]! ^
          t[1536 + ((c >>> 8) & 0xff)]! ^
          t[1280 + ((c >>> 16) & 0xff)]! ^
          t[1024 + (c >>> 24)]! ^
          t[768 + (d & 0xff)]! ^
          t[512 + ((d >>> 8) & 0xff)]! ^
          t[256 + ((d >>> 16) & 0xff)]! ^
          t[d >>> 24]!;
      }
      i += n * 16;
    }
  }
  for (; i < end; i++) crc = t[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Partitioning: Kafka's murmur2 (the Java client's and kafkajs's DefaultPartitioner's), so a key
// lands on the partition every other Kafka producer puts it on.

const M = 0x5bd1e995;

export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i << 2;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & ~3;
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[tail + 2]! << 16;
    if (rest >= 2) h ^= data[tail + 1]! << 8;
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a key among `partitions`: (murmur2(key) & 0x7fffffff) % partitions. */
export function partitionOfKey(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

// ---------------------------------------------------------------------------------------------
// Varints (zigzag, as Kafka's records use them). Values here are never negative except -1 for a
// null key or value, so the zigzag form of n >= 0 is 2n and of -1 is 1.

function sizeUVar(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 5;
  for (v = Math.floor(v / 0x800000000); v > 0; v = Math.floor(v / 0x80)) n++;
  return n;
}

function writeUVar(buf: Uint8Array, off: number, v: number): number {
  if (v < 0x80000000) {
    while (v > 0x7f) {
      buf[off++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
  } else {
    while (v > 0x7f) {
      buf[off++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
  }
  buf[off++] = v;
  return off;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Records of one partition, back to back as they follow a batch header (not compressed). */
export interface EncodedRecords {
  records: Buffer;
  count: number;
  firstTimestamp: number;
  maxTimestamp: number;
}

const EMPTY_HEADERS: Buffer = Buffer.from([0]);

/** The headers part of a record: count, then each key and value with its length. */
function encodeHeaders(h: Headers | undefined): Buffer {
  if (!h) return EMPTY_HEADERS;
  const keys = Object.keys(h);
  if (keys.length === 0) return EMPTY_HEADERS;
  let size = sizeUVar(keys.length * 2);
  const lens: number[] = [];
  for (const k of keys) {
    const kl = Buffer.byteLength(k);
    const vl = Buffer.byteLength(h[k]!);
    lens.push(kl, vl);
    size += sizeUVar(kl * 2) + kl + sizeUVar(vl * 2) + vl;
  }
  const out = Buffer.allocUnsafe(size);
  let o = writeUVar(out, 0, keys.length * 2);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    o = writeUVar(out, o, lens[2 * i]! * 2);
    o += out.write(k, o, 'utf8');
    o = writeUVar(out, o, lens[2 * i + 1]! * 2);
    o += out.write(h[k]!, o, 'utf8');
  }
  return out;
}

// Node's own per-encoding writers (on Buffer.prototype since Node 0.x, undocumented): write()
// dispatches on its encoding argument per call, and an ASCII string written as Latin-1 is a copy.
interface RawWriters {
  latin1Write?: (s: string, offset: number, length: number) => number;
  utf8Write?: (s: string, offset: number, length: number) => number;
}
const RAW = Buffer.prototype as RawWriters;
const latin1Write = RAW.latin1Write;
const utf8Write = RAW.utf8Write;

/** Writes `s`, whose UTF-8 length is `bytes`, at `out[o]`; ASCII (bytes === length) as Latin-1. */
function writeString(out: Buffer, s: string, o: number, bytes: number): number {
  if (bytes === s.length && latin1Write) return latin1Write.call(out, s, o, bytes);
  if (utf8Write) return utf8Write.call(out, s, o, bytes);
  return out.write(s, o, bytes, 'utf8');
}

// Scratch space for the sizes measured before writing, grown on demand and kept.
let scratch = new Float64Array(1024);

/**
 * Encodes messages `msgs[idx[j]]` for j from `from` (or `msgs[j]` when `idx` is null) as the
 * records of one batch, as many as fit in `maxBytes` (at least one) and no further than `to`.
 * Strings are written straight into the batch (no Buffer per value); one headers object met on
 * consecutive messages is encoded once; a message without a timestamp gets `now`.
 */
export function encodeRecords(
  msgs: readonly OutgoingMessage[],
  idx: Int32Array | null,
  from: number,
  to: number,
  now: number,
  maxBytes = Number.POSITIVE_INFINITY,
): EncodedRecords {
  if (scratch.length < (to - from) * 4) scratch = new Float64Array((to - from) * 4);
  const s = scratch;
  // pass 1: key, value and headers sizes, where the batch ends, its timestamp range
  let first = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let lastHeaders: Headers | undefined;
  let lastHeadersBuf = EMPTY_HEADERS;
  let estimate = 0;
  let end = from;
  for (let n = 0; end < to; end++, n++) {
    const m = msgs[idx ? idx[end]! : end]!;
    const k = m.key;
    const v = m.value;
    const kl = k === null || k === undefined ? -1 : typeof k === 'string' ? Buffer.byteLength(k) : k.length;
    const vl = v === null || v === undefined ? -1 : typeof v === 'string' ? Buffer.byteLength(v) : v.length;
    if (m.headers !== lastHeaders) {
      lastHeaders = m.headers;
      lastHeadersBuf = encodeHeaders(m.headers);
    }
    // 1 attributes byte, then the lengths' varints (5 bytes at most each; the timestamp delta 10)
    const part =
      1 + (kl < 0 ? 1 : sizeUVar(kl * 2) + kl) + (vl < 0 ? 1 : sizeUVar(vl * 2) + vl) + lastHeadersBuf.length;
    if (n > 0 && estimate + part + 20 > maxBytes) break;
    estimate += part + 20;
    const t = m.timestamp ?? now;
    if (t < first) first = t;
    if (t > max) max = t;
    s[4 * n] = kl;
    s[4 * n + 1] = vl;
    s[4 * n + 2] = part;
  }
  const count = end - from;
  // pass 2: each record's exact size, with its timestamp and offset deltas
  let total = 0;
  for (let j = from, n = 0; j < end; j++, n++) {
    const td = (msgs[idx ? idx[j]! : j]!.timestamp ?? now) - first;
    const body = s[4 * n + 2]! + sizeUVar(td * 2) + sizeUVar(n * 2);
    s[4 * n + 2] = body;
    s[4 * n + 3] = td;
    total += sizeUVar(body * 2) + body;
  }
  // pass 3: write
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  lastHeaders = undefined;
  lastHeadersBuf = EMPTY_HEADERS;
  for (let j = from, n = 0; j < end; j++, n++) {
    const m = msgs[idx ? idx[j]! : j]!;
    const kl = s[4 * n]!;
    const vl = s[4 * n + 1]!;
    o = writeUVar(out, o, s[4 * n + 2]! * 2);
    out[o++] = 0; // record attributes: unused
    o = writeUVar(out, o, s[4 * n + 3]! * 2);
    o = writeUVar(out, o, n * 2);
    if (kl < 0) out[o++] = 1;
    else {
      o = writeUVar(out, o, kl * 2);
      const k = m.key!;
      if (typeof k === 'string') o += writeString(out, k, o, kl);
      else o += k.copy(out, o);
    }
    if (vl < 0) out[o++] = 1;
    else {
      o = writeUVar(out, o, vl * 2);
      const v = m.value!;
      if (typeof v === 'string') o += writeString(out, v, o, vl);
      else o += v.copy(out, o);
    }
    if (m.headers !== lastHeaders) {
      lastHeaders = m.headers;
      lastHeadersBuf = encodeHeaders(m.headers);
    }
    if (lastHeadersBuf.length === 1) out[o++] = 0;
    else o += lastHeadersBuf.copy(out, o);
  }
  if (o !== total) throw new Error(`record encoding wrote ${o} bytes, measured ${total}`);
  return { records: out, count, firstTimestamp: first, maxTimestamp: max };
}

/** Bytes of a record batch before its records. */
export const BATCH_HEADER_BYTES = 61;

/** Record batch attributes */
export const ATTR_CODEC = 0x07;
export const ATTR_LOG_APPEND_TIME = 0x08;
export const ATTR_TRANSACTIONAL = 0x10;
export const ATTR_CONTROL = 0x20;

export interface BatchHeader {
  /** compression codec (attributes & 7): 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd */
  codec: number;
  transactional: boolean;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
}

/**
 * Writes a whole record batch at `out[o]` (base offset 0: the broker assigns offsets) around
 * `payload`, the encoded records or, with a codec, their compressed form; returns where it ends.
 */
export function writeRecordBatch(
  out: Buffer,
  o: number,
  r: EncodedRecords,
  payload: Uint8Array,
  h: BatchHeader,
): number {
  const b = o;
  o = out.writeBigInt64BE(0n, o); // base offset
  o = out.writeInt32BE(BATCH_HEADER_BYTES - 12 + payload.length, o); // length after this field
  o = out.writeInt32BE(0, o); // partition leader epoch (the broker sets it; kafkajs writes 0)
  o = out.writeInt8(2, o); // magic
  o += 4; // crc, written last
  o = out.writeInt16BE((h.codec & ATTR_CODEC) | (h.transactional ? ATTR_TRANSACTIONAL : 0), o);
  o = out.writeInt32BE(r.count - 1, o); // last offset delta
  o = out.writeBigInt64BE(BigInt(r.firstTimestamp), o);
  o = out.writeBigInt64BE(BigInt(r.maxTimestamp), o);
  o = out.writeBigInt64BE(h.producerId, o);
  o = out.writeInt16BE(h.producerEpoch, o);
  o = out.writeInt32BE(h.baseSequence, o);
  o = out.writeInt32BE(r.count, o);
  out.set(payload, o);
  o += payload.length;
  out.writeUInt32BE(crc32c(out, b + 21, o), b + 17); // attributes to the end
  return o;
}

/** A record batch in a buffer of its own (writeRecordBatch). */
export function recordBatch(r: EncodedRecords, payload: Uint8Array, h: BatchHeader): Buffer {
  const out = Buffer.allocUnsafe(BATCH_HEADER_BYTES + payload.length);
  writeRecordBatch(out, 0, r, payload, h);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** One record batch as read from a fetch, before its records are decoded. */
export interface RawBatch {
  baseOffset: number;
  /** offset of the batch's last record (control records included) */
  lastOffset: number;
  attributes: number;
  baseTimestamp: number;
  maxTimestamp: number;
  count: number;
  /** where the records start and end in the buffer the batch was read from */
  start: number;
  end: number;
}

const TWO32 = 4294967296;

function int64(buf: Buffer, o: number): number {
  return buf.readInt32BE(o) * TWO32 + buf.readUInt32BE(o + 4);
}

/**
 * The complete record batches in `buf[start, end)`; a truncated batch at the end (a fetch cuts
 * at its byte limit) is left out, as every Kafka client does. Returns null when a batch is not
 * magic 2 (the old message sets) or its offsets pass 2^53: the caller falls back to kafkajs.
 */
export function readBatches(buf: Buffer, start: number, end: number): RawBatch[] | null {
  const out: RawBatch[] = [];
  let o = start;
  while (o + BATCH_HEADER_BYTES <= end) {
    const len = buf.readInt32BE(o + 8);
    if (o + 12 + len > end) break;
    if (buf[o + 16] !== 2) return null;
    const hi = buf.readInt32BE(o);
    if (hi < 0 || hi >= 0x200000) return null;
    const baseOffset = int64(buf, o);
    out.push({
      baseOffset,
      lastOffset: baseOffset + buf.readInt32BE(o + 23),
      attributes: buf.readInt16BE(o + 21),
      baseTimestamp: int64(buf, o + 27),
      maxTimestamp: int64(buf, o + 35),
      count: buf.readInt32BE(o + 57),
      start: o + BATCH_HEADER_BYTES,
      end: o + 12 + len,
    });
    o += 12 + len;
  }
  return out;
}

/** A corrupt record (a length past its batch): the caller fails the fetch as kafkajs would. */
export class RecordDecodeError extends Error {
  override readonly name = 'RecordDecodeError';
}

// The last header key and value decoded, kept so a header repeated on every message (a content
// type) is turned into a string once, not once per message.
let lastHk = '';
let lastHkBytes: Buffer = Buffer.alloc(0);
let lastHv = '';
let lastHvBytes: Buffer = Buffer.alloc(0);

function cachedString(buf: Buffer, a: number, b: number, key: boolean): string {
  const bytes = key ? lastHkBytes : lastHvBytes;
  const n = b - a;
  if (bytes.length === n) {
    let same = true;
    for (let i = 0; i < n; i++)
      if (bytes[i] !== buf[a + i]) {
        same = false;
        break;
      }
    if (same) return key ? lastHk : lastHv;
  }
  const s = buf.toString('utf8', a, b);
  if (n <= 64) {
    const copy = Buffer.from(buf.subarray(a, b));
    if (key) {
      lastHk = s;
      lastHkBytes = copy;
    } else {
      lastHv = s;
      lastHvBytes = copy;
    }
  }
  return s;
}

// The buffer and position readVar() reads from: module state rather than a returned pair, so the
// hot loop allocates nothing (V8 inlines readVar).
let rb: Buffer = Buffer.alloc(0);
let ro = 0;

/** An unsigned varint at `ro` (the zigzag form as written); values stay exact up to 2^53. */
function readVar(): number {
  let byte = rb[ro++]!;
  let v = byte & 0x7f;
  let mul = 0x80;
  while (byte & 0x80) {
    byte = rb[ro++]!;
    v += (byte & 0x7f) * mul;
    mul *= 0x80;
  }
  return v;
}

/**
 * Appends the records of `b`, read from `buf[start, end)` (its records, uncompressed), at offsets
 * >= `minOffset` to `out` as BusMessages. Keys and values are views into `buf`.
 */
export function decodeRecords(
  buf: Buffer,
  start: number,
  end: number,
  b: RawBatch,
  topic: string,
  partition: number,
  minOffset: number,
  out: BusMessage[],
): void {
  const logAppend = (b.attributes & ATTR_LOG_APPEND_TIME) !== 0;
  rb = buf;
  ro = start;
  for (let r = 0; r < b.count; r++) {
    const recLen = readVar() / 2; // a record length is never negative
    const recEnd = ro + recLen;
    if (recEnd > end) throw new RecordDecodeError('record runs past its batch');
    ro++; // record attributes: unused
    const z = readVar();
    const tsDelta = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    const offset = b.baseOffset + readVar() / 2;
    if (offset < minOffset) {
      ro = recEnd;
      continue;
    }
    let n = readVar();
    let key: Buffer | null = null;
    if (n !== 1) {
      key = buf.subarray(ro, ro + n / 2);
      ro += n / 2;
    }
    n = readVar();
    let value: Buffer | null = null;
    if (n !== 1) {
      value = buf.subarray(ro, ro + n / 2);
      ro += n / 2;
    }
    // headers: the last value of a repeated key wins, a null value reads as ''
    const headers: Headers = {};
    for (let h = readVar() / 2; h > 0; h--) {
      n = readVar();
      const kl = n % 2 === 0 ? n / 2 : 0;
      const hk = cachedString(buf, ro, ro + kl, true);
      ro += kl;
      n = readVar();
      const vl = n % 2 === 0 ? n / 2 : 0;
      const hv = vl === 0 ? '' : cachedString(buf, ro, ro + vl, false);
      // a header named __proto__ is data like any other, not the object's prototype
      if (hk === '__proto__')
        Object.defineProperty(headers, hk, {
          value: hv,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      else headers[hk] = hv;
      ro += vl;
    }
    if (ro !== recEnd) throw new RecordDecodeError('record length does not match its fields');
    out.push({
      topic,
      partition,
      offset: String(offset),
      key,
      value,
      headers,
      timestamp: logAppend ? b.maxTimestamp : b.baseTimestamp + tsDelta,
    });
  }
}
