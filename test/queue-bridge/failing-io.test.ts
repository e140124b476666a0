// A full disk and a failing device, injected through the log's file operations: every error
// names the cause, nothing acknowledged is lost, and a half-written batch never hides later ones.
import { statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  defaultLogIO,
  encodeFrameV2,
  type LogIO,
  listSegments,
  openSegmentLog,
  SEGMENT_HEADER_BYTES,
  type SegmentLog,
  startQueueService,
} from '../../queue-bridge/index.ts';
import { codecFor } from '../../schemas/index.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanupDirs, msg, tempDir } from './lib/queue.ts';

afterAll(cleanupDirs);

function errno(code: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: simulated`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** File operations that fail on demand; a failing write first writes half its bytes. */
function faultyIO() {
  const f = { write: '', truncate: '', datasync: '' };
  const io: Partial<LogIO> = {
    async write(fh, data, position) {
      if (f.write) {
        await defaultLogIO.write(fh, data.subarray(0, data.length >> 1), position);
        throw errno(f.write);
      }
      await defaultLogIO.write(fh, data, position);
    },
    async truncate(fh, size) {
      if (f.truncate) throw errno(f.truncate);
      await defaultLogIO.truncate(fh, size);
    },
    async datasync(fh) {
      if (f.datasync) throw errno(f.datasync);
      await defaultLogIO.datasync(fh);
    },
  };
  return { f, io };
}

async function ids(log: SegmentLog): Promise<string[]> {
  const out: string[] = [];
  for await (const r of log.read()) out.push(r.message.id);
  return out;
}

/** a segment holding these records: its header and their frames */
const segmentBytes = (n: number[]) =>
  n.reduce(
    (sum, i, k) => sum + encodeFrameV2(codecFor('KingCobraMessage').encodeBody(msg(i)), k, 0).length,
    SEGMENT_HEADER_BYTES,
  );

describe('a failing disk', () => {
  it('ENOSPC mid-write: the batch is refused with the reason, the half frame is cut back, later appends land', async () => {
    const dir = tempDir();
    const { f, io } = faultyIO();
    const log = await openSegmentLog(dir, { io });
    await log.append(msg(0));
    f.write = 'ENOSPC';
    const failed = await Promise.allSettled([log.append(msg(1)), log.append(msg(2))]);
    for (const r of failed) {
      expect(r.status).toBe('rejected');
      expect(String((r as PromiseRejectedResult).reason)).toMatch(
        /ENOSPC: the disk is full.*not acknowledged/,
      );
    }
    f.write = '';
    expect((await log.append(msg(3))).offset).toBe(1);
    expect(log.stats().failedAppends).toBe(2);
    await log.close();
    const seg = (await listSegments(dir))[0]!.path;
    expect(statSync(seg).size).toBe(segmentBytes([0, 3]));
    const again = await openSegmentLog(dir);
    expect(await ids(again)).toEqual(['t-0', 't-3']);
    await again.close();
  });

  it('when the partial write cannot be cut back, the log stops and a reopen recovers the acknowledged prefix', async () => {
    const dir = tempDir();
    const { f, io } = faultyIO();
    const log = await openSegmentLog(dir, { io });
    await log.append(msg(0));
    f.write = 'EIO';
    f.truncate = 'EIO';
    await expect(log.append(msg(1))).rejects.toThrow(/stopped: a write failed \(EIO.*restart the service/);
    f.write = '';
    f.truncate = '';
    await expect(log.append(msg(2))).rejects.toThrow(/stopped/);
    expect(log.stats().failed).toMatch(/stopped/);
    await log.close();
    const again = await openSegmentLog(dir);
    expect(await ids(again)).toEqual(['t-0']);
    expect((await again.append(msg(4))).offset).toBe(1);
    await again.close();
  });

  it('a failed fdatasync stops the log: nothing after it is acknowledged until a reopen', async () => {
    const dir = tempDir();
    const { f, io } = faultyIO();
    const log = await openSegmentLog(dir, { io });
    await log.append(msg(0));
    f.datasync = 'EIO';
    await expect(log.append(msg(1))).rejects.toThrow(
      /fdatasync of .* failed \(EIO: the device reported an I\/O error\)/,
    );
    f.datasync = '';
    await expect(log.append(msg(2))).rejects.toThrow(/fdatasync/);
    await log.close();
    const again = await openSegmentLog(dir);
    const got = await ids(again);
    // the acknowledged record is there; the refused one may have reached the disk anyway
    expect(got[0]).toBe('t-0');
    expect(got.slice(1).every((id) => id === 't-1')).toBe(true);
    await again.close();
  });

  it('a service client whose request hits a full disk gets a clear ERROR line; the next request is served', async () => {
    const dir = tempDir();
    const { f, io } = faultyIO();
    const svc = await startQueueService({ dir, listen: { host: '127.0.0.1', port: 0 }, logOptions: { io } });
    const c = new LineClient(svc.port);
    c.send('first');
    await c.until(() => c.lines.length === 1, 'first reply');
    f.write = 'ENOSPC';
    c.send('second');
    await c.until(() => c.lines.length === 2, 'error line');
    expect(c.lines[1]).toMatch(/^ERROR#[\w-]+#127\.0\.0\.1:\d+:\d+ not queued: .*ENOSPC: the disk is full/);
    await expect(svc.submit('device telemetry', 'drone-1')).rejects.toThrow(/not queued.*ENOSPC/);
    f.write = '';
    c.send('third');
    await c.until(() => c.lines.length === 3, 'third reply');
    expect(c.lines[2]).toMatch(/^REPLY#/);
    c.end();
    await svc.close();
    const log = await openSegmentLog(dir, { readOnly: true });
    const payloads: string[] = [];
    for await (const r of log.read()) if (r.message.kind === 'REQUEST') payloads.push(r.message.payload);
    expect(payloads).toEqual(['first', 'third']);
    await log.close();
  });
});
