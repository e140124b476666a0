import type avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kernelEvent } from '../../ingest/event.ts';
import {
  type AnalyticsVariable,
  AvroDecodeError,
  Codec,
  codecFor,
  loadSchema,
  RECORD_NAMES,
  rabin64,
  recordForFingerprint,
} from '../../schemas/index.ts';

const sample: AnalyticsVariable = {
  host: 'edge-1',
  key: 'ufw.top_src_ip',
  value: '203.0.113.7',
  why: 'window=60s blocks=42',
  learner: 'ufw',
  model: 'ufw@1',
  confidence: 0.9,
  ts: 1_700_000_000_123,
  type: 'ip',
  unit: null,
};

describe('CRC-64-AVRO fingerprint', () => {
  it('matches the Avro specification test vectors', () => {
    // From the Avro project's schema-tests (parsingFingerprint64).
    expect(BigInt.asIntN(64, rabin64('"null"'))).toBe(7195948357588979594n);
    expect(BigInt.asIntN(64, rabin64('"int"'))).toBe(8247732601305521295n);
  });
});

describe('single-object codec', () => {
  it('every record schema loads and has a distinct fingerprint', () => {
    const fps = RECORD_NAMES.map((n) => codecFor(n).fingerprintHex);
    expect(new Set(fps).size).toBe(RECORD_NAMES.length);
    for (const n of RECORD_NAMES) expect(recordForFingerprint(codecFor(n).fingerprintHex)).toBe(n);
  });

  it('round-trips with the C3 01 marker and the fingerprint in the header', () => {
    const c = codecFor('AnalyticsVariable');
    const buf = c.encode(sample);
    expect([...buf.subarray(0, 2)]).toEqual([0xc3, 0x01]);
    expect(buf.subarray(2, 10).equals(c.fingerprint)).toBe(true);
    expect(c.decode(buf)).toEqual(sample);
  });

  it('round-trips arbitrary analytics variables', () => {
    const c = codecFor('AnalyticsVariable');
    fc.assert(
      fc.property(
        fc.record({
          host: fc.string(),
          key: fc.string(),
          value: fc.string(),
          why: fc.string(),
          learner: fc.string(),
          model: fc.string(),
          confidence: fc.double({ noNaN: true }),
          ts: fc.integer({ min: 0, max: 2 ** 50 }),
          type: fc.constantFrom('int', 'float', 'bool', 'ip', 'string', 'enum'),
          unit: fc.option(fc.string(), { nil: null }),
        }),
        (v) => {
          expect(c.decode(c.encode(v))).toEqual(v);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reads data written with an older schema (evolution: fields added with defaults)', () => {
    const current = loadSchema('AnalyticsVariable') as { fields: { name: string }[] };
    const older = {
      ...current,
      fields: current.fields.filter((f) => !['type', 'unit', 'confidence'].includes(f.name)),
    };
    const oldCodec = new Codec<Record<string, unknown>>(older as avro.Schema);
    const { type: _t, unit: _u, confidence: _c, ...oldValue } = sample;
    const oldBytes = oldCodec.encode(oldValue);

    const reader = new Codec<AnalyticsVariable>(loadSchema('AnalyticsVariable'));
    expect(() => reader.decode(oldBytes)).toThrow(/unknown-fingerprint/);
    reader.addWriterSchema(older as avro.Schema);
    expect(reader.decode(oldBytes)).toEqual({ ...oldValue, type: 'string', unit: null, confidence: 1 });
  });

  it('refuses a writer schema it cannot resolve', () => {
    const reader = new Codec(loadSchema('AnalyticsVariable'));
    expect(() =>
      reader.addWriterSchema({
        type: 'record',
        name: 'virgo.AnalyticsVariable',
        fields: [{ name: 'host', type: 'int' }],
      } as avro.Schema),
    ).toThrow(/cannot be read/);
  });

  it('gives typed errors naming the message for garbage, unknown fingerprints, truncation, corruption', () => {
    const c = codecFor('AnalyticsVariable');
    const origin = { topic: 'virgo.kernel-analytics', partition: 2, offset: '17' };
    const good = c.encode(sample);
    const cases: [Buffer, string][] = [
      [Buffer.from('hello world'), 'not-single-object'],
      [Buffer.from([0xc3, 0x01, 1, 2]), 'truncated'],
      [
        Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.alloc(8, 7), good.subarray(10)]),
        'unknown-fingerprint',
      ],
      [good.subarray(0, good.length - 3), 'truncated'],
      [Buffer.concat([good, Buffer.from([1, 2, 3])]), 'corrupt'],
    ];
    for (const [bytes, reason] of cases) {
      let caught: unknown;
      try {
        c.decode(bytes, origin);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(AvroDecodeError);
      expect((caught as AvroDecodeError).reason).toBe(reason);
      expect((caught as Error).message).toContain('virgo.kernel-analytics/2/17');
    }
  });

  it('never throws anything but AvroDecodeError on random bytes', () => {
    const c = codecFor('KingCobraMessage');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, withHeader) => {
        const buf = withHeader
          ? Buffer.concat([Buffer.from([0xc3, 0x01]), c.fingerprint, bytes])
          : Buffer.from(bytes);
        try {
          c.decode(buf);
        } catch (err) {
          expect(err).toBeInstanceOf(AvroDecodeError);
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

// A regression the reliability suite found (test/reliability).
describe('hostile single-object messages', () => {
  it('an Avro message whose array or map claims more items than it has bytes is refused, not decoded out of memory', () => {
    // zigzag varint
    const varint = (n: bigint) => {
      const out: number[] = [];
      let z = n << 1n;
      while (z >= 0x80n) {
        out.push(Number((z & 0x7fn) | 0x80n));
        z >>= 7n;
      }
      out.push(Number(z));
      return Buffer.from(out);
    };
    const drone = codecFor('DroneSensorFrame');
    const good = drone.encode({
      deviceId: 'd',
      seq: 1,
      ts: 1,
      distances: [1, 2],
      speed: 0,
      heading: 0,
      goalBearing: null,
      goalDistance: null,
    });
    // header, deviceId "d", seq, ts, then a block count of 2^28 doubles in a few bytes: avsc
    // allocated the whole array and the process died of heap exhaustion
    const bomb = Buffer.concat([good.subarray(0, 14), varint(1n << 28n)]);
    expect(() => drone.decode(bomb)).toThrow(AvroDecodeError);
    expect(() => drone.decode(bomb)).toThrow(/corrupt/);
    // a map (KernelEvent.fields) with a huge count and no bytes behind it: a CPU spin before
    const ev = codecFor('KernelEvent');
    const okEvent = ev.encode(kernelEvent('h', 1, 'm', { program: null }));
    const fieldsAt = okEvent.length - 4; // fields, templateId, template, params, flags: 0 0 0 0 0
    const mapBomb = Buffer.concat([okEvent.subarray(0, fieldsAt - 1), varint(1n << 40n)]);
    const t0 = performance.now();
    expect(() => ev.decode(mapBomb)).toThrow(AvroDecodeError);
    expect(performance.now() - t0).toBeLessThan(1_000);
    // well-formed messages still decode
    expect(drone.decode(good).distances).toEqual([1, 2]);
    expect(ev.decode(okEvent).message).toBe('m');
  });
});
