// MANIFEST.json of a queue directory (docs/design.md §5.8): what must survive the loss of any
// segment file. It lists the segments the writer created (a missing one is noticed, not silently
// reused), the offsets reserved so far (no record was ever given an offset at or above
// `reserved`, so a writer that finds the newest segment gone starts there: offsets are never
// reused, as PostgreSQL's sequences log values ahead of use), and the offset ranges recovery
// found lost, with why. Written atomically and durably (temp file, fdatasync, rename, directory
// fsync); the writer rewrites it when it creates a segment and once per `reserveChunk` records.
import { join } from 'node:path';
import { LogError } from './errors.ts';
import { readJsonFile, writeFileDurably } from './segment-files.ts';

export const MANIFEST_NAME = 'MANIFEST.json';
/** losses kept in the manifest (the oldest are dropped past this; the log says the rest) */
const MAX_LOSSES = 1000;

/** Offsets [from, to) that no longer hold records, and why. */
export interface Loss {
  from: number;
  to: number;
  reason: string;
  /** when recovery found it (processing time, ISO 8601) */
  at: string;
  /** the file holding the bytes moved out of the log, if any */
  kept?: string;
}

export interface Manifest {
  format: 'kingcobra-manifest';
  version: 1;
  /** base offsets of the segments the writer created, ascending */
  segments: number[];
  /** every offset ever handed out is below this */
  reserved: number;
  losses: Loss[];
}

export function emptyManifest(): Manifest {
  return { format: 'kingcobra-manifest', version: 1, segments: [], reserved: 0, losses: [] };
}

function valid(m: unknown): m is Manifest {
  const x = m as Manifest;
  return (
    typeof x === 'object' &&
    x !== null &&
    x.format === 'kingcobra-manifest' &&
    Array.isArray(x.segments) &&
    x.segments.every((s) => Number.isSafeInteger(s) && s >= 0) &&
    Number.isSafeInteger(x.reserved) &&
    x.reserved >= 0 &&
    Array.isArray(x.losses)
  );
}

/** The manifest of `dir`; undefined when there is none (a directory from before manifests). */
export async function readManifest(dir: string): Promise<Manifest | undefined> {
  const path = join(dir, MANIFEST_NAME);
  let m: unknown;
  try {
    m = await readJsonFile<unknown>(path);
  } catch (err) {
    throw new LogError(
      'corrupt',
      `${path} is unreadable (${(err as Error).message}): restore it from a backup, or delete it and the ` +
        'writer rebuilds it from the segments (a segment deleted before then would go unnoticed)',
      { cause: err },
    );
  }
  if (m === undefined) return undefined;
  if (!valid(m)) {
    throw new LogError(
      'corrupt',
      `${path} is not a KingCobra manifest: restore it from a backup, or delete it and the writer rebuilds it from the segments`,
    );
  }
  return m;
}

export async function writeManifest(dir: string, m: Manifest): Promise<void> {
  const out: Manifest = { ...m, losses: m.losses.slice(-MAX_LOSSES) };
  await writeFileDurably(dir, MANIFEST_NAME, `${JSON.stringify(out, null, 1)}\n`);
}
