// The header of a segment file (format 2, docs/design.md §5.8): 32 bytes before the first frame.
//
//   0  "KCLG"   magic
//   4  u8 2     format version
//   5  3 × 0    reserved
//   8  u64      base offset (the file's name says the same; a renamed file is noticed)
//  16  u32      salt
//  20  u32      salt again (a flipped byte in one copy still leaves the other)
//  24  u32 0    reserved
//  28  u32      CRC-32C of bytes 0-27
//
// The salt is random per segment and seeds every frame's CRC, as SQLite's WAL salts its frames: a
// frame is valid only in the segment it was written to, so resynchronising after damage cannot
// lock onto frame-shaped bytes inside a payload (a client could send those) or onto stale bytes
// from another file. Format 1 segments (no header, unsalted CRC, offsets by position) are still
// read; a writer never appends to one.
import { randomBytes } from 'node:crypto';
import { crc32c } from './crc32c.ts';

export const SEGMENT_HEADER_BYTES = 32;
const MAGIC = Buffer.from('KCLG', 'latin1');
const VERSION = 2;

export type SegmentHeader =
  /** format 1: frames from byte 0 */
  | { format: 1 }
  /** format 2, header readable (or repairable: `damaged` when its CRC failed) */
  | { format: 2; base: number; salts: number[]; damaged: boolean }
  /** format 2 being created (or cut inside the header): no frame can exist yet */
  | { format: 'partial'; bytes: number };

export function newSalt(): number {
  return randomBytes(4).readUInt32BE(0);
}

export function encodeSegmentHeader(base: number, salt: number): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  MAGIC.copy(b, 0);
  b[4] = VERSION;
  writeU64(b, 8, base);
  b.writeUInt32BE(salt, 16);
  b.writeUInt32BE(salt, 20);
  b.writeUInt32BE(crc32c(b, 0, 0, 28), 28);
  return b;
}

export function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v >>> 0, at + 4);
}

export function readU64(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4);
}

/**
 * What the first bytes of a segment file say about its format. `head` holds the file's first
 * min(size, 32) bytes. A format 1 file starts with a frame length of at most a few MiB, so its
 * first byte is 0; "K" cannot start one. One damaged byte in the magic or the version still reads
 * as format 2.
 */
export function parseSegmentHeader(head: Buffer): SegmentHeader {
  if (head.length === 0) return { format: 'partial', bytes: 0 };
  const n = Math.min(head.length, 5);
  let same = 0;
  for (let i = 0; i < n; i++) if (head[i] === (i < 4 ? MAGIC[i] : VERSION)) same++;
  if (head.length < SEGMENT_HEADER_BYTES) {
    // a header being written: what is there matches it
    return same === n ? { format: 'partial', bytes: head.length } : { format: 1 };
  }
  const crcOk = head.readUInt32BE(28) === crc32c(head, 0, 0, 28);
  if (!crcOk && same < 4) return { format: 1 };
  const s1 = head.readUInt32BE(16);
  const s2 = head.readUInt32BE(20);
  return { format: 2, base: readU64(head, 8), salts: s1 === s2 ? [s1] : [s1, s2], damaged: !crcOk };
}
