// Segment-log framing (docs/design.md §5.8): u32 length | u32 CRC32C | payload, big-endian.
// The CRC covers the length bytes and the payload, so a flipped length bit is caught by the
// checksum instead of sending the reader to a wrong but plausible frame boundary.
import type { FileHandle } from 'node:fs/promises';
import type avro from 'avsc';
import { crc32c } from './crc32c.ts';

export const FRAME_HEADER_BYTES = 8;

/** Why a frame could not be read at a position. */
export type FrameProblem = 'incomplete' | 'zero-length' | 'too-long' | 'crc-mismatch';

export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  const crc = crc32c(out, crc32c(out, 0, 0, 4), FRAME_HEADER_BYTES, out.length);
  out.writeUInt32BE(crc, 4);
  return out;
}

/**
 * Encodes `value` with `type` straight into `buf` at `pos` as one frame (no intermediate
 * buffers: the group-commit batch is built in place). Returns the frame's end, or minus the
 * number of bytes missing when `buf` is too small. The bytes equal encodeFrame(encodeBody(value)).
 */
export function encodeFrameInto(type: avro.Type, value: unknown, buf: Buffer, pos: number): number {
  if (buf.length - pos < FRAME_HEADER_BYTES) return -(FRAME_HEADER_BYTES - (buf.length - pos) + 64);
  const end = type.encode(value, buf, pos + FRAME_HEADER_BYTES);
  if (end < 0) return end;
  buf.writeUInt32BE(end - pos - FRAME_HEADER_BYTES, pos);
  buf.writeUInt32BE(crc32c(buf, crc32c(buf, 0, pos, pos + 4), pos + FRAME_HEADER_BYTES, end), pos + 4);
  return end;
}

export type FrameResult =
  | { kind: 'frame'; pos: number; payload: Buffer }
  /** clean end: no byte after the last whole frame */
  | { kind: 'end'; pos: number }
  | { kind: 'bad'; pos: number; problem: FrameProblem; detail: string };

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

  constructor(
    private readonly fh: FileHandle,
    pos: number,
    private readonly limit: number,
    private readonly maxRecordBytes: number,
    chunkBytes = 1 << 20,
  ) {
    // Small segments (and the tail of a followed one) need small buffers; ensure() grows it.
    const span = limit - pos;
    this.buf = Buffer.allocUnsafe(Number.isFinite(span) ? Math.max(64, Math.min(chunkBytes, span)) : 1 << 16);
    this.bufPos = pos;
    this.cursor = pos;
  }

  /** position of the next frame to read */
  get position(): number {
    return this.cursor;
  }

  /** makes `n` bytes from the cursor available; false at the limit / end of file */
  private async ensure(n: number): Promise<boolean> {
    const have = this.bufPos + this.bufLen - this.cursor;
    if (have >= n) return true;
    if (this.cursor + n > this.limit) return false;
    // Slide the unread tail to the front, grow when one frame needs more than the buffer.
    const off = this.cursor - this.bufPos;
    if (n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(bigger, 0, off, this.bufLen);
      this.buf = bigger;
    } else if (off > 0) {
      this.buf.copy(this.buf, 0, off, this.bufLen);
    }
    this.bufLen -= off;
    this.bufPos = this.cursor;
    while (this.bufLen < n) {
      const want = Math.min(this.buf.length - this.bufLen, this.limit - (this.bufPos + this.bufLen));
      if (want <= 0) return false;
      const { bytesRead } = await this.fh.read(this.buf, this.bufLen, want, this.bufPos + this.bufLen);
      if (bytesRead === 0) return false;
      this.bufLen += bytesRead;
    }
    return true;
  }

  /** The next frame when it is already buffered whole (no I/O, no promise); else undefined. */
  nextBuffered(): FrameResult | undefined {
    const have = this.bufPos + this.bufLen - this.cursor;
    if (have < FRAME_HEADER_BYTES) return undefined;
    const len = this.buf.readUInt32BE(this.cursor - this.bufPos);
    if (len === 0 || len > this.maxRecordBytes || have < FRAME_HEADER_BYTES + len) return undefined;
    return this.check(len);
  }

  async next(): Promise<FrameResult> {
    const pos = this.cursor;
    if (!(await this.ensure(FRAME_HEADER_BYTES))) {
      const have = this.bufPos + this.bufLen - pos;
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
    if (!(await this.ensure(FRAME_HEADER_BYTES + len))) {
      const have = this.bufPos + this.bufLen - pos;
      return {
        kind: 'bad',
        pos,
        problem: 'incomplete',
        detail: `frame of ${len} bytes cut after ${have - FRAME_HEADER_BYTES}`,
      };
    }
    return this.check(len);
  }

  /** CRC check of the whole frame of `len` payload bytes at the cursor (buffered). */
  private check(len: number): FrameResult {
    const pos = this.cursor;
    const o = pos - this.bufPos;
    const want = this.buf.readUInt32BE(o + 4);
    const got = crc32c(
      this.buf,
      crc32c(this.buf, 0, o, o + 4),
      o + FRAME_HEADER_BYTES,
      o + FRAME_HEADER_BYTES + len,
    );
    if (want !== got) {
      return {
        kind: 'bad',
        pos,
        problem: 'crc-mismatch',
        detail: `CRC32C ${got.toString(16)} where the frame says ${want.toString(16)}`,
      };
    }
    this.cursor = pos + FRAME_HEADER_BYTES + len;
    return {
      kind: 'frame',
      pos,
      payload: Buffer.from(this.buf.subarray(o + FRAME_HEADER_BYTES, o + FRAME_HEADER_BYTES + len)),
    };
  }
}
