// `virgo queue check`: what a queue directory holds and what is wrong with it, read-only (a
// writer may be running). Every segment is read through damage (segment-scan.ts); offsets with
// no record are gaps, explained by MANIFEST.json's losses where recovery recorded them; damage
// no writer has recovered yet, segments the manifest lists but the directory lacks, and
// quarantined files holding records the log does not have are problems, each naming its fix.
import { open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { processAlive } from '../runtime/pids.ts';
import { codecFor } from '../schemas/index.ts';
import { type Loss, MANIFEST_NAME, type Manifest, readManifest } from './manifest.ts';
import { listQuarantined, listSegments, segmentName } from './segment-files.ts';
import { parseSegmentHeader, SEGMENT_HEADER_BYTES } from './segment-header.ts';
import { type SegmentScan, scanSegment } from './segment-scan.ts';

export interface CheckedSegment {
  name: string;
  format: 1 | 2 | 'blank';
  records: number;
  firstOffset: number | null;
  lastOffset: number | null;
  bytes: number;
}

export interface CheckReport {
  dir: string;
  segments: CheckedSegment[];
  records: number;
  /** the next offset a writer would hand out, as far as the files tell */
  nextOffset: number;
  /** offsets [from, to) with no record, and why when recovery recorded it */
  gaps: (Pick<Loss, 'from' | 'to'> & { reason?: string; kept?: string })[];
  /** damaged bytes still in live segments (no writer has recovered them) */
  damage: { segment: string; from: number; to: number; detail: string }[];
  /** a frame cut short at the end of the newest segment: a write in progress, or a torn write */
  tornTail: { segment: string; from: number; to: number } | null;
  /** segments MANIFEST.json lists that are not in the directory */
  missingSegments: string[];
  quarantined: { file: string; bytes: number; records: number; notInLog: number }[];
  manifest: 'ok' | 'absent' | string;
  /** the pid in LOCK, when that process runs */
  writer: number | null;
  /** one line per problem, each naming its fix; empty: the log is whole */
  problems: string[];
}

const codec = codecFor('KingCobraMessage');

function idOf(payload: Buffer): string | undefined {
  try {
    return codec.decodeBody(payload).id;
  } catch {
    return undefined;
  }
}

async function writerPid(dir: string): Promise<number | null> {
  const pid = Number((await readFile(join(dir, 'LOCK'), 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : null;
}

/** A quarantined file read as whatever it holds: a format 2 header and frames, or format 1 frames. */
async function scanQuarantined(path: string, maxRecordBytes: number): Promise<SegmentScan> {
  const fh = await open(path, 'r');
  let base = 0;
  try {
    const head = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const h = parseSegmentHeader(head.subarray(0, bytesRead));
    if (h.format === 2) base = h.base;
  } finally {
    await fh.close();
  }
  return scanSegment(path, { base, maxRecordBytes });
}

/** The valid records of every quarantined file of `dir`, by file. */
export async function quarantinedRecords(
  dir: string,
  maxRecordBytes = 2 ** 20,
): Promise<{ file: string; bytes: number; frames: { payload: Buffer; offset: number | undefined }[] }[]> {
  const out = [];
  for (const path of await listQuarantined(dir)) {
    const scan = await scanQuarantined(path, maxRecordBytes);
    out.push({ file: path, bytes: scan.size, frames: scan.frames });
  }
  return out;
}

function lossFor(m: Manifest | undefined, from: number, to: number): Loss | undefined {
  return m?.losses.find((l) => l.from < to && from < l.to);
}

export async function checkLog(dir: string, opts: { maxRecordBytes?: number } = {}): Promise<CheckReport> {
  const maxRecordBytes = opts.maxRecordBytes ?? 2 ** 20;
  const report: CheckReport = {
    dir,
    segments: [],
    records: 0,
    nextOffset: 0,
    gaps: [],
    damage: [],
    tornTail: null,
    missingSegments: [],
    quarantined: [],
    manifest: 'absent',
    writer: await writerPid(dir),
    problems: [],
  };
  let manifest: Manifest | undefined;
  try {
    manifest = await readManifest(dir);
    report.manifest = manifest ? 'ok' : 'absent';
  } catch (err) {
    report.manifest = (err as Error).message;
    report.problems.push((err as Error).message);
  }

  // Quarantined records first: the scan of the log then tells which of them it lacks.
  const quarantine = await quarantinedRecords(dir, maxRecordBytes);
  const wanted = new Map<string, number>();
  for (const q of quarantine) {
    for (const f of q.frames) {
      const id = idOf(f.payload);
      if (id !== undefined) wanted.set(id, 0);
    }
  }

  const files = await listSegments(dir);
  let cursor = files[0]?.base ?? 0;
  /** what the next gap is explained by when the manifest has no word on it: damage just read past */
  let cause: string | undefined;
  const gap = (from: number, to: number) => {
    if (to <= from) return;
    const l = lossFor(manifest, from, to);
    const reason = l?.reason ?? cause;
    report.gaps.push({ from, to, ...(reason ? { reason } : {}), ...(l?.kept ? { kept: l.kept } : {}) });
  };
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const newest = i === files.length - 1;
    const name = basename(f.path);
    const scan = await scanSegment(f.path, {
      base: f.base,
      nextBase: files[i + 1]?.base,
      maxRecordBytes,
      keepPayloads: wanted.size > 0,
    });
    const placed = scan.frames.filter((fr) => fr.offset !== undefined);
    const seg: CheckedSegment = {
      name,
      format: scan.header.format === 'partial' ? 'blank' : scan.header.format,
      records: scan.frames.length,
      firstOffset: placed[0]?.offset ?? null,
      lastOffset: placed.at(-1)?.offset ?? null,
      bytes: scan.size,
    };
    report.segments.push(seg);
    report.records += scan.frames.length;
    if (scan.header.format === 2 && scan.header.damaged) {
      report.problems.push(
        `${name}: header damaged (its frames still read); a writer opening the log rewrites it`,
      );
    } else if (scan.header.format === 2 && scan.header.base !== f.base) {
      report.problems.push(
        `${name}: header says base offset ${scan.header.base}; was the file renamed? give it back its name (${segmentName(scan.header.base)})`,
      );
    }
    if (seg.format === 'blank' && !newest) {
      report.problems.push(`${name}: no complete segment header (${scan.size} bytes): cut or never written`);
    }
    if (f.base > cursor) gap(cursor, f.base);
    cause = undefined;
    cursor = Math.max(cursor, f.base);
    const damageAt = [...scan.damage];
    for (const fr of scan.frames) {
      while (damageAt.length > 0 && damageAt[0]!.from < fr.pos) {
        const d = damageAt.shift()!;
        cause = `destroyed by the damage at ${name} bytes ${d.from}-${d.to}`;
      }
      if (wanted.size > 0) {
        const id = idOf(fr.payload);
        if (id !== undefined && wanted.has(id)) wanted.set(id, 1);
      }
      if (fr.offset === undefined) continue;
      gap(cursor, fr.offset);
      cause = undefined;
      cursor = fr.offset + 1;
    }
    const tailDamage = damageAt.find((d) => !(newest && d.tail && d.problem === 'incomplete'));
    if (tailDamage) cause = `destroyed by the damage at ${name} bytes ${tailDamage.from}-${tailDamage.to}`;
    for (const d of scan.damage) {
      if (newest && d.tail && d.problem === 'incomplete') {
        report.tornTail = { segment: name, from: d.from, to: d.to };
        continue;
      }
      report.damage.push({ segment: name, from: d.from, to: d.to, detail: d.detail });
      const lostAfter = scan.frames.filter((fr) => fr.pos >= d.to && fr.offset === undefined).length;
      report.problems.push(
        `${name} bytes ${d.from}-${d.to}: ${d.detail}${lostAfter ? ` (${lostAfter} format 1 records after it cannot keep their offsets)` : ''}; ` +
          `a writer opening the log (virgo queue serve, virgo up${report.writer ? `: restart process ${report.writer}` : ''}) moves it aside and keeps every valid record`,
      );
    }
  }
  report.nextOffset = cursor;
  for (const g of report.gaps) {
    const n = g.to - g.from;
    report.problems.push(
      `offsets ${g.from}-${g.to - 1} (${n} record${n === 1 ? '' : 's'}) are missing: ${g.reason ?? 'no recovery recorded why (a file cut or replaced by hand?)'}`,
    );
  }

  if (manifest) {
    const present = new Set(files.map((f) => f.base));
    for (const b of manifest.segments) {
      if (present.has(b)) continue;
      report.missingSegments.push(segmentName(b));
      report.problems.push(
        `segment ${segmentName(b)} is listed in ${MANIFEST_NAME} but missing: restore it from a backup; otherwise the next writer records its offsets as lost and never hands them out again`,
      );
    }
  }

  for (const q of quarantine) {
    let notInLog = 0;
    for (const f of q.frames) {
      const id = idOf(f.payload);
      if (id !== undefined && wanted.get(id) === 0) notInLog++;
    }
    const file = basename(q.file);
    report.quarantined.push({ file, bytes: q.bytes, records: q.frames.length, notInLog });
    if (notInLog > 0) {
      report.problems.push(
        `${file} holds ${notInLog} valid record${notInLog === 1 ? '' : 's'} the log does not: virgo queue salvage --dir ${dir} appends ${notInLog === 1 ? 'it' : 'them'} again (by id, never twice)`,
      );
    }
  }
  return report;
}

/** The report as text, one fact per line. */
export function formatCheck(r: CheckReport): string {
  const lines: string[] = [];
  const formats = new Map<string, number>();
  for (const s of r.segments) formats.set(String(s.format), (formats.get(String(s.format)) ?? 0) + 1);
  const fmt = [...formats].map(([f, n]) => (f === 'blank' ? `${n} blank` : `${n} format ${f}`)).join(', ');
  lines.push(
    `${r.dir}: ${r.segments.length} segments (${fmt || 'none'}), ${r.records} records, next offset ${r.nextOffset}` +
      `${r.writer ? `, writer pid ${r.writer}` : ''}, manifest ${r.manifest === 'ok' || r.manifest === 'absent' ? r.manifest : 'unreadable'}`,
  );
  for (const g of r.gaps) {
    lines.push(
      `gap: offsets ${g.from}-${g.to - 1}${g.reason ? `: ${g.reason}` : ''}${g.kept ? ` [bytes in ${g.kept}]` : ''}`,
    );
  }
  for (const d of r.damage) lines.push(`damage: ${d.segment} bytes ${d.from}-${d.to}: ${d.detail}`);
  if (r.tornTail) {
    lines.push(
      `torn tail: ${r.tornTail.segment} bytes ${r.tornTail.from}-${r.tornTail.to} (a write in progress, or a frame cut by a crash: never acknowledged)`,
    );
  }
  for (const m of r.missingSegments) lines.push(`missing: ${m} (listed in ${MANIFEST_NAME})`);
  for (const q of r.quarantined) {
    lines.push(
      `quarantined: ${q.file}: ${q.bytes} bytes, ${q.records} valid records` +
        (q.records === 0 ? ' (damaged bytes only: inspect, then delete)' : `, ${q.notInLog} not in the log`),
    );
  }
  if (r.problems.length === 0) lines.push('whole: no damage, no gap');
  else {
    lines.push(`damaged: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
    for (const p of r.problems) lines.push(`  - ${p}`);
  }
  return `${lines.join('\n')}\n`;
}
