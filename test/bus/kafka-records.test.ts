// The Bus's record batch codec against kafkajs's own (the oracle: its encoder and decoder have
// talked to Kafka for years) and against the Java client's murmur2 test vectors.
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planPartitions, type TopicPartitions } from '../../bus/kafka-produce.ts';
import {
  BATCH_HEADER_BYTES,
  crc32c,
  decodeRecords,
  encodeRecords,
  murmur2,
  partitionOfKey,
  readBatches,
  recordBatch,
} from '../../bus/kafka-records.ts';
import type { BusMessage, OutgoingMessage } from '../../bus/types.ts';

const require = createRequire(import.meta.url);
const kjsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
const kjsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (k: Buffer) => number;
const KjsDecoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => unknown;
const kjsBatchDecoder = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (d: unknown) => Promise<{
  lastOffsetDelta: number;
  firstTimestamp: string;
  maxTimestamp: string;
  records: {
    offset: string;
    key: Buffer | null;
    value: Buffer | null;
    headers: Record<string, Buffer>;
    timestamp: string;
  }[];
}>;
const { RecordBatch: kjsRecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
  RecordBatch: (o: Record<string, unknown>) => Promise<{ buffer: Buffer }>;
};
const kjsRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (
  o: Record<string, unknown>,
) => unknown;

const HEADER = { codec: 0, transactional: false, producerId: -1n, producerEpoch: 0, baseSequence: 0 };

const message = fc.record(
  {
    key: fc.oneof(
      fc.constant(null),
      fc.string({ unit: 'grapheme' }),
      fc.uint8Array().map((a) => Buffer.from(a)),
    ),
    value: fc.oneof(
      fc.constant(null),
      fc.string({ unit: 'grapheme', maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    ),
    // names of Object.prototype's members are left out: kafkajs's header decoder (the oracle)
    // reads them off the prototype
    headers: fc.dictionary(
      fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !(k in Object.prototype)),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      { maxKeys: 3 },
    ),
    timestamp: fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
  },
  { requiredKeys: ['value', 'timestamp'] },
) as fc.Arbitrary<OutgoingMessage>;

const bytes = (v: string | Buffer | null | undefined): Buffer | null =>
  v === null || v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v;

describe('CRC-32C', () => {
  it('is the Castagnoli checksum (check value of "123456789") and agrees with kafkajs', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(7), fc.nat(7), (a, head, tail) => {
        const b = Buffer.from(a);
        expect(crc32c(b)).toBe(kjsCrc32C(b));
        // any start and end, whatever their alignment
        const start = Math.min(head, b.length);
        const end = Math.max(start, b.length - tail);
        expect(crc32c(b, start, end)).toBe(kjsCrc32C(b.subarray(start, end)));
      }),
    );
  });
});

describe('murmur2 partitioning', () => {
  it("gives the Java client's values (Kafka's UtilsTest) and kafkajs DefaultPartitioner's", () => {
    const java: [string | number[], number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      [[97, 98, 99], 479470107],
    ];
    for (const [k, h] of java) expect(murmur2(Buffer.from(k as string))).toBe(h);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 64 }), (a, n) => {
        const b = Buffer.from(a);
        expect(murmur2(b)).toBe(kjsMurmur2(b));
        expect(partitionOfKey(b, n)).toBe((kjsMurmur2(b) & 0x7fffffff) % n);
      }),
    );
  });

  it('plans partitions by explicit number, key, or round-robin, keeping call order within each', () => {
    const t: TopicPartitions = { count: 4, available: [0, 1, 2, 3], keyCache: new Map(), roundRobin: 0 };
    const msgs: OutgoingMessage[] = [
      { key: 'host-a', value: '0' },
      { value: '1', partition: 3 },
      { key: Buffer.from('host-a'), value: '2' },
      { value: '3' },
      { value: '4' },
      { key: 'host-b', value: '5' },
    ];
    const { order, start } = planPartitions('t', msgs, t);
    const partitionOf = new Map<number, number>();
    for (let p = 0; p < 4; p++) for (let j = start[p]!; j < start[p + 1]!; j++) partitionOf.set(order[j]!, p);
    expect(partitionOf.get(0)).toBe(partitionOfKey(Buffer.from('host-a'), 4));
    expect(partitionOf.get(2)).toBe(partitionOf.get(0));
    expect(partitionOf.get(1)).toBe(3);
    expect(partitionOf.get(5)).toBe(partitionOfKey(Buffer.from('host-b'), 4));
    expect(partitionOf.get(3)).not.toBe(partitionOf.get(4)); // round-robin moves on
    for (let p = 0; p < 4; p++) {
      const idx = Array.from(order.subarray(start[p]!, start[p + 1]!));
      expect(idx).toEqual([...idx].sort((a, b) => a - b));
    }
    expect(() => planPartitions('t', [{ value: 'x', partition: 4 }], t)).toThrow(/no partition 4/);
  });
});

describe('record batch codec', () => {
  it('writes batches kafkajs reads back exactly (keys, values, headers, timestamps, offsets, CRC)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 40 }), async (msgs) => {
        const enc = encodeRecords(msgs, null, 0, msgs.length, 1_700_000_000_000);
        expect(enc.count).toBe(msgs.length);
        const batch = recordBatch(enc, enc.records, HEADER);
        expect(batch.readUInt32BE(17)).toBe(crc32c(batch, 21, batch.length));
        const got = await kjsBatchDecoder(new KjsDecoder(batch));
        expect(got.records.length).toBe(msgs.length);
        expect(Number(got.maxTimestamp)).toBe(Math.max(...msgs.map((m) => m.timestamp!)));
        got.records.forEach((r, i) => {
          const m = msgs[i]!;
          expect(r.offset).toBe(String(i));
          expect(Number(r.timestamp)).toBe(m.timestamp);
          expect(r.key).toEqual(bytes(m.key));
          expect(r.value).toEqual(bytes(m.value));
          expect(Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, v.toString()]))).toEqual(
            m.headers ?? {},
          );
        });
      }),
      { numRuns: 200 },
    );
  });

  it('reads batches kafkajs writes (and its own), from a given offset on', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(message, { minLength: 1, maxLength: 40 }),
        fc.nat(60),
        fc.nat(1000),
        async (msgs, skip, base) => {
          const kjs = await kjsRecordBatch({
            firstTimestamp: Math.min(...msgs.map((m) => m.timestamp!)),
            maxTimestamp: Math.max(...msgs.map((m) => m.timestamp!)),
            lastOffsetDelta: msgs.length - 1,
            records: msgs.map((m, i) =>
              kjsRecord({
                key: bytes(m.key),
                value: bytes(m.value),
                headers: m.headers,
                offsetDelta: i,
                timestampDelta: m.timestamp! - Math.min(...msgs.map((x) => x.timestamp!)),
              }),
            ),
          });
          const enc = encodeRecords(msgs, null, 0, msgs.length, 0);
          for (const buf of [kjs.buffer, recordBatch(enc, enc.records, HEADER)]) {
            const b = Buffer.from(buf);
            b.writeBigInt64BE(BigInt(base), 0); // as the broker assigns it
            const batches = readBatches(b, 0, b.length)!;
            expect(batches).toHaveLength(1);
            expect(batches[0]!.lastOffset).toBe(base + msgs.length - 1);
            const out: BusMessage[] = [];
            decodeRecords(b, batches[0]!.start, batches[0]!.end, batches[0]!, 'topic', 2, base + skip, out);
            const expected = msgs.slice(skip);
            expect(out).toHaveLength(expected.length);
            out.forEach((r, i) => {
              const m = expected[i]!;
              expect(r.topic).toBe('topic');
              expect(r.partition).toBe(2);
              expect(r.offset).toBe(String(base + skip + i));
              expect(r.timestamp).toBe(m.timestamp);
              expect(r.key).toEqual(bytes(m.key));
              expect(r.value).toEqual(bytes(m.value));
              expect(r.headers).toEqual(m.headers ?? {});
            });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('cuts a batch at the byte bound (at least one record) and leaves a truncated batch unread', () => {
    const msgs = Array.from({ length: 100 }, (_, i) => ({ value: `line ${i} ${'x'.repeat(90)}` }));
    const enc = encodeRecords(msgs, null, 0, 100, 1, 2_000);
    expect(enc.count).toBeGreaterThan(5);
    expect(enc.count).toBeLessThan(25);
    expect(enc.records.length).toBeLessThanOrEqual(2_000);
    expect(encodeRecords(msgs, null, 0, 100, 1, 10).count).toBe(1);
    const a = recordBatch(enc, enc.records, HEADER);
    const both = Buffer.concat([a, a.subarray(0, a.length - 1)]);
    expect(readBatches(both, 0, both.length)).toHaveLength(1);
    expect(readBatches(both, 0, BATCH_HEADER_BYTES - 1)).toHaveLength(0);
  });

  it('reads a header named like an Object.prototype member as its own', () => {
    const h = { ['__proto__']: 'a', toString: 'b', constructor: 'c' };
    const msgs = [
      { value: 'v', headers: Object.defineProperty({ ...h }, '__proto__', { value: 'a', enumerable: true }) },
    ];
    const enc = encodeRecords(msgs, null, 0, 1, 1);
    const b = recordBatch(enc, enc.records, HEADER);
    const [batch] = readBatches(b, 0, b.length)!;
    const out: BusMessage[] = [];
    decodeRecords(b, batch!.start, batch!.end, batch!, 't', 0, 0, out);
    expect(Object.getOwnPropertyDescriptor(out[0]!.headers, '__proto__')?.value).toBe('a');
    expect(out[0]!.headers.toString).toBe('b');
    expect(out[0]!.headers.constructor).toBe('c');
  });

  it('a message without a timestamp gets the given time', () => {
    const enc = encodeRecords([{ value: 'a' }, { value: 'b', timestamp: 5 }], null, 0, 2, 9);
    expect([enc.firstTimestamp, enc.maxTimestamp]).toEqual([5, 9]);
  });
});
