// Recovery on real files (issue #15.5): damage costs only the records it hit, every other keeps
// its offset, moved-out bytes are never overwritten, a missing segment is reported and its
// offsets never handed out again, format 1 segments still read, `check` and `salvage` agree.
import { readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLog } from '../../queue-bridge/check.ts';
import {
  encodeFrame,
  type LogRecord,
  listSegments,
  openSegmentLog,
  readManifest,
  SegmentLog,
} from '../../queue-bridge/index.ts';
import { salvage } from '../../queue-bridge/salvage.ts';
import { getLogLevel, setLogLevel } from '../../runtime/log.ts';
import { codecFor } from '../../schemas/index.ts';
import { cleanupDirs, msg, tempDir } from './lib/queue.ts';

const level = getLogLevel();
beforeAll(() => setLogLevel('error'));
afterAll(() => {
  setLogLevel(level);
  cleanupDirs();
});

async function logWith(n: number, opts: { maxSegmentBytes?: number; reserveOffsets?: number } = {}) {
  const dir = tempDir();
  const log = await openSegmentLog(dir, opts);
  await Promise.all(Array.from({ length: n }, (_, i) => log.append(msg(i))));
  await log.close();
  return dir;
}

async function all(dir: string, opts: { readOnly?: boolean } = {}): Promise<LogRecord[]> {
  const log = new SegmentLog(dir, { readOnly: opts.readOnly ?? true });
  await log.open();
  const out: LogRecord[] = [];
  for await (const r of log.read()) out.push(r);
  await log.close();
  return out;
}

function flip(path: string, at: number, mask = 0x10): void {
  const b = readFileSync(path);
  b[at]! ^= mask;
  writeFileSync(path, b);
}

const corruptFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.corrupt'));

describe('recovery keeps every valid record', () => {
  it('one flipped byte in a 300-record segment costs one record; the other 299 keep their offsets', async () => {
    const dir = await logWith(300);
    const healthy = await checkLog(dir);
    expect(healthy).toMatchObject({ records: 300, nextOffset: 300, gaps: [], damage: [], problems: [] });
    const seg = (await listSegments(dir))[0]!.path;
    flip(seg, 1000);
    // before any writer: check names the damage and exits non-zero; a reader skips it
    const before = await checkLog(dir);
    expect(before.damage).toHaveLength(1);
    expect(before.records).toBe(299);
    expect(before.problems.length).toBeGreaterThan(0);

    const log = new SegmentLog(dir);
    const report = await log.open();
    expect(report.records).toBe(299);
    expect(report.salvagedRecords).toBeGreaterThan(250);
    expect(report.lost).toHaveLength(1);
    const lost = report.lost[0]!;
    expect(lost.to - lost.from).toBe(1);
    expect((await log.append(msg(300))).offset).toBe(300);
    await log.close();

    const recs = await all(dir);
    expect(recs).toHaveLength(300);
    const offsets = recs.map((r) => r.offset);
    expect(offsets).toEqual([...Array.from({ length: 301 }, (_, i) => i)].filter((o) => o !== lost.from));
    // each record is the one written at its offset
    for (const r of recs) expect(r.message.id).toBe(r.offset === 300 ? 't-300' : `t-${r.offset}`);
    expect(corruptFiles(dir)).toHaveLength(1);
    const m = await readManifest(dir);
    expect(m!.losses.map((l) => [l.from, l.to])).toEqual([[lost.from, lost.to]]);
    const after = await checkLog(dir);
    expect(after.damage).toEqual([]);
    expect(after.gaps.map((g) => [g.from, g.to])).toEqual([[lost.from, lost.to]]);
    expect(after.gaps[0]!.reason).toMatch(/CRC32C/);
  });

  it('a deleted newest segment is reported and its offsets are never handed out again', async () => {
    const dir = await logWith(40, { maxSegmentBytes: 400, reserveOffsets: 16 });
    const segs = await listSegments(dir);
    expect(segs.length).toBeGreaterThan(3);
    const newest = segs.at(-1)!;
    const reserved = (await readManifest(dir))!.reserved;
    expect(reserved).toBeGreaterThanOrEqual(40);
    unlinkSync(newest.path);

    const check = await checkLog(dir);
    expect(check.missingSegments).toEqual([newest.path.split('/').at(-1)]);
    expect(check.problems.join('\n')).toMatch(/listed in MANIFEST.json but missing/);

    const log = new SegmentLog(dir, { maxSegmentBytes: 400, reserveOffsets: 16 });
    const report = await log.open();
    expect(report.missingSegments).toHaveLength(1);
    expect(report.lost[0]).toMatchObject({ from: newest.base, to: reserved });
    const a = await log.append(msg(100));
    // never an offset the deleted segment may have held
    expect(a.offset).toBe(reserved);
    await log.close();
    const recs = await all(dir);
    expect(recs.at(-1)).toMatchObject({ offset: reserved, message: { id: 't-100' } });
    expect(recs.filter((r) => r.offset >= newest.base && r.offset < reserved)).toEqual([]);
    // once recorded, the loss is a gap with its reason; the segment is no longer "missing"
    const again = await checkLog(dir);
    expect(again.missingSegments).toEqual([]);
    expect(again.gaps.map((g) => [g.from, g.to])).toEqual([[newest.base, reserved]]);
  });

  it('a deleted middle segment leaves a reported gap; later records keep their offsets', async () => {
    const dir = await logWith(40, { maxSegmentBytes: 400 });
    const segs = await listSegments(dir);
    const middle = segs[1]!;
    unlinkSync(middle.path);
    const log = new SegmentLog(dir, { maxSegmentBytes: 400 });
    const report = await log.open();
    expect(report.lost[0]).toMatchObject({ from: middle.base, to: segs[2]!.base });
    expect((await log.append(msg(40))).offset).toBe(40);
    await log.close();
    const recs = await all(dir);
    expect(recs.map((r) => r.offset)).toEqual(
      Array.from({ length: 41 }, (_, i) => i).filter((o) => o < middle.base || o >= segs[2]!.base),
    );
  });

  it('a truncated middle segment keeps its whole records; the next segments stay live', async () => {
    const dir = await logWith(40, { maxSegmentBytes: 400 });
    const segs = await listSegments(dir);
    const middle = segs[1]!;
    truncateSync(middle.path, 200);
    const recs = await all(dir, { readOnly: false });
    const kept = recs.filter((r) => r.offset >= middle.base && r.offset < segs[2]!.base);
    expect(kept.length).toBeGreaterThan(0);
    expect(recs.filter((r) => r.offset >= segs[2]!.base)).toHaveLength(40 - segs[2]!.base);
    const check = await checkLog(dir);
    expect(check.gaps).toHaveLength(1);
    expect(check.gaps[0]).toMatchObject({ from: middle.base + kept.length, to: segs[2]!.base });
  });

  it('a reader from an offset after old damage reads on without complaint (a resuming replay)', async () => {
    const dir = await logWith(100);
    flip((await listSegments(dir))[0]!.path, 300);
    const log = new SegmentLog(dir, { readOnly: true });
    await log.open();
    const out: number[] = [];
    for await (const r of log.read({ fromOffset: 90 })) out.push(r.offset);
    expect(out).toEqual(Array.from({ length: 10 }, (_, i) => 90 + i));
    // from the start, the damage is in the way: an error naming the fix, or a report
    await expect(
      (async () => {
        for await (const _ of log.read()) {
          // reading
        }
      })(),
    ).rejects.toThrow(/virgo queue check.*moves it aside/);
    const damage: string[] = [];
    let n = 0;
    for await (const _ of log.read({ onDamage: (d) => damage.push(d.detail) })) n++;
    expect(n).toBe(99);
    expect(damage).toHaveLength(1);
    await log.close();
  });
});

describe('format 1 segments (written before format 2)', () => {
  const codec = codecFor('KingCobraMessage');
  const v1 = (ids: number[]) => Buffer.concat(ids.map((i) => encodeFrame(codec.encodeBody(msg(i)))));

  it('are read with offsets by position; the writer continues in a new format 2 segment', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, '00000000000000000000.kclog'), v1([0, 1, 2]));
    writeFileSync(join(dir, '00000000000000000003.kclog'), v1([3, 4]));
    const log = await openSegmentLog(dir);
    expect((await log.append(msg(5))).offset).toBe(5);
    await log.close();
    expect((await all(dir)).map((r) => [r.offset, r.message.id])).toEqual(
      [0, 1, 2, 3, 4, 5].map((i) => [i, `t-${i}`]),
    );
    const segs = await listSegments(dir);
    expect(segs.map((s) => s.base)).toEqual([0, 3, 5]);
    expect((await checkLog(dir)).segments.map((s) => s.format)).toEqual([1, 1, 2]);
  });

  it('damage in one: the records after it are quarantined, salvage brings them back once, by id', async () => {
    const dir = tempDir();
    const bytes = v1(Array.from({ length: 30 }, (_, i) => i));
    bytes[200]! ^= 0xff;
    writeFileSync(join(dir, '00000000000000000000.kclog'), bytes);
    const log = new SegmentLog(dir);
    const report = await log.open();
    // nothing after the damage can keep a position-derived offset
    const before = report.records;
    expect(before).toBeLessThan(10);
    expect(report.quarantined).toHaveLength(1);
    // new records start past every offset the cut bytes could have held
    const next = (await log.append(msg(100))).offset;
    expect(next).toBeGreaterThanOrEqual(30);
    await log.close();
    const check = await checkLog(dir);
    expect(check.quarantined[0]!.notInLog).toBeGreaterThan(15);
    expect(check.problems.join('\n')).toMatch(/virgo queue salvage/);

    const s1 = await salvage(dir);
    expect(s1.appended).toBe(check.quarantined[0]!.notInLog);
    const ids = (await all(dir)).map((r) => r.message.id);
    // every record but the damaged one, each once
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.filter((id) => id !== 't-100').length).toBe(29);
    const s2 = await salvage(dir);
    expect(s2.appended).toBe(0);
    expect((await all(dir)).length).toBe(ids.length);
    expect((await checkLog(dir)).quarantined[0]!.notInLog).toBe(0);
  });

  it('salvage reads .corrupt files of the old recovery (whole segments moved aside)', async () => {
    const dir = tempDir();
    const log = await openSegmentLog(dir);
    for (let i = 0; i < 3; i++) await log.append(msg(i));
    await log.close();
    // what the old recovery did to later segments after a bad frame
    writeFileSync(join(dir, '00000000000000000003.kclog.corrupt'), v1([3, 4, 5]));
    const r = await salvage(dir);
    expect(r.appended).toBe(3);
    expect((await all(dir)).map((x) => x.message.id)).toEqual(['t-0', 't-1', 't-2', 't-3', 't-4', 't-5']);
    rmSync(dir, { recursive: true, force: true });
  });
});
