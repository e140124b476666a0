// `virgo queue salvage`: the valid records of quarantined `.corrupt` files back into the log.
// A record goes back only when no record with its id is in the log (ids are unique: process
// start + counter, or the legacy record's stable id), so running it twice, or on a file whose
// records recovery already kept, appends nothing. It is appended at the end with a new offset:
// the log is append-only, and the offsets it had stay a gap (`virgo queue check` says why).
// The quarantined files are left as they are: they are the evidence; delete them by hand.
import { basename } from 'node:path';
import { createLogger } from '../runtime/log.ts';
import { codecFor, type KingCobraMessage } from '../schemas/index.ts';
import { quarantinedRecords } from './check.ts';
import { openSegmentLog, type SegmentLogOptions } from './segment-log.ts';

const log = createLogger('kingcobra.salvage');

export interface SalvageReport {
  files: { file: string; valid: number; alreadyInLog: number; appended: number }[];
  appended: number;
  /** offsets the appended records got */
  offsets: { first: number; last: number } | null;
}

/** Takes the writer's lock (recovery runs first), appends what the log lacks, closes. */
export async function salvage(dir: string, opts: SegmentLogOptions = {}): Promise<SalvageReport> {
  const segLog = await openSegmentLog(dir, opts);
  try {
    const codec = codecFor('KingCobraMessage');
    const files = await quarantinedRecords(dir, opts.maxRecordBytes);
    // candidates by id, first file (by name: segment, byte, time) first
    const byId = new Map<string, { msg: KingCobraMessage; file: string }>();
    const perFile = files.map((f) => ({ file: basename(f.file), valid: 0, alreadyInLog: 0, appended: 0 }));
    files.forEach((f, i) => {
      for (const fr of f.frames) {
        let msg: KingCobraMessage;
        try {
          msg = codec.decodeBody(fr.payload);
        } catch {
          continue;
        }
        perFile[i]!.valid++;
        if (!byId.has(msg.id)) byId.set(msg.id, { msg, file: perFile[i]!.file });
        else perFile[i]!.alreadyInLog++;
      }
    });
    if (byId.size > 0) {
      for await (const r of segLog.read()) {
        const c = byId.get(r.message.id);
        if (!c) continue;
        perFile.find((p) => p.file === c.file)!.alreadyInLog++;
        byId.delete(r.message.id);
      }
    }
    // one append per record, issued together: they share group commits and keep this order
    const acks = await Promise.all(
      [...byId.values()].map(async (c) => {
        const a = await segLog.append(c.msg);
        perFile.find((p) => p.file === c.file)!.appended++;
        return a.offset;
      }),
    );
    const report: SalvageReport = {
      files: perFile,
      appended: acks.length,
      offsets: acks.length > 0 ? { first: acks[0]!, last: acks.at(-1)! } : null,
    };
    if (acks.length > 0)
      log.info('salvaged records appended', { dir, appended: acks.length, offsets: report.offsets });
    return report;
  } finally {
    await segLog.close();
  }
}
