import { appendFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  defaultLogIO,
  encodeFrameV2,
  encodeSegmentHeader,
  type LogRecord,
  listSegments,
  openSegmentLog,
  parseSegmentHeader,
  SEGMENT_HEADER_BYTES,
  SegmentLog,
} from '../../queue-bridge/index.ts';
import { codecFor } from '../../schemas/index.ts';
import { cleanupDirs, msg, tempDir } from './lib/queue.ts';

afterAll(cleanupDirs);

async function all(log: SegmentLog, opts = {}): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of log.read(opts)) out.push(r);
  return out;
}

describe('SegmentLog', () => {
  it('appends, acknowledges with global offsets, and reads back in order after a reopen', async () => {
    const dir = tempDir();
    const log = await openSegmentLog(dir, { maxSegmentBytes: 300 });
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append(msg(i))));
    expect(acks.map((a) => a.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const segs = await listSegments(dir);
    expect(segs.length).toBeGreaterThan(2);
    // Every segment is named by the offset of its first record and stays near the size limit.
    const read = await all(log);
    expect(read.map((r) => r.offset)).toEqual(acks.map((a) => a.offset));
    expect(read.map((r) => r.message)).toEqual(Array.from({ length: 20 }, (_, i) => msg(i)));
    for (const s of segs.slice(0, -1)) expect(statSync(s.path).size).toBeLessThanOrEqual(300);
    await log.close();

    const again = await openSegmentLog(dir, { maxSegmentBytes: 300 });
    expect(again.nextOffset).toBe(20);
    expect((await again.append(msg(20))).offset).toBe(20);
    const fromMiddle = await all(again, { fromOffset: 13 });
    expect(fromMiddle.map((r) => r.offset)).toEqual([13, 14, 15, 16, 17, 18, 19, 20]);
    expect(fromMiddle.at(-1)!.message).toEqual(msg(20));
    await again.close();
  });

  it('stores each record as a frame of its offset and Avro body after the segment header; big records grow the batch buffer', async () => {
    const dir = tempDir();
    const log = await openSegmentLog(dir);
    const records = [msg(1), msg(2, { payload: 'z'.repeat(100_000) }), msg(3, { payload: 'ünïcødé ✓' })];
    await Promise.all(records.map((r) => log.append(r)));
    await log.close();
    const bytes = readFileSync((await listSegments(dir))[0]!.path);
    const codec = codecFor('KingCobraMessage');
    // the 32-byte header (magic, format 2, base 0, the salt twice, its CRC), then the frames
    const header = parseSegmentHeader(bytes.subarray(0, SEGMENT_HEADER_BYTES));
    expect(header).toMatchObject({ format: 2, base: 0, damaged: false });
    const salt = (header as { salts: number[] }).salts[0]!;
    expect(bytes.subarray(0, SEGMENT_HEADER_BYTES)).toEqual(encodeSegmentHeader(0, salt));
    expect(bytes.subarray(SEGMENT_HEADER_BYTES)).toEqual(
      Buffer.concat(records.map((r, i) => encodeFrameV2(codec.encodeBody(r), i, salt))),
    );
  });

  it('group commit: concurrent appends share fdatasyncs', async () => {
    const dir = tempDir();
    let syncs = 0;
    const log = await openSegmentLog(dir, {
      io: {
        datasync: async (fh) => {
          syncs++;
          await defaultLogIO.datasync(fh);
        },
      },
    });
    // 40 producers, each appending 10 records one after another (awaiting its own ack).
    await Promise.all(
      Array.from({ length: 40 }, async (_, p) => {
        for (let i = 0; i < 10; i++) await log.append(msg(p * 100 + i));
      }),
    );
    const s = log.stats();
    expect(s.appends).toBe(400);
    expect(syncs).toBe(s.batches);
    // one fdatasync per producer step at most, far fewer than one per record
    expect(syncs).toBeLessThanOrEqual(40);
    expect(s.maxBatch).toBeGreaterThan(10);
    // each producer's records are in its own order
    const read = await all(log);
    for (let p = 0; p < 40; p++) {
      const mine = read.filter((r) => Math.floor(Number(r.message.id.slice(2)) / 100) === p);
      expect(mine.map((r) => r.message.id)).toEqual(Array.from({ length: 10 }, (_, i) => `t-${p * 100 + i}`));
    }
    await log.close();
  });

  it('an ack comes only after the fdatasync that covers the record', async () => {
    const dir = tempDir();
    let release!: () => void;
    let syncStarted!: () => void;
    const started = new Promise<void>((r) => {
      syncStarted = r;
    });
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const log = await openSegmentLog(dir, {
      io: {
        datasync: async (fh) => {
          syncStarted();
          await gate;
          await defaultLogIO.datasync(fh);
        },
      },
    });
    let acked = false;
    const p = log.append(msg(1)).then((a) => {
      acked = true;
      return a;
    });
    await started;
    // written, fdatasync in progress: not acknowledged, and not visible to readers yet
    expect(acked).toBe(false);
    expect(await all(log)).toEqual([]);
    release();
    expect((await p).offset).toBe(0);
    expect((await all(log)).length).toBe(1);
    await log.close();
  });

  it('fsyncs the directory when it creates a segment, before acknowledging records in it', async () => {
    const dir = tempDir();
    const events: string[] = [];
    const log = await openSegmentLog(dir, {
      maxSegmentBytes: 150,
      io: {
        syncDir: async (d) => {
          events.push(`dir ${readdirSync(d).filter((n) => n.endsWith('.kclog')).length}`);
          await defaultLogIO.syncDir(d);
        },
        datasync: async (fh) => {
          events.push('data');
          await defaultLogIO.datasync(fh);
        },
      },
    });
    for (let i = 0; i < 6; i++) await log.append(msg(i));
    const segs = await listSegments(dir);
    expect(segs.length).toBeGreaterThan(1);
    // each segment's directory fsync (the first one's at open) happens after the file exists and
    // before the data sync that acknowledges records in it
    const dirSyncs = events.filter((e) => e.startsWith('dir'));
    expect(dirSyncs).toEqual(segs.map((_, i) => `dir ${i + 1}`));
    for (let i = 0; i < events.length; i++) {
      if (events[i]!.startsWith('dir')) expect(events[i + 1]).toBe('data');
    }
    await log.close();
  });

  it('one writer per directory; a lock left by a dead process is taken over', async () => {
    const dir = tempDir();
    const a = await openSegmentLog(dir);
    await expect(openSegmentLog(dir)).rejects.toThrow(/in use by process \d+/);
    await a.close();
    // a stale lock (pid that cannot exist)
    appendFileSync(join(dir, 'LOCK'), '4194999\n');
    const b = await openSegmentLog(dir);
    await b.append(msg(1));
    await b.close();
  });

  it('refuses what it cannot store, with a reason, without using an offset', async () => {
    const dir = tempDir();
    const log = await openSegmentLog(dir, { maxRecordBytes: 200 });
    await expect(log.append(msg(1, { payload: 'x'.repeat(500) }))).rejects.toThrow(/over the 200 limit/);
    await expect(log.append({ ...msg(2), kind: 'NOPE' as 'REQUEST' })).rejects.toThrow(/cannot store/);
    expect((await log.append(msg(3))).offset).toBe(0);
    await log.close();
    await expect(log.append(msg(4))).rejects.toThrow(/closed/);
    const unopened = new SegmentLog(dir);
    await expect(unopened.append(msg(5))).rejects.toThrow(/not open/);
  });

  it('reads from a time, follows new records, and a read-only reader sees another writer', async () => {
    const dir = tempDir();
    const log = await openSegmentLog(dir, { maxSegmentBytes: 200 });
    for (let i = 0; i < 5; i++) await log.append(msg(i));
    const since = await all(log, { since: new Date((1_700_000_000 + 3) * 1000) });
    expect(since.map((r) => r.offset)).toEqual([3, 4]);

    const reader = new SegmentLog(dir, { readOnly: true, pollMs: 10 });
    expect((await reader.open()).records).toBe(5);
    const ac = new AbortController();
    const seen: number[] = [];
    const following = (async () => {
      for await (const r of reader.read({ fromOffset: 3, follow: true, signal: ac.signal })) {
        seen.push(r.offset);
        if (seen.length === 5) ac.abort();
      }
    })();
    // new records, across a new segment
    for (let i = 5; i < 8; i++) await log.append(msg(i));
    await following;
    expect(seen).toEqual([3, 4, 5, 6, 7]);
    await expect(reader.append(msg(9))).rejects.toThrow(/read-only/);
    await reader.close();
    await log.close();
  });

  it('a read-only reader stops before a half-written last frame; the writer truncates it on open', async () => {
    const dir = tempDir();
    const log = await openSegmentLog(dir);
    for (let i = 0; i < 3; i++) await log.append(msg(i));
    await log.close();
    const seg = (await listSegments(dir))[0]!.path;
    const good = statSync(seg).size;
    appendFileSync(seg, Buffer.from([0, 0, 0, 60, 1, 2, 3, 4, 5, 6]));
    const reader = await openSegmentLog(dir, { readOnly: true });
    expect((await all(reader)).map((r) => r.offset)).toEqual([0, 1, 2]);
    await reader.close();
    const w = new SegmentLog(dir);
    const report = await w.open();
    expect(report.truncatedBytes).toBe(10);
    expect(statSync(seg).size).toBe(good);
    // the cut bytes are kept for inspection
    expect(readdirSync(dir).some((n) => n.endsWith('.corrupt'))).toBe(true);
    expect((await w.append(msg(3))).offset).toBe(3);
    expect((await all(w)).map((r) => r.message.id)).toEqual(['t-0', 't-1', 't-2', 't-3']);
    await w.close();
  });
});
