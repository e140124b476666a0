// Crash safety of the segment log, exhaustively on a small log: for every byte offset, a
// truncation there (a torn tail) and a bit flip there (damage) must recover exactly the records
// that lie wholly before the damage: a prefix of what was acknowledged, and nothing invented.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameReader, listSegments, openSegmentLog } from '../../queue-bridge/index.ts';
import { getLogLevel, setLogLevel } from '../../runtime/log.ts';
import type { KingCobraMessage } from '../../schemas/index.ts';
import { msg } from './helpers.ts';

// Recovery logic, not the disk, is under test: tmpfs keeps the ~2,000 reopen cycles fast.
const base = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'virgo-kc-crash-'));
// Each recovery warns once (by design); 1,500 of them would bury the test output.
const level = getLogLevel();
beforeAll(() => setLogLevel('error'));
afterAll(() => {
  setLogLevel(level);
  rmSync(base, { recursive: true, force: true });
});

interface Seg {
  name: string;
  bytes: Buffer;
  /** global byte position of the segment's first byte */
  start: number;
}

let segs: Seg[] = [];
let acked: KingCobraMessage[] = [];
/** global [start, end) of each record's frame, in offset order */
const frames: { start: number; end: number }[] = [];
let total = 0;

beforeAll(async () => {
  const dir = join(base, 'original');
  const log = await openSegmentLog(dir, { maxSegmentBytes: 120 });
  const records = [0, 1, 2, 3, 4, 5].map((i) => msg(i, { payload: 'p'.repeat(3 + i * 7) }));
  for (const r of records) await log.append(r);
  acked = records;
  await log.close();
  let pos = 0;
  for (const s of await listSegments(dir)) {
    const bytes = readFileSync(s.path);
    segs.push({ name: basename(s.path), bytes, start: pos });
    const fh = await open(s.path, 'r');
    const reader = new FrameReader(fh, 0, bytes.length, 1 << 20);
    for (let f = await reader.next(); f.kind === 'frame'; f = await reader.next()) {
      frames.push({ start: pos + f.pos, end: pos + reader.position });
    }
    await fh.close();
    pos += bytes.length;
  }
  total = pos;
  segs = segs.filter((s) => s.bytes.length > 0);
  expect(segs.length).toBeGreaterThanOrEqual(3);
  expect(frames.length).toBe(acked.length);
});

let n = 0;
function materialise(files: { name: string; bytes: Buffer }[]): string {
  const dir = join(base, `case-${n++}`);
  mkdirSync(dir);
  for (const f of files) writeFileSync(join(dir, f.name), f.bytes);
  return dir;
}

/** Opens as the writer (recovery), returns the ids read back, proves the log still takes writes. */
async function recoverIds(dir: string): Promise<string[]> {
  const log = await openSegmentLog(dir, { maxSegmentBytes: 120 });
  const ids: string[] = [];
  for await (const r of log.read()) ids.push(r.message.id);
  const next = await log.append(msg(99));
  expect(next.offset).toBe(ids.length);
  const after: string[] = [];
  for await (const r of log.read({ fromOffset: ids.length })) after.push(r.message.id);
  expect(after).toEqual(['t-99']);
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return ids;
}

const wholeBefore = (x: number) => frames.filter((f) => f.end <= x).length;
const prefix = (k: number) => acked.slice(0, k).map((m) => m.id);

describe('crash recovery, every byte offset of a small log', () => {
  it('a torn tail (truncation at every offset, later segments gone) keeps exactly the whole records', async () => {
    for (let x = 0; x <= total; x++) {
      const files = segs
        .filter((s) => s.start <= x)
        .map((s) => ({ name: s.name, bytes: s.bytes.subarray(0, Math.max(0, x - s.start)) }));
      const ids = await recoverIds(materialise(files));
      expect(ids, `truncated at ${x}`).toEqual(prefix(wholeBefore(x)));
    }
  });

  it('a cut inside one segment with later segments intact recovers a prefix, never a gap', async () => {
    for (let x = 0; x <= total; x++) {
      const files = segs.map((s) =>
        s.start <= x && x < s.start + s.bytes.length
          ? { name: s.name, bytes: s.bytes.subarray(0, x - s.start) }
          : s,
      );
      const ids = await recoverIds(materialise(files));
      const cutSomething = segs.some((s) => s.start <= x && x < s.start + s.bytes.length);
      expect(ids, `cut at ${x}`).toEqual(prefix(cutSomething ? wholeBefore(x) : acked.length));
    }
  });

  it('a bit flip or a smashed byte anywhere recovers the records before the damaged frame', async () => {
    for (let p = 0; p < total; p++) {
      const hit = frames.findIndex((f) => f.start <= p && p < f.end);
      for (const mask of [1 << (p % 8), 0xff]) {
        const files = segs.map((s) => {
          if (p < s.start || p >= s.start + s.bytes.length) return s;
          const b = Buffer.from(s.bytes);
          b[p - s.start]! ^= mask;
          return { name: s.name, bytes: b };
        });
        const ids = await recoverIds(materialise(files));
        expect(ids, `byte ${p} xor ${mask}`).toEqual(prefix(hit));
      }
    }
  });
});
