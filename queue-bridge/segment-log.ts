// KingCobra's crash-safe REQUEST_REPLY log (docs/design.md §5.8): a directory of append-only
// segments of framed Avro KingCobraMessage records. One writer per directory (LOCK file); any
// number of readers, in this process or others.
//
// Durability: append() resolves only after the fdatasync that covers its frame. Appends that
// arrive while a write+fdatasync is in flight wait and go together in the next one (group
// commit), so many concurrent appends share one fdatasync. A new segment's directory entry is
// fsynced before any record in it is acknowledged. A failed write is cut back off the file so no
// later record lands behind a half frame; a failed fdatasync stops the log (the kernel may have
// dropped the dirty pages, PostgreSQL's "fsyncgate"): only a reopen, which re-verifies, resumes.
//
// Offsets are global record sequence numbers: segment files are named by the offset of their
// first record, and a record's offset is that base plus its index in the segment.
import { EventEmitter } from 'node:events';
import { writeSync } from 'node:fs';
import { type FileHandle, mkdir, open, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createLogger } from '../runtime/log.ts';
import { codecFor, type KingCobraMessage } from '../schemas/index.ts';
import { errnoCode, LogError } from './errors.ts';
import { encodeFrameInto, FRAME_HEADER_BYTES, FrameReader, type FrameResult } from './frame.ts';
import { logAppends, logBatches, logErrors, logRecovered, logSyncSeconds } from './metrics.ts';
import { acquireLock, listSegments, type SegmentFile, segmentName, syncDir } from './segment-files.ts';

const log = createLogger('kingcobra.log');

/** The file operations the log depends on; tests inject failing ones (a full disk, EIO). */
export interface LogIO {
  /** writes all of `data` at `position`; may write a part before throwing */
  write(fh: FileHandle, data: Buffer, position: number): Promise<void>;
  datasync(fh: FileHandle): Promise<void>;
  truncate(fh: FileHandle, size: number): Promise<void>;
  syncDir(dir: string): Promise<void>;
}

export const defaultLogIO: LogIO = {
  // The batch goes to the page cache with a plain write on the event loop: tens of microseconds,
  // cheaper than a thread-pool round trip. The fdatasync, the actual wait, runs in the pool.
  async write(fh, data, position) {
    let done = 0;
    while (done < data.length) {
      const n = writeSync(fh.fd, data, done, data.length - done, position + done);
      if (n <= 0) throw new Error(`short write: 0 of ${data.length - done} bytes`);
      done += n;
    }
  },
  datasync: (fh) => fh.datasync(),
  truncate: (fh, size) => fh.truncate(size),
  syncDir,
};

export interface SegmentLogOptions {
  /** a segment is closed and a new one started once it holds this many bytes (default 64 MiB) */
  maxSegmentBytes?: number;
  /** largest record payload (default 1 MiB); a longer frame length reads as damage */
  maxRecordBytes?: number;
  /** a reader: no lock, no recovery, never writes (another process may be writing) */
  readOnly?: boolean;
  io?: Partial<LogIO>;
  /** how often a read-only follower looks for new records (default 100 ms) */
  pollMs?: number;
}

export interface LogRecord {
  offset: number;
  message: KingCobraMessage;
}

export interface ReadOptions {
  /** first offset wanted (default: the oldest record) */
  fromOffset?: number;
  /** start at the first record whose timestamp is at or after this time (then everything after) */
  since?: Date | number;
  /** keep waiting for new records at the end instead of returning */
  follow?: boolean;
  signal?: AbortSignal;
}

export interface RecoveryReport {
  segments: number;
  records: number;
  /** bytes cut from a damaged or torn tail (kept in a .corrupt file beside the segment) */
  truncatedBytes: number;
  /** files moved aside as `<name>.corrupt` */
  quarantined: string[];
}

export interface LogStats {
  dir: string;
  segments: number;
  firstOffset: number;
  nextOffset: number;
  bytes: number;
  appends: number;
  batches: number;
  maxBatch: number;
  failedAppends: number;
  failed: string | null;
}

interface Segment {
  base: number;
  path: string;
  /** durable records (the writer counts a record once its fdatasync returned) */
  count: number;
  /** bytes written */
  size: number;
  /** bytes known durable */
  synced: number;
}

interface Waiter {
  resolve: (v: { offset: number }) => void;
  reject: (err: Error) => void;
}

/** Frames encoded back to back into one buffer: the write of a group commit needs no copy. */
interface Batch {
  buf: Buffer;
  len: number;
  /** end of each frame in buf */
  ends: number[];
  waiters: Waiter[];
}

const newBatch = (capacity: number): Batch => ({
  buf: Buffer.allocUnsafe(capacity),
  len: 0,
  ends: [],
  waiters: [],
});
const MIN_BATCH_BYTES = 16 * 1024;

function describeIoError(err: unknown): string {
  const code = errnoCode(err);
  if (code === 'ENOSPC') return 'ENOSPC: the disk is full (free space or move the queue with --dir)';
  if (code === 'EDQUOT') return 'EDQUOT: the disk quota is exhausted (raise it or move the queue with --dir)';
  if (code === 'EROFS') return 'EROFS: the file system is read-only';
  if (code === 'EIO') return 'EIO: the device reported an I/O error';
  return code;
}

function recordMs(m: KingCobraMessage): number {
  return m.ts_sec * 1000 + m.ts_nsec / 1e6;
}

export class SegmentLog {
  readonly dir: string;
  readonly readOnly: boolean;
  private readonly maxSegmentBytes: number;
  private readonly maxRecordBytes: number;
  private readonly pollMs: number;
  private readonly io: LogIO;
  private readonly type = codecFor('KingCobraMessage').type;
  private segs: Segment[] = [];
  private fh: FileHandle | undefined;
  private pending: Batch = newBatch(MIN_BATCH_BYTES);
  private spare: Buffer | undefined;
  private flushing: Promise<void> | undefined;
  private state: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new';
  private failure: LogError | undefined;
  private releaseLock: (() => Promise<void>) | undefined;
  private readonly events = new EventEmitter();
  private readonly counts = { appends: 0, batches: 0, maxBatch: 0, failedAppends: 0 };

  constructor(dir: string, opts: SegmentLogOptions = {}) {
    this.dir = dir;
    this.readOnly = opts.readOnly ?? false;
    this.maxSegmentBytes = opts.maxSegmentBytes ?? 64 * 2 ** 20;
    this.maxRecordBytes = opts.maxRecordBytes ?? 2 ** 20;
    this.pollMs = opts.pollMs ?? 100;
    this.io = { ...defaultLogIO, ...opts.io };
    this.events.setMaxListeners(0);
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** offset of the oldest record */
  get firstOffset(): number {
    return this.segs[0]?.base ?? 0;
  }

  /** offset the next durable record gets (a reader: the end seen when it opened) */
  get nextOffset(): number {
    const last = this.segs.at(-1);
    return last ? last.base + last.count : 0;
  }

  /**
   * Opens the log. A writer takes the directory lock, verifies every frame, and truncates at the
   * first bad one (a torn tail after a crash, or damage): the bytes cut are kept beside the
   * segment in a `.corrupt` file and later segments are renamed `.corrupt`, so what remains is a
   * prefix of what was written. A reader only counts the records.
   */
  async open(): Promise<RecoveryReport> {
    if (this.state !== 'new') throw new LogError('closed', `segment log ${this.dir} was already opened`);
    this.state = 'opening';
    const report: RecoveryReport = { segments: 0, records: 0, truncatedBytes: 0, quarantined: [] };
    if (this.readOnly) {
      await this.countReadOnly();
    } else {
      await mkdir(this.dir, { recursive: true });
      this.releaseLock = await acquireLock(this.dir);
      try {
        await this.recover(report);
      } catch (err) {
        await this.releaseLock();
        this.releaseLock = undefined;
        this.state = 'closed';
        throw err;
      }
    }
    report.segments = this.segs.length;
    report.records = this.nextOffset - this.firstOffset;
    this.state = 'open';
    return report;
  }

  private async countReadOnly(): Promise<void> {
    const files = await listSegments(this.dir);
    for (let i = 0; i < files.length; i++) {
      const f = files[i]!;
      const next = files[i + 1];
      if (next) {
        // Closed segments: the next base says how many records this one holds, no scan needed.
        this.segs.push({ base: f.base, path: f.path, count: next.base - f.base, size: 0, synced: 0 });
      } else {
        const scan = await this.scan(f.path);
        this.segs.push({ base: f.base, path: f.path, count: scan.count, size: scan.end, synced: scan.end });
      }
    }
  }

  private async scan(path: string): Promise<{ count: number; end: number; size: number; bad?: FrameResult }> {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const reader = new FrameReader(fh, 0, size, this.maxRecordBytes);
      let count = 0;
      for (;;) {
        const f = reader.nextBuffered() ?? (await reader.next());
        if (f.kind === 'frame') count++;
        else if (f.kind === 'end') return { count, end: f.pos, size };
        else return { count, end: f.pos, size, bad: f };
      }
    } finally {
      await fh.close();
    }
  }

  private async recover(report: RecoveryReport): Promise<void> {
    const files = await listSegments(this.dir);
    let cutAt = files.length;
    let reason = '';
    for (let i = 0; i < files.length; i++) {
      const f = files[i]!;
      const expected = i === 0 ? f.base : this.nextOffset;
      if (f.base !== expected) {
        cutAt = i;
        reason = `segment ${basename(f.path)} starts at offset ${f.base}, the previous one ends at ${expected}`;
        break;
      }
      const scan = await this.scan(f.path);
      this.segs.push({ base: f.base, path: f.path, count: scan.count, size: scan.end, synced: scan.end });
      if (scan.bad && scan.bad.kind === 'bad') {
        cutAt = i + 1;
        reason = `${basename(f.path)} byte ${scan.bad.pos}: ${scan.bad.detail}`;
        await this.cutTail(f.path, scan.end, scan.size, report);
        break;
      }
    }
    for (const f of files.slice(cutAt)) {
      const to = `${f.path}.corrupt`;
      await rename(f.path, to);
      report.quarantined.push(to);
    }
    if (report.truncatedBytes > 0 || report.quarantined.length > 0) {
      log.warn('recovered the segment log: cut at the first bad frame', {
        dir: this.dir,
        reason,
        truncatedBytes: report.truncatedBytes,
        quarantined: report.quarantined,
        records: this.nextOffset - this.firstOffset,
      });
    }
    if (this.segs.length === 0) {
      const base = files[0]?.base ?? 0;
      const path = join(this.dir, segmentName(base));
      const h = await open(path, 'wx');
      await h.close();
      this.segs.push({ base, path, count: 0, size: 0, synced: 0 });
      await this.io.syncDir(this.dir);
    } else if (report.quarantined.length > 0) {
      await this.io.syncDir(this.dir);
    }
    this.fh = await open(this.segs.at(-1)!.path, 'r+');
  }

  private async cutTail(path: string, end: number, size: number, report: RecoveryReport): Promise<void> {
    const fh = await open(path, 'r+');
    try {
      const tail = Buffer.alloc(size - end);
      await fh.read(tail, 0, tail.length, end);
      const keep = `${path}.${end}.corrupt`;
      await writeFile(keep, tail, { flush: true });
      report.quarantined.push(keep);
      await fh.truncate(end);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    report.truncatedBytes += size - end;
    logRecovered.inc(size - end);
  }

  /** Appends one record; resolves with its offset once an fdatasync made it durable. */
  append(msg: KingCobraMessage): Promise<{ offset: number }> {
    const refuse = this.refusal();
    if (refuse) {
      this.counts.failedAppends++;
      return Promise.reject(refuse);
    }
    const b = this.pending;
    let end: number;
    for (;;) {
      try {
        end = encodeFrameInto(this.type, msg, b.buf, b.len);
      } catch (err) {
        this.counts.failedAppends++;
        return Promise.reject(
          new LogError('encode', `cannot store ${msg?.kind} ${msg?.id}: ${(err as Error).message}`, {
            cause: err,
          }),
        );
      }
      if (end >= 0) break;
      const bigger = Buffer.allocUnsafe(Math.max(b.buf.length * 2, b.len - end + 4096));
      b.buf.copy(bigger, 0, 0, b.len);
      b.buf = bigger;
    }
    const bodyBytes = end - b.len - FRAME_HEADER_BYTES;
    if (bodyBytes > this.maxRecordBytes) {
      this.counts.failedAppends++;
      return Promise.reject(
        new LogError(
          'too-large',
          `record ${msg.id} is ${bodyBytes} bytes, over the ${this.maxRecordBytes} limit`,
        ),
      );
    }
    b.len = end;
    b.ends.push(end);
    return new Promise((resolve, reject) => {
      b.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private refusal(): LogError | undefined {
    if (this.readOnly) return new LogError('closed', `segment log ${this.dir} is open read-only`);
    if (this.state === 'new' || this.state === 'opening')
      return new LogError('not-open', `segment log ${this.dir} is not open yet (call open())`);
    if (this.state !== 'open') return new LogError('closed', `segment log ${this.dir} is closed`);
    return this.failure;
  }

  private schedule(): void {
    if (this.flushing) return;
    // setImmediate, not a microtask: appends triggered by every socket read of this event-loop
    // turn join the first batch too.
    this.flushing = new Promise<void>((r) => setImmediate(r)).then(() => this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.ends.length > 0) {
        const batch = this.pending;
        // the next batch starts at about this one's size, so it rarely has to grow
        const want = Math.min(8 * 2 ** 20, Math.max(MIN_BATCH_BYTES, batch.len * 2));
        // Two buffers take turns (one filling, one being written): no allocation per commit.
        const spare = this.spare;
        this.spare = undefined;
        this.pending = spare && spare.length >= want ? { ...newBatch(0), buf: spare } : newBatch(want);
        await this.commit(batch);
        this.spare = batch.buf;
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async commit(batch: Batch): Promise<void> {
    const { buf, ends, waiters } = batch;
    const n = ends.length;
    const startOf = (k: number) => (k === 0 ? 0 : ends[k - 1]!);
    let idx = 0;
    try {
      while (idx < n) {
        if (this.failure) throw this.failure;
        let seg = this.segs.at(-1)!;
        if (seg.size > 0 && seg.size + ends[idx]! - startOf(idx) > this.maxSegmentBytes) {
          await this.rotate();
          seg = this.segs.at(-1)!;
        }
        // as many frames as fit in this segment (at least one: a segment may hold one big record)
        const from = startOf(idx);
        let end = idx + 1;
        while (end < n && seg.size + ends[end]! - from <= this.maxSegmentBytes) end++;
        await this.writeAt(seg, buf.subarray(from, ends[end - 1]));
        await this.sync(seg);
        const first = seg.base + seg.count;
        const k = end - idx;
        seg.count += k;
        seg.synced = seg.size;
        for (let i = 0; i < k; i++) waiters[idx + i]!.resolve({ offset: first + i });
        idx = end;
        this.counts.appends += k;
        this.counts.batches++;
        if (k > this.counts.maxBatch) this.counts.maxBatch = k;
        logAppends.inc(k);
        logBatches.observe(k);
        this.events.emit('durable');
      }
    } catch (err) {
      this.counts.failedAppends += n - idx;
      for (let i = idx; i < n; i++) waiters[i]!.reject(err as Error);
    }
  }

  private async writeAt(seg: Segment, data: Buffer): Promise<void> {
    const at = seg.size;
    try {
      await this.io.write(this.fh!, data, at);
    } catch (err) {
      logErrors.inc({ op: 'write' });
      const failed = new LogError(
        'write-failed',
        `cannot write to ${seg.path}: ${describeIoError(err)}; these requests were not acknowledged`,
        { cause: err },
      );
      try {
        // A half-written frame followed by later good ones would make recovery drop the good
        // ones: undo this write before anything else is appended.
        await this.io.truncate(this.fh!, at);
      } catch (err2) {
        this.stop(
          new LogError(
            'stopped',
            `segment log ${this.dir} stopped: a write failed (${describeIoError(err)}) and cutting it back failed too ` +
              `(${describeIoError(err2)}); restart the service to recover`,
            { cause: err2 },
          ),
        );
        throw this.failure;
      }
      log.error('write failed; batch rejected, the log keeps going', { path: seg.path, err: errnoCode(err) });
      throw failed;
    }
    seg.size = at + data.length;
  }

  private async sync(seg: Segment): Promise<void> {
    const t0 = process.hrtime.bigint();
    try {
      await this.io.datasync(this.fh!);
    } catch (err) {
      logErrors.inc({ op: 'fdatasync' });
      this.stop(
        new LogError(
          'sync-failed',
          `segment log ${this.dir} stopped: fdatasync of ${seg.path} failed (${describeIoError(err)}); ` +
            'requests since the last good fdatasync were not acknowledged; restart the service to recover',
          { cause: err },
        ),
      );
      throw this.failure;
    }
    logSyncSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  }

  private stop(err: LogError): void {
    if (this.failure) return;
    this.failure = err;
    log.error(err.message);
  }

  private async rotate(): Promise<void> {
    const old = this.segs.at(-1)!;
    const base = old.base + old.count;
    const path = join(this.dir, segmentName(base));
    let fh: FileHandle | undefined;
    try {
      fh = await open(path, 'wx');
      // The new name must be durable before any record in it is acknowledged.
      await this.io.syncDir(this.dir);
    } catch (err) {
      logErrors.inc({ op: 'rotate' });
      if (fh) {
        await fh.close().catch(() => {});
        await unlink(path).catch(() => {});
      }
      throw new LogError('write-failed', `cannot start segment ${path}: ${describeIoError(err)}`, {
        cause: err,
      });
    }
    await this.fh!.close().catch((err: unknown) => log.warn('closing a full segment failed', { err }));
    this.fh = fh;
    this.segs.push({ base, path, count: 0, size: 0, synced: 0 });
    log.debug('new segment', { path, base });
  }

  /** Waits for every pending append, closes the files, releases the lock. */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    const wasOpen = this.state === 'open';
    this.state = 'closing';
    while (this.flushing) await this.flushing;
    if (wasOpen && this.fh) await this.fh.close().catch(() => {});
    this.fh = undefined;
    if (this.releaseLock) await this.releaseLock();
    this.releaseLock = undefined;
    this.state = 'closed';
    this.events.emit('closed');
  }

  stats(): LogStats {
    return {
      dir: this.dir,
      segments: this.segs.length,
      firstOffset: this.firstOffset,
      nextOffset: this.nextOffset,
      bytes: this.segs.reduce((n, s) => n + s.synced, 0),
      ...this.counts,
      failed: this.failure?.message ?? null,
    };
  }

  /** The segments a reader may read now, each with how far. */
  private async view(): Promise<{ base: number; path: string; limit: number }[]> {
    if (!this.readOnly) return this.segs.map((s) => ({ base: s.base, path: s.path, limit: s.synced }));
    const files: SegmentFile[] = await listSegments(this.dir);
    return files.map((f) => ({ base: f.base, path: f.path, limit: Number.POSITIVE_INFINITY }));
  }

  private waitForMore(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.events.off('durable', done);
        this.events.off('closed', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      // A writer announces new durable records; a reader of another process's log polls.
      const timer = setTimeout(done, this.readOnly ? this.pollMs : 60_000);
      this.events.on('durable', done);
      this.events.on('closed', done);
      signal?.addEventListener('abort', done);
    });
  }

  /**
   * The records in offset order, from `fromOffset` or the first at/after `since`. A writer's
   * reader sees only durable records; a read-only reader stops at a half-written last frame
   * (or waits there with `follow`).
   */
  async *read(opts: ReadOptions = {}): AsyncGenerator<LogRecord> {
    if (this.state === 'new' || this.state === 'opening') {
      throw new LogError('not-open', `segment log ${this.dir} is not open yet (call open())`);
    }
    const codec = codecFor('KingCobraMessage');
    const want = opts.fromOffset ?? 0;
    const sinceMs = opts.since === undefined ? undefined : +opts.since;
    let started = sinceMs === undefined;
    let cur: { base: number; pos: number; offset: number } | undefined;
    for (;;) {
      if (opts.signal?.aborted || this.state === 'closed') return;
      const segs = await this.view();
      if (!cur) {
        let idx = 0;
        for (let i = 0; i < segs.length; i++) if (segs[i]!.base <= want) idx = i;
        const s = segs[idx];
        if (s) cur = { base: s.base, pos: 0, offset: s.base };
      }
      const i = cur ? segs.findIndex((s) => s.base === cur!.base) : -1;
      if (cur && i < 0) {
        throw new LogError(
          'corrupt',
          `segment ${segmentName(cur.base)} of ${this.dir} disappeared while reading (a recovering writer moved it aside?)`,
        );
      }
      let stop: FrameResult | undefined;
      if (cur) {
        const seg = segs[i]!;
        const fh = await open(seg.path, 'r');
        try {
          const reader = new FrameReader(fh, cur.pos, seg.limit, this.maxRecordBytes);
          for (;;) {
            const f = reader.nextBuffered() ?? (await reader.next());
            if (f.kind !== 'frame') {
              stop = f;
              break;
            }
            const offset = cur.offset++;
            cur.pos = reader.position;
            if (offset < want) continue;
            let message: KingCobraMessage;
            try {
              message = codec.decodeBody(f.payload);
            } catch (err) {
              throw new LogError(
                'corrupt',
                `record ${offset} (${basename(seg.path)} byte ${f.pos}) passed its CRC but is not a KingCobraMessage: ${(err as Error).message}`,
              );
            }
            if (!started) {
              if (recordMs(message) < sinceMs!) continue;
              started = true;
            }
            yield { offset, message };
            if (opts.signal?.aborted) return;
          }
        } finally {
          await fh.close();
        }
        const next = segs[i + 1];
        if (stop?.kind === 'bad' && (next || !this.readOnly)) {
          throw new LogError(
            'corrupt',
            `${seg.path} byte ${stop.pos}: ${stop.detail}; a writer opening the log truncates there (virgo queue serve --dir ${this.dir})`,
          );
        }
        if (next) {
          if (next.base !== cur.offset) {
            throw new LogError(
              'corrupt',
              `${basename(seg.path)} ends at offset ${cur.offset} but the next segment starts at ${next.base}`,
            );
          }
          cur = { base: next.base, pos: 0, offset: next.base };
          continue;
        }
      }
      if (!opts.follow) {
        if (stop?.kind === 'bad' && stop.problem !== 'incomplete') {
          log.warn('stopped at a damaged frame at the end of the log', {
            dir: this.dir,
            detail: stop.detail,
          });
        }
        return;
      }
      await this.waitForMore(opts.signal);
    }
  }
}

/** A SegmentLog, opened. */
export async function openSegmentLog(dir: string, opts: SegmentLogOptions = {}): Promise<SegmentLog> {
  const l = new SegmentLog(dir, opts);
  await l.open();
  return l;
}
