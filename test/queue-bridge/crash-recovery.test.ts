// Crash safety of the segment log, exhaustively on a small log: for every byte offset, a
// truncation there (a torn tail, or a segment cut in the middle of the log) and a bit flip there
// (damage) must recover exactly the records whose frames are intact, each at its own offset, and
// nothing invented; the next record must never get an offset a surviving or possibly-read record
// had.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSegments, openSegmentLog, scanSegment } from '../../queue-bridge/index.ts';
import { getLogLevel, setLogLevel } from '../../runtime/log.ts';
import type { KingCobraMessage } from '../../schemas/index.ts';
import { msg } from './lib/queue.ts';

// Recovery logic, not the disk, is under test: tmpfs keeps the ~2,000 reopen cycles fast.
const base = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'virgo-kc-crash-'));
// Each recovery warns once (by design); 1,500 of them would bury the test output.
const level = getLogLevel();
beforeAll(() => setLogLevel('error'));
afterAll(() => {
  setLogLevel(level);
  rmSync(base, { recursive: true, force: true });
});

const MAX_SEGMENT = 200;

interface Seg {
  name: string;
  bytes: Buffer;
  /** global byte position of the segment's first byte */
  start: number;
}

const segs: Seg[] = [];
let acked: KingCobraMessage[] = [];
/** global [start, end) of each record's frame, in offset order, and its segment */
const frames: { start: number; end: number; seg: number }[] = [];
let total = 0;

beforeAll(async () => {
  const dir = join(base, 'original');
  const log = await openSegmentLog(dir, { maxSegmentBytes: MAX_SEGMENT });
  const records = [0, 1, 2, 3, 4, 5].map((i) => msg(i, { payload: 'p'.repeat(3 + i * 7) }));
  for (const r of records) await log.append(r);
  acked = records;
  await log.close();
  let pos = 0;
  for (const s of await listSegments(dir)) {
    const bytes = readFileSync(s.path);
    const scan = await scanSegment(s.path, { base: s.base, maxRecordBytes: 1 << 20 });
    expect(scan.damage).toEqual([]);
    for (const f of scan.frames) {
      expect(f.offset).toBe(frames.length);
      frames.push({ start: pos + f.pos, end: pos + f.end, seg: segs.length });
    }
    segs.push({ name: basename(s.path), bytes, start: pos });
    pos += bytes.length;
  }
  total = pos;
  expect(segs.length).toBeGreaterThanOrEqual(3);
  // some segment holds several records, so damage can sit between two good frames of one file
  expect(segs.some((_, i) => frames.filter((f) => f.seg === i).length >= 2)).toBe(true);
  expect(frames.length).toBe(acked.length);
});

let n = 0;
function materialise(files: { name: string; bytes: Buffer }[]): string {
  const dir = join(base, `case-${n++}`);
  mkdirSync(dir);
  for (const f of files) writeFileSync(join(dir, f.name), f.bytes);
  return dir;
}

/**
 * Opens as the writer (recovery), returns the ids read back with their offsets, proves the log
 * still takes writes, and returns the offset the next record got.
 */
async function recover(dir: string): Promise<{ ids: string[]; offsets: number[]; next: number }> {
  const log = await openSegmentLog(dir, { maxSegmentBytes: MAX_SEGMENT });
  const ids: string[] = [];
  const offsets: number[] = [];
  for await (const r of log.read()) {
    ids.push(r.message.id);
    offsets.push(r.offset);
  }
  const next = (await log.append(msg(99))).offset;
  const after: string[] = [];
  for await (const r of log.read({ fromOffset: next })) after.push(r.message.id);
  expect(after).toEqual(['t-99']);
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return { ids, offsets, next };
}

const wholeBefore = (x: number) => frames.filter((f) => f.end <= x).length;
const idsOf = (ks: number[]) => ks.map((k) => acked[k]!.id);
const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);

describe('crash recovery, every byte offset of a small log', () => {
  it('a torn tail (truncation at every offset, later segments gone) keeps exactly the whole records', async () => {
    for (let x = 0; x <= total; x++) {
      const files = segs
        .filter((s) => s.start <= x)
        .map((s) => ({ name: s.name, bytes: s.bytes.subarray(0, Math.max(0, x - s.start)) }));
      const r = await recover(materialise(files));
      const k = wholeBefore(x);
      expect(r.ids, `truncated at ${x}`).toEqual(idsOf(range(0, k)));
      // nothing after the cut was ever seen: its offsets are free again
      expect(r.next, `truncated at ${x}`).toBe(k);
    }
  });

  it('a segment cut in the middle of the log loses only its cut records; later segments keep theirs and their offsets', async () => {
    const last = segs.length - 1;
    for (let x = 0; x <= total; x++) {
      const cut = segs.findIndex((s) => s.start <= x && x < s.start + s.bytes.length);
      const files = segs.map((s, i) =>
        i === cut ? { name: s.name, bytes: s.bytes.subarray(0, x - s.start) } : s,
      );
      const r = await recover(materialise(files));
      const kept = frames.map((f, k) => (f.seg !== cut || f.end <= x ? k : -1)).filter((k) => k >= 0);
      expect(r.ids, `cut at ${x}`).toEqual(idsOf(kept));
      expect(r.offsets, `cut at ${x}`).toEqual(kept);
      // a cut newest segment is a torn write; a cut older one leaves a gap, never reused
      expect(r.next, `cut at ${x}`).toBe(cut === last ? wholeBefore(x) : acked.length);
    }
  });

  it('a bit flip or a smashed byte anywhere loses at most the record it hit; every other keeps its offset', async () => {
    const lastFrame = frames.length - 1;
    for (let p = 0; p < total; p++) {
      const hit = frames.findIndex((f) => f.start <= p && p < f.end);
      for (const mask of [1 << (p % 8), 0xff]) {
        const files = segs.map((s) => {
          if (p < s.start || p >= s.start + s.bytes.length) return s;
          const b = Buffer.from(s.bytes);
          b[p - s.start]! ^= mask;
          return { name: s.name, bytes: b };
        });
        const dir = materialise(files);
        const r = await recover(dir);
        const kept = range(0, frames.length).filter((k) => k !== hit);
        expect(r.ids, `byte ${p} xor ${mask}`).toEqual(idsOf(kept));
        expect(r.offsets, `byte ${p} xor ${mask}`).toEqual(kept);
        // only the very last frame, damaged so it reads as cut short, may give its offset again
        expect(r.next, `byte ${p} xor ${mask}`).toBeGreaterThanOrEqual(
          hit === lastFrame ? lastFrame : frames.length,
        );
      }
    }
  });

  it('damage moved out of the log lands in a new .corrupt file every time, never over an older one', async () => {
    const dir = materialise(segs);
    const seg = join(dir, segs[0]!.name);
    for (let round = 0; round < 3; round++) {
      // damage the segment's first frame (each recovery removed the one before, with its record)
      const b = readFileSync(seg);
      b[40]! ^= 0xff;
      writeFileSync(seg, b);
      const log = await openSegmentLog(dir, { maxSegmentBytes: MAX_SEGMENT });
      await log.close();
    }
    const corrupt = readdirSync(dir).filter((f) => f.endsWith('.corrupt'));
    expect(corrupt).toHaveLength(3);
    // three different records' bytes, all kept
    expect(new Set(corrupt.map((f) => readFileSync(join(dir, f)).toString('hex'))).size).toBe(3);
  });
});
