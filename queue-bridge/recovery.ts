// What a writer does when it opens a queue directory (docs/design.md §5.8): every segment is read
// through any damage (segment-scan.ts), every valid record stays in the log at its offset, and
// only the damaged bytes leave it, into `.corrupt` files that are never replaced. Offset ranges
// that lost their records are recorded in MANIFEST.json with why; a segment the manifest lists
// but the directory lacks is reported, and when it was the newest, new records start above every
// offset ever reserved, so no offset is handed out twice.
//
// A torn write at the end of the newest segment (a frame cut short by a crash before its
// fdatasync, so never acknowledged) is cut and its offset is used again, as before; any other
// damage at the end moves the next offset past every frame the damaged bytes could have held.
import { type FileHandle, open, rename, truncate, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createLogger } from '../runtime/log.ts';
import { encodeFrameV2, FRAME_HEADER_BYTES, FRAME_V2_HEADER_BYTES, MIN_BODY_BYTES } from './frame.ts';
import { emptyManifest, type Loss, type Manifest, readManifest, writeManifest } from './manifest.ts';
import { logRecovered } from './metrics.ts';
import { listSegments, quarantineBytes, segmentName } from './segment-files.ts';
import { encodeSegmentHeader, newSalt, SEGMENT_HEADER_BYTES } from './segment-header.ts';
import { type Damage, type SegmentScan, scanSegment } from './segment-scan.ts';

const log = createLogger('kingcobra.recovery');

/** A segment as the writer and its readers track it. */
export interface LiveSegment {
  base: number;
  path: string;
  format: 1 | 2;
  /** CRC seed of its frames (format 1: 0) */
  salt: number;
  /** byte where frames start (format 2: after the header) */
  dataStart: number;
  /** the offset its next record would get (its last record's plus one, or its base) */
  next: number;
  /** records in it */
  count: number;
  /** bytes written */
  size: number;
  /** bytes known durable */
  synced: number;
}

export interface RecoveryReport {
  segments: number;
  records: number;
  /** bytes moved out of live segments (damaged ranges and torn tails), kept in `.corrupt` files */
  truncatedBytes: number;
  /** the `.corrupt` files this recovery wrote */
  quarantined: string[];
  /** valid records found after damage and kept in the log at their offsets */
  salvagedRecords: number;
  /** offset ranges whose records this recovery found gone */
  lost: Loss[];
  /** segments MANIFEST.json lists that are not in the directory */
  missingSegments: string[];
}

export interface Recovered {
  segs: LiveSegment[];
  manifest: Manifest;
  report: RecoveryReport;
}

const MIN_V1_FRAME = FRAME_HEADER_BYTES + MIN_BODY_BYTES;
const MIN_V2_FRAME = FRAME_V2_HEADER_BYTES + MIN_BODY_BYTES;

/** A cut read as a torn write (never acknowledged): a frame running past the end, or zeros. */
function isTorn(d: Damage): boolean {
  return d.tail && (d.problem === 'incomplete' || d.problem === 'zero-length');
}

async function readRange(path: string, from: number, to: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(Math.max(0, to - from));
    if (b.length > 0) await fh.read(b, 0, b.length, from);
    return b;
  } finally {
    await fh.close();
  }
}

async function truncateDurably(path: string, size: number): Promise<void> {
  await truncate(path, size);
  const fh = await open(path, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** A format 2 segment that holds its header and no record yet. */
function emptySegment(base: number, path: string, salt: number): LiveSegment {
  return {
    base,
    path,
    format: 2,
    salt,
    dataStart: SEGMENT_HEADER_BYTES,
    next: base,
    count: 0,
    size: SEGMENT_HEADER_BYTES,
    synced: SEGMENT_HEADER_BYTES,
  };
}

/** What a recovery found, before it has looked. */
export function emptyReport(): RecoveryReport {
  return {
    segments: 0,
    records: 0,
    truncatedBytes: 0,
    quarantined: [],
    salvagedRecords: 0,
    lost: [],
    missingSegments: [],
  };
}

/** Creates segment `base` (format 2, header durable); the caller fsyncs the directory. */
export async function createSegment(dir: string, base: number): Promise<LiveSegment> {
  const path = join(dir, segmentName(base));
  const salt = newSalt();
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'wx');
    await fh.writeFile(encodeSegmentHeader(base, salt));
    await fh.datasync();
  } catch (err) {
    await fh?.close().catch(() => {});
    if (fh) await unlink(path).catch(() => {});
    throw err;
  } finally {
    await fh?.close().catch(() => {});
  }
  return emptySegment(base, path, salt);
}

/** Writes a fresh header over a segment that has none (or a torn one) and no records. */
async function initialiseInPlace(path: string, base: number): Promise<LiveSegment> {
  const salt = newSalt();
  const fh = await open(path, 'r+');
  try {
    await fh.truncate(0);
    await fh.write(encodeSegmentHeader(base, salt), 0, SEGMENT_HEADER_BYTES, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return emptySegment(base, path, salt);
}

/** Replaces a segment by its valid frames under a sound header (temp file, fdatasync, rename). */
async function rewriteSegment(path: string, base: number, salt: number, scan: SegmentScan): Promise<number> {
  const parts = [encodeSegmentHeader(base, salt)];
  for (const f of scan.frames) parts.push(encodeFrameV2(f.payload, f.offset!, salt));
  const body = Buffer.concat(parts);
  const tmp = `${path}.${process.pid}.rewrite.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(body);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return body.length;
}

export interface RecoverOptions {
  maxRecordBytes: number;
  syncDir(dir: string): Promise<void>;
}

/** Recovers the segments of `dir` (the caller holds its lock). */
export async function recoverLog(dir: string, o: RecoverOptions): Promise<Recovered> {
  const files = await listSegments(dir);
  const old = await readManifest(dir);
  const m: Manifest = old
    ? { ...old, segments: [...old.segments], losses: [...old.losses] }
    : emptyManifest();
  const at = new Date().toISOString();
  const report = emptyReport();
  const lose = (from: number, to: number, reason: string, kept?: string) => {
    if (to <= from) return;
    const l: Loss = { from, to, reason, at, ...(kept ? { kept } : {}) };
    report.lost.push(l);
    m.losses.push(l);
  };
  const keep = async (name: string, d: Damage, head: Buffer[], path: string) => {
    const kept = await quarantineBytes(dir, name, d.from, [...head, await readRange(path, d.from, d.to)]);
    report.quarantined.push(kept);
    report.truncatedBytes += d.to - d.from;
    logRecovered.inc(d.to - d.from);
    return basename(kept);
  };
  let dirChanged = false;
  const segs: LiveSegment[] = [];
  /** the newest segment has no header yet (created, or cut inside it) */
  let newestBlank = false;

  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const nextBase = files[i + 1]?.base;
    const newest = i === files.length - 1;
    const name = basename(f.path);
    const opts = { base: f.base, nextBase, maxRecordBytes: o.maxRecordBytes, keepPayloads: false };
    let scan = await scanSegment(f.path, opts);

    if (scan.header.format === 'partial') {
      if (newest) newestBlank = true;
      else
        lose(f.base, nextBase!, `${name} has no complete header (${scan.size} bytes): cut or never written`);
      const seg: LiveSegment = {
        base: f.base,
        path: f.path,
        format: 2,
        salt: 0,
        dataStart: scan.size,
        next: f.base,
        count: 0,
        size: scan.size,
        synced: scan.size,
      };
      segs.push(seg);
      continue;
    }

    if (scan.header.format === 1) {
      // Offsets are positions here: nothing after the first damage can keep its offset. The rest
      // of the file goes to a .corrupt file, where `virgo queue salvage` finds its valid records.
      const first = scan.damage[0];
      const before = first ? scan.frames.filter((fr) => fr.pos < first.from).length : scan.frames.length;
      let next = f.base + before;
      let size = scan.size;
      if (first) {
        const kept = await keep(name, { ...first, to: scan.size }, [], f.path);
        await truncateDurably(f.path, first.from);
        dirChanged = true;
        size = first.from;
        const after = scan.frames.length - before;
        const why = `format 1 segment ${name} damaged at byte ${first.from} (${first.detail}); ${after} valid records after it kept in ${kept} (virgo queue salvage appends them again)`;
        if (!newest) lose(next, nextBase!, why, kept);
        else if (!(isTorn(first) && after === 0)) {
          const bound = next + Math.max(1, Math.floor((scan.size - first.from) / MIN_V1_FRAME));
          lose(next, bound, why, kept);
          next = bound;
        }
      }
      segs.push({
        base: f.base,
        path: f.path,
        format: 1,
        salt: 0,
        dataStart: 0,
        next,
        count: before,
        size,
        synced: size,
      });
      continue;
    }

    // format 2: records carry their offsets, so every valid one stays where it was.
    const header = scan.header;
    const salt = scan.format.salt;
    let rewrite = header.damaged || header.base !== f.base;
    if (scan.damage.some((d) => !d.tail)) rewrite = true;
    if (rewrite) scan = await scanSegment(f.path, { ...opts, keepPayloads: true });
    const head = [encodeSegmentHeader(f.base, salt)];
    let next = (scan.frames.at(-1)?.offset ?? f.base - 1) + 1;
    let size = scan.size;
    const firstDamage = scan.damage[0];
    for (const d of scan.damage) {
      const prev = scan.frames.filter((fr) => fr.pos < d.from).at(-1)?.offset ?? f.base - 1;
      const kept = await keep(name, d, head, f.path);
      dirChanged = true;
      const why = `${name} bytes ${d.from}-${d.to}: ${d.detail}`;
      if (!d.tail) {
        const after = scan.frames.find((fr) => fr.pos >= d.to)!.offset!;
        lose(prev + 1, after, why, kept);
      } else if (!newest) {
        lose(prev + 1, nextBase!, why, kept);
      } else if (!isTorn(d)) {
        // damage at the end: its records may have been acknowledged and read; never reuse them
        const bound = prev + 1 + Math.max(1, Math.floor((d.to - d.from) / MIN_V2_FRAME));
        lose(prev + 1, bound, `${why} (at the end of the newest segment)`, kept);
        next = bound;
      }
      if (d.tail) size = d.from;
    }
    if (firstDamage) {
      report.salvagedRecords += scan.frames.filter((fr) => fr.pos > firstDamage.from).length;
    }
    if (rewrite) {
      size = await rewriteSegment(f.path, f.base, salt, scan);
      dirChanged = true;
    } else if (size < scan.size) {
      await truncateDurably(f.path, size);
    }
    segs.push({
      base: f.base,
      path: f.path,
      format: 2,
      salt,
      dataStart: SEGMENT_HEADER_BYTES,
      next,
      count: scan.frames.length,
      size,
      synced: size,
    });
  }

  // Segments the manifest lists that are gone: a run of them before a present segment lost the
  // offsets up to that segment's base; a run at the end lost everything up to the reservation.
  let startAt: number | undefined;
  if (old) {
    const present = new Set(files.map((f) => f.base));
    const missing = old.segments.filter((b) => !present.has(b)).sort((a, b) => a - b);
    let covered = -1;
    for (const b of missing) {
      report.missingSegments.push(segmentName(b));
      if (b < covered) continue;
      const after = files.find((f) => f.base > b);
      if (after) {
        lose(b, after.base, `segment ${segmentName(b)} listed in MANIFEST.json is missing`);
        covered = after.base;
      } else {
        const last = segs.at(-1);
        startAt = Math.max(old.reserved, b, last?.next ?? 0);
        lose(
          last ? Math.min(last.next, b) : b,
          startAt,
          `segment ${segmentName(b)}, the newest MANIFEST.json lists, is missing; offsets below ${startAt} may have been used, new records start there`,
        );
        covered = Number.POSITIVE_INFINITY;
      }
    }
  }

  // The segment new records go to: always format 2.
  const last = segs.at(-1);
  if (startAt !== undefined || !last) {
    const base = startAt ?? Math.max(old?.reserved ?? 0, 0);
    if (last && newestBlank) {
      // a blank newest segment below the new start holds nothing: leave it as an empty segment
      segs.pop();
      await unlink(last.path);
    }
    segs.push(await createSegment(dir, base));
    dirChanged = true;
  } else if (newestBlank || (last.format === 1 && last.size === 0 && last.next === last.base)) {
    segs[segs.length - 1] = await initialiseInPlace(last.path, last.base);
  } else if (last.format === 1) {
    segs.push(await createSegment(dir, last.next));
    dirChanged = true;
  }
  if (dirChanged) await o.syncDir(dir);

  const nextOffset = segs.at(-1)!.next;
  const bases = segs.map((s) => s.base);
  const changed =
    !old ||
    report.lost.length > 0 ||
    old.segments.length !== bases.length ||
    old.segments.some((b, i) => b !== bases[i]) ||
    old.reserved < nextOffset;
  m.segments = bases;
  m.reserved = Math.max(m.reserved, nextOffset);
  if (changed) await writeManifest(dir, m);

  report.segments = segs.length;
  report.records = segs.reduce((n, s) => n + s.count, 0);
  if (report.quarantined.length > 0 || report.lost.length > 0 || report.missingSegments.length > 0) {
    log.warn('recovered the segment log', {
      dir,
      truncatedBytes: report.truncatedBytes,
      salvagedRecords: report.salvagedRecords,
      quarantined: report.quarantined.map((p) => basename(p)),
      lost: report.lost.map((l) => `${l.from}-${l.to - 1}: ${l.reason}`),
      missingSegments: report.missingSegments,
      records: report.records,
    });
  }
  return { segs, manifest: m, report };
}
