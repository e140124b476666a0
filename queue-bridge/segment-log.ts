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
// Offsets are global record sequence numbers, stored in each frame (format 2): segment files are
// named by the offset of their first record. Offsets are never handed out twice: recovery keeps
// every valid record at its offset, and MANIFEST.json (manifest.ts) reserves offsets ahead of use
// so that even a deleted newest segment cannot make them reused. Offsets can have gaps: records
// damage destroyed (recovery.ts records why).
import { EventEmitter } from 'node:events';
import { writeSync } from 'node:fs';
import { type FileHandle, mkdir, open, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { createLogger } from '../runtime/log.ts';
import { codecFor, type KingCobraMessage } from '../schemas/index.ts';
import { errnoCode, LogError } from './errors.ts';
import {
  encodeBodyInto,
  FORMAT_1,
  FRAME_V2_HEADER_BYTES,
  type FrameFormat,
  FrameReader,
  format2,
  sealFrame,
} from './frame.ts';
import { type Manifest, writeManifest } from './manifest.ts';
import { logAppends, logBatches, logErrors, logSyncSeconds } from './metrics.ts';
import { createSegment, emptyReport, type LiveSegment, type RecoveryReport, recoverLog } from './recovery.ts';
import { acquireLock, listSegments, segmentName, syncDir } from './segment-files.ts';
import { parseSegmentHeader, SEGMENT_HEADER_BYTES } from './segment-header.ts';
import { resyncRule, scanHandle } from './segment-scan.ts';

export type { RecoveryReport } from './recovery.ts';

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
  /** offsets reserved in MANIFEST.json at a time (default 2^20): one manifest write per this many records */
  reserveOffsets?: number;
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
  /**
   * Given: damaged bytes are read past (resynchronising on the next valid frame) and reported
   * here. Absent: damage stops the read with a LogError naming the fix.
   */
  onDamage?: (d: ReadDamage) => void;
}

/** Bytes a reader could not read as records. */
export interface ReadDamage {
  segment: string;
  from: number;
  /** end of the damaged bytes (the next valid frame, or the end of the file) */
  to: number;
  detail: string;
}

export interface LogStats {
  dir: string;
  segments: number;
  firstOffset: number;
  nextOffset: number;
  /** records in the log (offsets can have gaps: nextOffset - firstOffset may be more) */
  records: number;
  bytes: number;
  appends: number;
  batches: number;
  maxBatch: number;
  failedAppends: number;
  failed: string | null;
}

type Segment = LiveSegment;

/** How a reader reads one segment: its frame format and where frames start. */
interface SegmentFormat {
  frame: FrameFormat;
  dataStart: number;
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
  private readonly reserveOffsets: number;
  private readonly io: LogIO;
  private readonly type = codecFor('KingCobraMessage').type;
  private segs: Segment[] = [];
  private manifest: Manifest | undefined;
  private fh: FileHandle | undefined;
  private pending: Batch = newBatch(MIN_BATCH_BYTES);
  private spare: Buffer | undefined;
  private flushing: Promise<void> | undefined;
  private state: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new';
  private failure: LogError | undefined;
  private releaseLock: (() => Promise<void>) | undefined;
  private readonly events = new EventEmitter();
  private readonly counts = { appends: 0, batches: 0, maxBatch: 0, failedAppends: 0 };
  /** a read-only reader's view of each segment's format, by path (headers never change) */
  private readonly formats = new Map<string, SegmentFormat>();

  constructor(dir: string, opts: SegmentLogOptions = {}) {
    this.dir = dir;
    this.readOnly = opts.readOnly ?? false;
    this.maxSegmentBytes = opts.maxSegmentBytes ?? 64 * 2 ** 20;
    this.maxRecordBytes = opts.maxRecordBytes ?? 2 ** 20;
    this.pollMs = opts.pollMs ?? 100;
    this.reserveOffsets = Math.max(1, opts.reserveOffsets ?? 2 ** 20);
    this.io = { ...defaultLogIO, ...opts.io };
    this.events.setMaxListeners(0);
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** offset of the oldest record (at most: the oldest segment's base) */
  get firstOffset(): number {
    return this.segs[0]?.base ?? 0;
  }

  /** offset the next durable record gets (a reader: the end seen when it opened) */
  get nextOffset(): number {
    return this.segs.at(-1)?.next ?? 0;
  }

  /** records in the log (a reader: as of its open, closed segments estimated from their bases) */
  get records(): number {
    return this.segs.reduce((n, s) => n + s.count, 0);
  }

  /**
   * Opens the log. A writer takes the directory lock and recovers (recovery.ts): every valid
   * record stays at its offset, damaged bytes move to `.corrupt` files, lost offset ranges and
   * missing segments are recorded in MANIFEST.json. A reader only finds where the log ends.
   */
  async open(): Promise<RecoveryReport> {
    if (this.state !== 'new') throw new LogError('closed', `segment log ${this.dir} was already opened`);
    this.state = 'opening';
    let report = emptyReport();
    if (this.readOnly) {
      await this.countReadOnly();
    } else {
      await mkdir(this.dir, { recursive: true });
      this.releaseLock = await acquireLock(this.dir);
      try {
        const r = await recoverLog(this.dir, {
          maxRecordBytes: this.maxRecordBytes,
          syncDir: this.io.syncDir,
        });
        this.segs = r.segs;
        this.manifest = r.manifest;
        report = r.report;
        this.fh = await open(this.segs.at(-1)!.path, 'r+');
      } catch (err) {
        await this.releaseLock();
        this.releaseLock = undefined;
        this.state = 'closed';
        throw err;
      }
    }
    report.segments = this.segs.length;
    report.records = this.records;
    this.state = 'open';
    return report;
  }

  private async countReadOnly(): Promise<void> {
    const files = await listSegments(this.dir);
    for (let i = 0; i < files.length; i++) {
      const f = files[i]!;
      const next = files[i + 1];
      const seg: Segment = {
        base: f.base,
        path: f.path,
        format: 2,
        salt: 0,
        dataStart: 0,
        // closed segments: the next base bounds how many records this one holds, no scan needed
        next: next ? next.base : f.base,
        count: next ? next.base - f.base : 0,
        size: 0,
        synced: 0,
      };
      if (!next) {
        const fh = await open(f.path, 'r');
        try {
          const scan = await scanHandle(fh, {
            base: f.base,
            maxRecordBytes: this.maxRecordBytes,
            keepPayloads: false,
          });
          const lastOffset = scan.frames.filter((fr) => fr.offset !== undefined).at(-1)?.offset;
          seg.next = lastOffset === undefined ? f.base : lastOffset + 1;
          seg.count = scan.frames.length;
        } finally {
          await fh.close();
        }
      }
      this.segs.push(seg);
    }
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
        end = encodeBodyInto(this.type, msg, b.buf, b.len);
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
    const bodyBytes = end - b.len - FRAME_V2_HEADER_BYTES;
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
        if (seg.count > 0 && seg.size + ends[idx]! - startOf(idx) > this.maxSegmentBytes) {
          await this.rotate();
          seg = this.segs.at(-1)!;
        }
        // as many frames as fit in this segment (at least one: a segment may hold one big record)
        const from = startOf(idx);
        let end = idx + 1;
        while (end < n && seg.size + ends[end]! - from <= this.maxSegmentBytes) end++;
        const k = end - idx;
        const first = seg.next;
        if (first + k > this.manifest!.reserved) await this.reserve(first + k);
        // Offsets and the segment's salt are known only now: seal each frame (offset, CRC).
        for (let i = idx; i < end; i++) sealFrame(buf, startOf(i), ends[i]!, first + i - idx, seg.salt);
        await this.writeAt(seg, buf.subarray(from, ends[end - 1]));
        await this.sync(seg);
        seg.next += k;
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

  /**
   * Records in MANIFEST.json that offsets below `need` (and a chunk beyond) may be handed out,
   * before any of them is: after a lost newest segment the writer starts above them.
   */
  private async reserve(need: number): Promise<void> {
    const m = { ...this.manifest!, reserved: need + this.reserveOffsets };
    try {
      await writeManifest(this.dir, m);
    } catch (err) {
      logErrors.inc({ op: 'manifest' });
      throw new LogError(
        'write-failed',
        `cannot record reserved offsets in ${this.dir}/MANIFEST.json: ${describeIoError(err)}; these requests were not acknowledged`,
        { cause: err },
      );
    }
    this.manifest = m;
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

  /**
   * Starts the next segment: file and header durable, then its directory entry, then its place
   * in MANIFEST.json, all before any record in it is acknowledged.
   */
  private async rotate(): Promise<void> {
    const old = this.segs.at(-1)!;
    const base = old.next;
    let seg: Segment | undefined;
    let fh: FileHandle | undefined;
    try {
      seg = await createSegment(this.dir, base);
      fh = await open(seg.path, 'r+');
      await this.io.syncDir(this.dir);
      const m = { ...this.manifest!, segments: [...this.manifest!.segments, base] };
      await writeManifest(this.dir, m);
      this.manifest = m;
    } catch (err) {
      logErrors.inc({ op: 'rotate' });
      if (seg) {
        await fh?.close().catch(() => {});
        await unlink(seg.path).catch(() => {});
      }
      throw new LogError(
        'write-failed',
        `cannot start segment ${seg?.path ?? segmentName(base)}: ${describeIoError(err)}`,
        { cause: err },
      );
    }
    await this.fh!.close().catch((err: unknown) => log.warn('closing a full segment failed', { err }));
    this.fh = fh;
    this.segs.push(seg);
    log.debug('new segment', { path: seg.path, base });
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
      records: this.records,
      bytes: this.segs.reduce((n, s) => n + s.synced, 0),
      ...this.counts,
      failed: this.failure?.message ?? null,
    };
  }

  /** The segments a reader may read now, each with how far and (a writer's) format. */
  private async view(): Promise<{ base: number; path: string; limit: number; format?: SegmentFormat }[]> {
    if (!this.readOnly) {
      return this.segs.map((s) => ({
        base: s.base,
        path: s.path,
        limit: s.synced,
        format: { frame: s.format === 1 ? FORMAT_1 : format2(s.salt), dataStart: s.dataStart },
      }));
    }
    const files = await listSegments(this.dir);
    return files.map((f) => ({ base: f.base, path: f.path, limit: Number.POSITIVE_INFINITY }));
  }

  /** A read-only reader's view of a segment's format; undefined while its header is incomplete. */
  private async formatOf(fh: FileHandle, path: string, base: number): Promise<SegmentFormat | undefined> {
    const known = this.formats.get(path);
    if (known) return known;
    const head = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const { bytesRead } = await fh.read(head, 0, SEGMENT_HEADER_BYTES, 0);
    const h = parseSegmentHeader(head.subarray(0, bytesRead));
    let f: SegmentFormat;
    if (h.format === 'partial') return undefined;
    if (h.format === 1) f = { frame: FORMAT_1, dataStart: 0 };
    else if (!h.damaged) f = { frame: format2(h.salts[0]!), dataStart: SEGMENT_HEADER_BYTES };
    else {
      // a damaged header: the salt copy its frames validate with
      const scan = await scanHandle(fh, { base, maxRecordBytes: this.maxRecordBytes, keepPayloads: false });
      f = { frame: scan.format, dataStart: SEGMENT_HEADER_BYTES };
    }
    this.formats.set(path, f);
    return f;
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

  private damaged(path: string, pos: number, detail: string): LogError {
    return new LogError(
      'corrupt',
      `${path} byte ${pos}: ${detail}; \`virgo queue check --dir ${this.dir}\` lists the damage, and a writer ` +
        `opening the log (virgo queue serve, virgo up) moves it aside and keeps every valid record`,
    );
  }

  /**
   * The records in offset order, from `fromOffset` or the first at/after `since`. A writer's
   * reader sees only durable records; a read-only reader stops at a half-written last frame
   * (or waits there with `follow`). Damage that may have held offsets at or after `fromOffset`
   * stops the read with a LogError, or, with `onDamage`, is read past and reported; damage wholly
   * before `fromOffset` is read past silently.
   */
  async *read(opts: ReadOptions = {}): AsyncGenerator<LogRecord> {
    if (this.state === 'new' || this.state === 'opening') {
      throw new LogError('not-open', `segment log ${this.dir} is not open yet (call open())`);
    }
    const codec = codecFor('KingCobraMessage');
    const want = opts.fromOffset ?? 0;
    const sinceMs = opts.since === undefined ? undefined : +opts.since;
    let started = sinceMs === undefined;
    /** where this reader is: a segment, a byte in it (-1: its first frame), the offset expected next */
    let cur: { base: number; pos: number; expect: number | undefined } | undefined;
    /** damage read past, reported once the next record's offset tells whether it concerns us */
    let pending: { d: ReadDamage; path: string } | undefined;
    const settle = (nextRecord: number | undefined) => {
      if (!pending) return;
      const { d, path } = pending;
      pending = undefined;
      // every offset the damage could have held is below the first one wanted
      if (nextRecord !== undefined && nextRecord <= want) return;
      if (!opts.onDamage) throw this.damaged(path, d.from, d.detail);
      opts.onDamage(d);
    };
    for (;;) {
      if (opts.signal?.aborted || this.state === 'closed') return;
      const segs = await this.view();
      if (!cur) {
        let idx = 0;
        for (let i = 0; i < segs.length; i++) if (segs[i]!.base <= want) idx = i;
        const s = segs[idx];
        if (s) cur = { base: s.base, pos: -1, expect: s.base };
      }
      const i = cur ? segs.findIndex((s) => s.base === cur!.base) : -1;
      if (cur && i < 0) {
        throw new LogError(
          'corrupt',
          `segment ${segmentName(cur.base)} of ${this.dir} disappeared while reading (a recovering writer rewrote it?)`,
        );
      }
      let next: (typeof segs)[number] | undefined;
      if (cur) {
        const seg = segs[i]!;
        next = segs[i + 1];
        const name = basename(seg.path);
        const fh = await open(seg.path, 'r');
        let blank = false;
        try {
          const fmt = seg.format ?? (await this.formatOf(fh, seg.path, seg.base));
          if (!fmt) {
            blank = true;
          } else {
            if (cur.pos < 0) cur.pos = fmt.dataStart;
            const v2 = fmt.frame.headerBytes === 16;
            const reader = new FrameReader(fh, cur.pos, seg.limit, this.maxRecordBytes, fmt.frame);
            for (;;) {
              const f = reader.nextBuffered() ?? (await reader.next());
              if (f.kind === 'end') break;
              let bad: { pos: number; detail: string } | undefined;
              if (f.kind === 'bad') {
                // a frame running past the end of the newest segment: a write in progress, or
                // a torn write no writer has cut yet (never acknowledged)
                if (f.problem === 'incomplete' && !next) break;
                bad = f;
              } else if (
                v2 &&
                (f.offset! < (cur.expect ?? 0) || (next !== undefined && f.offset! >= next.base))
              ) {
                bad = { pos: f.pos, detail: `frame claims offset ${f.offset}, out of sequence` };
              }
              if (bad) {
                const size = Number.isFinite(seg.limit) ? seg.limit : (await fh.stat()).size;
                // format 1 cannot place records after damage: the rest of the segment is skipped
                const to = v2
                  ? ((await reader.resync(bad.pos, resyncRule(fmt.frame, cur.expect, next?.base, bad.pos))) ??
                    size)
                  : size;
                settle(undefined);
                pending = { d: { segment: name, from: bad.pos, to, detail: bad.detail }, path: seg.path };
                cur.pos = to;
                if (to >= size) break;
                continue;
              }
              if (f.kind !== 'frame') continue;
              const offset = v2 ? f.offset! : cur.expect!;
              settle(offset);
              cur.expect = offset + 1;
              cur.pos = reader.position;
              if (offset < want) continue;
              let message: KingCobraMessage;
              try {
                message = codec.decodeBody(f.payload);
              } catch (err) {
                const detail = `record ${offset} passed its CRC but is not a KingCobraMessage: ${(err as Error).message}`;
                if (!opts.onDamage) throw this.damaged(seg.path, f.pos, detail);
                opts.onDamage({ segment: name, from: f.pos, to: f.end, detail });
                continue;
              }
              if (!started) {
                if (recordMs(message) < sinceMs!) continue;
                started = true;
              }
              yield { offset, message };
              if (opts.signal?.aborted) return;
            }
          }
        } finally {
          await fh.close();
        }
        if (next) {
          if (blank) {
            settle(undefined);
            pending = {
              d: { segment: name, from: 0, to: 0, detail: 'no complete segment header' },
              path: seg.path,
            };
          }
          // a damaged end of this segment held offsets below the next one's base at most
          settle(next.base);
          cur = { base: next.base, pos: -1, expect: next.base };
          continue;
        }
      }
      if (!opts.follow) {
        settle(undefined);
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
