// Reading one segment file whole, through damage: every valid frame with its offset, and every
// damaged byte range between them. Recovery, `virgo queue check`, salvage and a reader that skips
// damage all see a segment through this one function, so they agree on what is in it.
import { type FileHandle, open } from 'node:fs/promises';
import { codecFor } from '../schemas/index.ts';
import {
  FORMAT_1,
  type FrameFormat,
  type FrameProblem,
  FrameReader,
  format2,
  MIN_BODY_BYTES,
  type ResyncRule,
} from './frame.ts';
import { parseSegmentHeader, SEGMENT_HEADER_BYTES, type SegmentHeader } from './segment-header.ts';

export interface ScannedFrame {
  pos: number;
  end: number;
  /** the record's offset; undefined for a format 1 frame found after damage (position lost) */
  offset: number | undefined;
  payload: Buffer;
}

export interface Damage {
  /** bytes [from, to) of the file hold no valid frame */
  from: number;
  to: number;
  problem: FrameProblem | 'out-of-sequence';
  detail: string;
  /** nothing valid follows in this file */
  tail: boolean;
}

export interface SegmentScan {
  header: SegmentHeader;
  /** where frames start (32 in format 2) */
  dataStart: number;
  /** the frame format used to read it (format 2: with the salt that validates its frames) */
  format: FrameFormat;
  frames: ScannedFrame[];
  damage: Damage[];
  /** end of the last valid frame (dataStart when none) */
  validEnd: number;
  /** bytes read (the file size, or the limit) */
  size: number;
}

export interface ScanOptions {
  /** the segment's base offset: its first record's offset is at least this */
  base: number;
  /** the next segment's base: every offset here is below it */
  nextBase?: number | undefined;
  maxRecordBytes: number;
  /** read only this far (a writer's durable size) */
  limit?: number;
  /** keep the payloads (default true; check only counts) */
  keepPayloads?: boolean;
}

const kingCobraBody = codecFor('KingCobraMessage');
/** Whether `payload` is a whole KingCobraMessage body (a resync candidate must be). */
export function decodesAsMessage(payload: Buffer): boolean {
  try {
    kingCobraBody.decodeBody(payload);
    return true;
  } catch {
    return false;
  }
}

async function readHead(fh: FileHandle, size: number): Promise<Buffer> {
  const head = Buffer.alloc(Math.min(size, SEGMENT_HEADER_BYTES));
  if (head.length > 0) await fh.read(head, 0, head.length, 0);
  return head;
}

/** Scans the file at `path` (see scanHandle). */
export async function scanSegment(path: string, opts: ScanOptions): Promise<SegmentScan> {
  const fh = await open(path, 'r');
  try {
    return await scanHandle(fh, opts);
  } finally {
    await fh.close();
  }
}

/**
 * Every valid frame of a segment and the damaged ranges between them. After a bad frame the scan
 * resynchronises on the next position holding a whole frame whose length is plausible, whose
 * stored offset continues the sequence (above the last good one, below the next segment's base,
 * and at most as far ahead as the skipped bytes could have held frames), whose salted CRC
 * matches and whose payload decodes. Format 1 frames carry no offset: those found after damage
 * come back with `offset: undefined`.
 */
export async function scanHandle(fh: FileHandle, opts: ScanOptions): Promise<SegmentScan> {
  const { size: fileSize } = await fh.stat();
  const size = Math.min(fileSize, opts.limit ?? fileSize);
  const header = parseSegmentHeader(await readHead(fh, size));
  if (header.format === 'partial') {
    return { header, dataStart: 0, format: FORMAT_1, frames: [], damage: [], validEnd: 0, size };
  }
  if (header.format === 1) return scanFrames(fh, size, 0, FORMAT_1, header, opts);
  // A header whose CRC failed may hold one damaged salt copy: the salt is the one its frames
  // validate with.
  let best: SegmentScan | undefined;
  for (const salt of header.salts) {
    const s = await scanFrames(fh, size, SEGMENT_HEADER_BYTES, format2(salt), header, opts);
    if (!best || s.frames.length > best.frames.length) best = s;
    if (s.frames.length > 0 && !header.damaged) break;
  }
  return best!;
}

async function scanFrames(
  fh: FileHandle,
  size: number,
  dataStart: number,
  format: FrameFormat,
  header: SegmentHeader,
  opts: ScanOptions,
): Promise<SegmentScan> {
  const frames: ScannedFrame[] = [];
  const damage: Damage[] = [];
  const keep = opts.keepPayloads !== false;
  const reader = new FrameReader(fh, dataStart, size, opts.maxRecordBytes, format);
  /** the offset the next frame has when nothing was lost; undefined once format 1 lost count */
  let expect: number | undefined = opts.base;
  let validEnd = dataStart;
  for (;;) {
    const f = reader.nextBuffered() ?? (await reader.next());
    if (f.kind === 'frame') {
      let offset = f.offset;
      if (format.headerBytes === 8) {
        offset = expect;
        if (expect !== undefined) expect++;
      } else if (
        offset === undefined ||
        (expect !== undefined && offset < expect) ||
        (opts.nextBase !== undefined && offset >= opts.nextBase)
      ) {
        // a valid frame out of sequence (a stale copy, a renamed file): damage, not a record
        const to = await resyncFrom(reader, f.pos, resyncRule(format, expect, opts.nextBase, f.pos), size);
        damage.push({
          from: f.pos,
          to,
          problem: 'out-of-sequence',
          detail: `frame at byte ${f.pos} claims offset ${offset}, out of sequence (expected ${expect ?? '?'})`,
          tail: to >= size,
        });
        if (to >= size) break;
        continue;
      } else {
        expect = offset + 1;
      }
      frames.push({ pos: f.pos, end: f.end, offset, payload: keep ? f.payload : EMPTY });
      validEnd = f.end;
      continue;
    }
    if (f.kind === 'end') break;
    const to = await resyncFrom(reader, f.pos, resyncRule(format, expect, opts.nextBase, f.pos), size);
    damage.push({ from: f.pos, to, problem: f.problem, detail: f.detail, tail: to >= size });
    // format 1 cannot tell how many frames the damage held
    if (format.headerBytes === 8) expect = undefined;
    if (to >= size) break;
  }
  return { header, dataStart, format, frames, damage, validEnd, size };
}

const EMPTY = Buffer.alloc(0);

/**
 * What may follow damage that starts at byte `damageFrom`: in format 2 a frame whose offset is
 * at least `expect` (the one the damaged frame should have had), below the next segment's base,
 * and no further ahead than the damaged bytes could have held frames; its payload must decode.
 * Format 1 frames carry no offset: their (unsalted) CRC and the decoding decide.
 */
export function resyncRule(
  format: FrameFormat,
  expect: number | undefined,
  nextBase: number | undefined,
  damageFrom: number,
): ResyncRule {
  const minFrame = format.headerBytes + MIN_BODY_BYTES;
  return {
    plausible: (_len, offset, pos) => {
      if (format.headerBytes === 8) return true;
      if (offset === undefined || expect === undefined || offset < expect) return false;
      if (nextBase !== undefined && offset >= nextBase) return false;
      return offset - expect <= Math.floor((pos - damageFrom) / minFrame);
    },
    decodes: decodesAsMessage,
  };
}

async function resyncFrom(
  reader: FrameReader,
  from: number,
  rule: ResyncRule,
  size: number,
): Promise<number> {
  const at = await reader.resync(from, rule);
  return at ?? size;
}
