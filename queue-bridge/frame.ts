// Segment-log framing (docs/design.md §5.8), big-endian:
//   format 2: u32 length | u32 CRC32C | u64 offset | payload    (after the 32-byte segment header)
//   format 1: u32 length | u32 CRC32C | payload                 (older segments; offset = position)
// The CRC covers the length bytes, the offset and the payload, seeded with the segment's salt
// (format 1: 0), so a flipped length bit is caught by the checksum instead of sending the reader
// to a wrong but plausible frame boundary, and a frame is valid only in its own segment.
import type { FileHandle } from 'node:fs/promises';
import type avro from 'avsc';
import { crc32c } from './crc32c.ts';
import { readU64, writeU64 } from './segment-header.ts';

/** header bytes of a format 1 frame */
export const FRAME_HEADER_BYTES = 8;
/** header bytes of a format 2 frame (with its offset) */
export const FRAME_V2_HEADER_BYTES = 16;
/**
 * The smallest Avro KingCobraMessage body: five one-byte empty strings/zero longs, the enum and
 * the null branch of inReplyTo. Bounds how many frames a damaged range can have held.
 */
export const MIN_BODY_BYTES = 7;

export interface FrameFormat {
  /** 8 (format 1) or 16 (format 2: the offset is in the frame) */
  readonly headerBytes: 8 | 16;
  /** CRC seed: the segment's salt (format 1: 0) */
  readonly salt: number;
}

export const FORMAT_1: FrameFormat = { headerBytes: 8, salt: 0 };
export const format2 = (salt: number): FrameFormat => ({ headerBytes: 16, salt });

/** Why a frame could not be read at a position. */
export type FrameProblem = 'incomplete' | 'zero-length' | 'too-long' | 'crc-mismatch';

function frameCrc(buf: Uint8Array, pos: number, end: number, salt: number): number {
  return crc32c(buf, crc32c(buf, salt, pos, pos + 4), pos + 8, end);
}

/** A format 1 frame (no offset, unsalted): what older segments hold. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  out.writeUInt32BE(frameCrc(out, 0, out.length, 0), 4);
  return out;
}

/** A format 2 frame: the record at `offset` in a segment salted with `salt`. */
export function encodeFrameV2(payload: Uint8Array, offset: number, salt: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_V2_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_V2_HEADER_BYTES);
  sealFrame(out, 0, out.length, offset, salt);
  return out;
}

/**
 * Encodes `value` with `type` straight into `buf` at `pos` as the body of a format 2 frame, its
 * length set; the offset and CRC are sealed in at commit, when the segment (its salt) and the
 * offset are known. Returns the frame's end, or minus the number of bytes missing when `buf` is
 * too small.
 */
export function encodeBodyInto(type: avro.Type, value: unknown, buf: Buffer, pos: number): number {
  if (buf.length - pos < FRAME_V2_HEADER_BYTES) return -(FRAME_V2_HEADER_BYTES - (buf.length - pos) + 64);
  const end = type.encode(value, buf, pos + FRAME_V2_HEADER_BYTES);
  if (end < 0) return end;
  buf.writeUInt32BE(end - pos - FRAME_V2_HEADER_BYTES, pos);
  return end;
}

/** Writes the offset and the salted CRC of the format 2 frame at [pos, end). */
export function sealFrame(buf: Buffer, pos: number, end: number, offset: number, salt: number): void {
  writeU64(buf, pos + 8, offset);
  buf.writeUInt32BE(frameCrc(buf, pos, end, salt), pos + 4);
}

export type FrameResult =
  | {
      kind: 'frame';
      pos: number;
      end: number;
      /** the stored offset (format 2); undefined in format 1, where position decides */
      offset: number | undefined;
      payload: Buffer;
    }
  /** clean end: no byte after the last whole frame */
  | { kind: 'end'; pos: number }
  | { kind: 'bad'; pos: number; problem: FrameProblem; detail: string };

/** What a resynchronisation accepts as the next frame after damage. */
export interface ResyncRule {
  /** cheap test of a candidate's length and stored offset (before any CRC is computed) */
  plausible(len: number, offset: number | undefined, pos: number): boolean;
  /** the candidate's payload decodes (its CRC already matched) */
  decodes(payload: Buffer): boolean;
}

/**
 * Reads frames sequentially from an open file, in chunks, from `pos` up to `limit` (exclusive;
 * a writer's durable size, or the file size). Payloads are copies: safe to keep.
 */
export class FrameReader {
  private buf: Buffer;
  /** file position of buf[0] */
  private bufPos: number;
  private bufLen = 0;
  private cursor: number;
  private readonly hb: number;
  private readonly salt: number;

  constructor(
    private readonly fh: FileHandle,
    pos: number,
    private readonly limit: number,
    private readonly maxRecordBytes: number,
    format: FrameFormat = FORMAT_1,
    chunkBytes = 1 << 20,
  ) {
    // Small segments (and the tail of a followed one) need small buffers; ensure() grows it.
    const span = limit - pos;
    this.buf = Buffer.allocUnsafe(Number.isFinite(span) ? Math.max(64, Math.min(chunkBytes, span)) : 1 << 16);
    this.bufPos = pos;
    this.cursor = pos;
    this.hb = format.headerBytes;
    this.salt = format.salt;
  }

  /** position of the next frame to read */
  get position(): number {
    return this.cursor;
  }

  /** makes `n` bytes from the cursor available; false at the limit / end of file */
  private async ensure(n: number): Promise<boolean> {
    const have = this.bufPos + this.bufLen - this.cursor;
    if (have >= n && this.cursor >= this.bufPos) return true;
    if (this.cursor + n > this.limit) return false;
    // Slide the unread tail to the front (or start over when the cursor left the buffer: a
    // resync), and grow when one frame needs more than the buffer.
    const off = this.cursor - this.bufPos;
    if (off < 0 || off >= this.bufLen) {
      this.bufLen = 0;
    } else if (off > 0) {
      this.buf.copy(this.buf, 0, off, this.bufLen);
      this.bufLen -= off;
    }
    this.bufPos = this.cursor;
    if (n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(bigger, 0, 0, this.bufLen);
      this.buf = bigger;
    }
    while (this.bufLen < n) {
      const want = Math.min(this.buf.length - this.bufLen, this.limit - (this.bufPos + this.bufLen));
      if (want <= 0) return false;
      const { bytesRead } = await this.fh.read(this.buf, this.bufLen, want, this.bufPos + this.bufLen);
      if (bytesRead === 0) return false;
      this.bufLen += bytesRead;
    }
    return true;
  }

  /** bytes from `pos` to the limit (a file size), or to what the file had (no limit) */
  private available(pos: number): number {
    return Math.max(0, Number.isFinite(this.limit) ? this.limit - pos : this.bufPos + this.bufLen - pos);
  }

  /** The next frame when it is already buffered whole (no I/O, no promise); else undefined. */
  nextBuffered(): FrameResult | undefined {
    const have = this.bufPos + this.bufLen - this.cursor;
    if (have < this.hb || this.cursor < this.bufPos) return undefined;
    const len = this.buf.readUInt32BE(this.cursor - this.bufPos);
    if (len === 0 || len > this.maxRecordBytes || have < this.hb + len) return undefined;
    return this.check(len);
  }

  async next(): Promise<FrameResult> {
    const pos = this.cursor;
    if (!(await this.ensure(this.hb))) {
      const have = this.available(pos);
      return have === 0
        ? { kind: 'end', pos }
        : { kind: 'bad', pos, problem: 'incomplete', detail: `${have}-byte partial frame header` };
    }
    const len = this.buf.readUInt32BE(pos - this.bufPos);
    if (len === 0) return { kind: 'bad', pos, problem: 'zero-length', detail: 'frame length 0' };
    if (len > this.maxRecordBytes) {
      return {
        kind: 'bad',
        pos,
        problem: 'too-long',
        detail: `frame length ${len} over the ${this.maxRecordBytes}-byte record limit`,
      };
    }
    if (!(await this.ensure(this.hb + len))) {
      const have = this.available(pos);
      return {
        kind: 'bad',
        pos,
        problem: 'incomplete',
        detail: `frame of ${len} bytes cut after ${Math.max(0, have - this.hb)}`,
      };
    }
    return this.check(len);
  }

  /** CRC check of the whole frame of `len` payload bytes at the cursor (buffered). */
  private check(len: number): FrameResult {
    const pos = this.cursor;
    const o = pos - this.bufPos;
    const end = o + this.hb + len;
    const want = this.buf.readUInt32BE(o + 4);
    const got = frameCrc(this.buf, o, end, this.salt);
    if (want !== got) {
      return {
        kind: 'bad',
        pos,
        problem: 'crc-mismatch',
        detail: `CRC32C ${got.toString(16)} where the frame says ${want.toString(16)}`,
      };
    }
    this.cursor = pos + this.hb + len;
    return {
      kind: 'frame',
      pos,
      end: this.cursor,
      offset: this.hb === 16 ? readU64(this.buf, o + 8) : undefined,
      payload: Buffer.from(this.buf.subarray(o + this.hb, end)),
    };
  }

  /**
   * After a bad frame at `from`: the first position after it where a whole valid frame starts
   * (length and offset plausible, CRC matching with this segment's salt, payload decoding), as
   * Kafka's and SQLite's log readers find their way back, but never trusting a CRC alone. The
   * cursor is left there (the frame is read again by next()). Undefined: nothing valid before the
   * limit (the cursor is then at the end of what could be read).
   */
  async resync(from: number, rule: ResyncRule): Promise<number | undefined> {
    for (let q = from + 1; ; q++) {
      this.cursor = q;
      if (!(await this.ensure(this.hb))) {
        this.cursor = Math.min(this.limit, this.bufPos + this.bufLen);
        return undefined;
      }
      const o = q - this.bufPos;
      const len = this.buf.readUInt32BE(o);
      if (len === 0 || len > this.maxRecordBytes) continue;
      const offset = this.hb === 16 ? readU64(this.buf, o + 8) : undefined;
      if (!rule.plausible(len, offset, q)) continue;
      if (!(await this.ensure(this.hb + len))) continue;
      const f = this.check(len);
      if (f.kind === 'frame' && rule.decodes(f.payload)) {
        this.cursor = q;
        return q;
      }
    }
  }
}
