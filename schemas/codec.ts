// Avro single-object encoding (0xC3 0x01 + 8-byte LE CRC-64-AVRO fingerprint + body), so every
// message names its writer schema without a registry. A Codec reads any writer schema it knows
// (current or older) into its reader schema, so old data stays readable after evolution.
import avro from 'avsc';
import { rabin64Bytes } from './fingerprint.ts';

export const MAGIC = Buffer.from([0xc3, 0x01]);
export const HEADER_BYTES = 10;

export type DecodeErrorReason = 'not-single-object' | 'unknown-fingerprint' | 'truncated' | 'corrupt';

/** Where a bad message came from, so the error can name it. */
export interface MessageOrigin {
  topic?: string;
  partition?: number;
  offset?: string;
}

export class AvroDecodeError extends Error {
  override readonly name = 'AvroDecodeError';
  constructor(
    readonly reason: DecodeErrorReason,
    detail: string,
    readonly origin: MessageOrigin = {},
    readonly fingerprint?: string,
  ) {
    super(`${describeOrigin(origin)}${reason}: ${detail}`);
  }
}

export class AvroEncodeError extends Error {
  override readonly name = 'AvroEncodeError';
}

function describeOrigin(o: MessageOrigin): string {
  if (o.topic === undefined) return '';
  const where = [o.topic, o.partition, o.offset].filter((x) => x !== undefined).join('/');
  return `message ${where}: `;
}

export function schemaFingerprint(type: avro.Type): Buffer {
  // avsc's schema() without attributes is the Parsing Canonical Form of the Avro specification
  // (full names, no doc/default/logicalType, fields in order); toString() would only name a record.
  return rabin64Bytes(JSON.stringify(type.schema()));
}

export function fingerprintHex(fp: Buffer): string {
  return fp.toString('hex');
}

/** The fingerprint of a single-object message, or undefined when it is not one. */
export function peekFingerprint(buf: Uint8Array): string | undefined {
  if (buf.length < HEADER_BYTES || buf[0] !== 0xc3 || buf[1] !== 0x01) return undefined;
  return Buffer.from(buf.buffer, buf.byteOffset + 2, 8).toString('hex');
}

/**
 * Whether a type holds arrays or maps anywhere: their block counts are the only lengths avsc
 * trusts before reading (it allocates `new Array(count)` and loops `count` times), so a few
 * hostile bytes claiming 2^28 items exhaust the heap. Those types get a bounds walk first.
 */
function hasBlocks(t: avro.Type, seen = new Set<avro.Type>()): boolean {
  if (seen.has(t)) return false;
  seen.add(t);
  const x = t as avro.Type & {
    itemsType?: avro.Type;
    valuesType?: avro.Type;
    types?: avro.Type[];
    fields?: { type: avro.Type }[];
    underlyingType?: avro.Type;
  };
  if (x.itemsType || x.valuesType) return true;
  const inner = [...(x.types ?? []), ...(x.fields ?? []).map((f) => f.type)];
  if (x.underlyingType) inner.push(x.underlyingType);
  return inner.some((i) => hasBlocks(i, seen));
}

/** What the bounds walk reads of an avsc type (public attributes of avsc's Type classes). */
type Shape = avro.Type & {
  itemsType?: avro.Type;
  valuesType?: avro.Type;
  types?: avro.Type[];
  fields?: { type: avro.Type }[];
  underlyingType?: avro.Type;
  size?: number;
};

/**
 * Walks an encoded value without building it: false when a length, count or union index cannot
 * be right for the bytes that are left (each array or map item takes at least one byte).
 */
class BoundsWalk {
  pos = 0;
  private zeroItems = 0;
  constructor(private readonly b: Buffer) {}

  /** a zigzag long, as a double (only its magnitude matters); NaN past the end */
  private varint(): number {
    const b = this.b;
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= b.length) return Number.NaN;
      const byte = b[this.pos++]!;
      n += (byte & 0x7f) * scale;
      scale *= 128;
      if ((byte & 0x80) === 0) return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    }
    return Number.NaN;
  }

  private skip(n: number): boolean {
    if (!(n >= 0) || n > this.b.length - this.pos) return false;
    this.pos += n;
    return true;
  }

  fits(t: Shape): boolean {
    if (t.underlyingType) return this.fits(t.underlyingType);
    switch (t.typeName) {
      case 'null':
        return true;
      case 'boolean':
        return this.skip(1);
      case 'int':
      case 'long':
      case 'enum':
        return !Number.isNaN(this.varint());
      case 'float':
        return this.skip(4);
      case 'double':
        return this.skip(8);
      case 'bytes':
      case 'string':
        return this.skip(this.varint());
      case 'fixed':
        return this.skip(t.size ?? 0);
      case 'record':
      case 'error': {
        const fields = t.fields ?? [];
        for (let i = 0; i < fields.length; i++) if (!this.fits(fields[i]!.type)) return false;
        return true;
      }
      case 'union:wrapped':
      case 'union:unwrapped': {
        const i = this.varint();
        const types = t.types ?? [];
        return Number.isInteger(i) && i >= 0 && i < types.length && this.fits(types[i]!);
      }
      case 'array':
      case 'map':
        return this.blocks(t);
      default:
        // a type this walk does not know: leave it to avsc
        return true;
    }
  }

  private blocks(t: Shape): boolean {
    const item = (t.itemsType ?? t.valuesType)!;
    const isMap = t.typeName === 'map';
    for (;;) {
      let n = this.varint();
      if (Number.isNaN(n)) return false;
      if (n === 0) return true;
      if (n < 0) {
        n = -n;
        // a negative count is followed by the block's size in bytes
        if (Number.isNaN(this.varint())) return false;
      }
      // Stricter than Avro for zero-byte items (an array of nulls): none in our schemas.
      if (n > this.b.length - this.pos) return false;
      for (let i = 0; i < n; i++) {
        const start = this.pos;
        if (isMap && !this.skip(this.varint())) return false;
        if (!this.fits(item)) return false;
        // zero-byte items across many blocks must not spin either
        if (this.pos === start && ++this.zeroItems > 65_536) return false;
      }
    }
  }
}

export class Codec<T> {
  readonly type: avro.Type;
  readonly fingerprint: Buffer;
  readonly fingerprintHex: string;
  private readonly header: Buffer;
  // writer fingerprint (hex) -> resolver into the reader type (undefined: same schema)
  private readonly writers = new Map<
    string,
    { type: avro.Type; resolver: avro.Resolver | undefined; blocks: boolean }
  >();

  constructor(schema: avro.Schema | avro.Type) {
    this.type = schema instanceof avro.Type ? schema : avro.Type.forSchema(schema);
    this.fingerprint = schemaFingerprint(this.type);
    this.fingerprintHex = fingerprintHex(this.fingerprint);
    this.header = Buffer.concat([MAGIC, this.fingerprint]);
    this.writers.set(this.fingerprintHex, {
      type: this.type,
      resolver: undefined,
      blocks: hasBlocks(this.type),
    });
  }

  get name(): string {
    return this.type.name ?? this.type.typeName;
  }

  /** Lets this codec read data written with an older (or newer) compatible schema. */
  addWriterSchema(schema: avro.Schema | avro.Type): string {
    const writer = schema instanceof avro.Type ? schema : avro.Type.forSchema(schema);
    const fp = fingerprintHex(schemaFingerprint(writer));
    if (!this.writers.has(fp)) {
      let resolver: avro.Resolver;
      try {
        resolver = this.type.createResolver(writer);
      } catch (err) {
        throw new AvroEncodeError(
          `schema ${writer.name ?? writer.typeName} (${fp}) cannot be read as ${this.name}: ${(err as Error).message}`,
        );
      }
      this.writers.set(fp, { type: writer, resolver, blocks: hasBlocks(writer) });
    }
    return fp;
  }

  knows(fingerprint: string): boolean {
    return this.writers.has(fingerprint);
  }

  /** Plain Avro binary, no header (the segment log frames carry their own). */
  encodeBody(value: T): Buffer {
    try {
      return this.type.toBuffer(value);
    } catch (err) {
      throw new AvroEncodeError(`cannot encode ${this.name}: ${(err as Error).message}`);
    }
  }

  decodeBody(body: Uint8Array, origin: MessageOrigin = {}): T {
    return this.readBody(Buffer.from(body.buffer, body.byteOffset, body.length), undefined, origin);
  }

  encode(value: T): Buffer {
    return Buffer.concat([this.header, this.encodeBody(value)]);
  }

  decode(buf: Uint8Array, origin: MessageOrigin = {}): T {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
    if (b.length < 2 || b[0] !== 0xc3 || b[1] !== 0x01) {
      throw new AvroDecodeError('not-single-object', 'missing the 0xC3 0x01 marker', origin);
    }
    if (b.length < HEADER_BYTES) {
      throw new AvroDecodeError(
        'truncated',
        `${b.length} bytes, the header alone is ${HEADER_BYTES}`,
        origin,
      );
    }
    const fp = b.subarray(2, HEADER_BYTES).toString('hex');
    const writer = this.writers.get(fp);
    if (!writer) {
      throw new AvroDecodeError(
        'unknown-fingerprint',
        `schema fingerprint ${fp} is not a known ${this.name} schema (known: ${[...this.writers.keys()].join(', ')})`,
        origin,
        fp,
      );
    }
    return this.readBody(b.subarray(HEADER_BYTES), writer, origin, fp);
  }

  private readBody(
    body: Buffer,
    writer: { type: avro.Type; resolver: avro.Resolver | undefined; blocks: boolean } | undefined,
    origin: MessageOrigin,
    fp?: string,
  ): T {
    const w = writer ?? this.writers.get(this.fingerprintHex)!;
    if (w.blocks && !new BoundsWalk(body).fits(w.type)) {
      throw new AvroDecodeError(
        'corrupt',
        `${this.name} body: a length, count or union index does not fit its ${body.length} bytes`,
        origin,
        fp,
      );
    }
    // decode() rather than fromBuffer(): it reports truncation (offset < 0) and trailing bytes
    // instead of throwing a generic error or silently reading past the record.
    let res: { value: unknown; offset: number };
    try {
      res = this.type.decode(body, 0, w.resolver) as { value: unknown; offset: number };
    } catch (err) {
      throw new AvroDecodeError('corrupt', `${this.name} body: ${(err as Error).message}`, origin, fp);
    }
    if (res.offset < 0) {
      throw new AvroDecodeError(
        'truncated',
        `${this.name} body ends early (${body.length} bytes)`,
        origin,
        fp,
      );
    }
    if (res.offset !== body.length) {
      throw new AvroDecodeError(
        'corrupt',
        `${this.name} body has ${body.length - res.offset} trailing bytes after the record`,
        origin,
        fp,
      );
    }
    return res.value as T;
  }
}
