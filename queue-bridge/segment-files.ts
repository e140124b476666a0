// Naming, listing and locking of the segment files of one queue directory.
import { constants } from 'node:fs';
import { open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../runtime/pids.ts';
import { LogError } from './errors.ts';

export const SEGMENT_SUFFIX = '.kclog';
const NAME = /^(\d{20})\.kclog$/;

/** A segment file is named by the offset of its first record, zero-padded so names sort. */
export function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

export interface SegmentFile {
  base: number;
  path: string;
}

/** The names in `dir`; none when it does not exist (yet). */
async function namesIn(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** The segment files of `dir`, by base offset; other files (locks, checkpoints, .corrupt) ignored. */
export async function listSegments(dir: string): Promise<SegmentFile[]> {
  const names = await namesIn(dir);
  const out: SegmentFile[] = [];
  for (const n of names) {
    const m = NAME.exec(n);
    if (m) out.push({ base: Number(m[1]), path: join(dir, n) });
  }
  return out.sort((a, b) => a.base - b.base);
}

/** fsync of a directory: makes a file's creation or rename durable. */
export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * One writer per queue directory: a LOCK file holding the writer's pid. A lock left by a dead
 * process (a crash, SIGKILL) is taken over; a live one is an error naming the pid.
 */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const h = await open(path, 'wx');
      await h.writeFile(`${process.pid}\n`);
      await h.close();
      return async () => {
        await unlink(path).catch(() => {});
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      throw new LogError(
        'locked',
        `queue directory ${dir} is in use by process ${pid}${pid === process.pid ? ' (this one)' : ''}; ` +
          'stop that writer or choose another --dir',
      );
    }
    await unlink(path).catch(() => {});
  }
  throw new LogError('locked', `cannot take the lock ${path}; remove it if no writer runs`);
}

/** Reads a small JSON state file next to the segments (replay checkpoints). */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes a small file atomically and durably: temp file, fdatasync, rename, directory fsync. */
export async function writeFileDurably(dir: string, name: string, text: string): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`);
  await writeFile(tmp, text, { flush: true });
  await rename(tmp, join(dir, name));
  await syncDir(dir);
}

export const QUARANTINE_SUFFIX = '.corrupt';

/** A UTC timestamp for file names: 20260131T120000123Z (processing time). */
function stamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace('.', '');
}

/** The `.corrupt` files of `dir`, by name. */
export async function listQuarantined(dir: string): Promise<string[]> {
  return (await namesIn(dir))
    .filter((n) => n.endsWith(QUARANTINE_SUFFIX))
    .sort()
    .map((n) => join(dir, n));
}

/**
 * Writes bytes moved out of segment `segName` (from its byte `at`) to a new file beside it,
 * `<segment>.at-<byte>.<UTC time>[-n].corrupt`, created with O_EXCL: a quarantined file is never
 * replaced, however often recovery runs. Durable (fdatasync) before it returns; the caller
 * fsyncs the directory. Returns its path.
 */
export async function quarantineBytes(
  dir: string,
  segName: string,
  at: number,
  parts: Buffer[],
): Promise<string> {
  const base = `${segName}.at-${at}.${stamp()}`;
  for (let n = 0; ; n++) {
    const path = join(dir, `${base}${n === 0 ? '' : `-${n}`}${QUARANTINE_SUFFIX}`);
    let h: Awaited<ReturnType<typeof open>>;
    try {
      h = await open(path, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    try {
      await h.writeFile(Buffer.concat(parts));
      await h.datasync();
    } finally {
      await h.close();
    }
    return path;
  }
}
