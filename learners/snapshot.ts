// Crash-consistent snapshots of all learners at once: each save writes a fresh snap-<seq>/ and
// then atomically repoints CURRENT at it, so a restart loads a complete set (models, windows, gate
// state) or the previous one, never a mix. The previous snapshot is kept as a fallback.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

const CURRENT = 'CURRENT';
const SNAP_RE = /^snap-(\d{8})$/;

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeFileSync(fd, JSON.stringify(value));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** The directory of the current snapshot under `base`, if there is one. */
export function currentSnapshot(base: string): string | undefined {
  const p = join(base, CURRENT);
  if (!existsSync(p)) return undefined;
  const name = readFileSync(p, 'utf8').trim();
  if (!SNAP_RE.test(name) || !existsSync(join(base, name))) return undefined;
  return join(base, name);
}

/** Writes a new snapshot with `fill(dir)` and makes it current; returns its directory. */
export async function writeSnapshot(base: string, fill: (dir: string) => Promise<void>): Promise<string> {
  mkdirSync(base, { recursive: true });
  const snaps = readdirSync(base)
    .map((n) => SNAP_RE.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
  const seq = (snaps.length ? Math.max(...snaps) : 0) + 1;
  const name = `snap-${String(seq).padStart(8, '0')}`;
  const dir = join(base, name);
  mkdirSync(dir);
  try {
    await fill(dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  fsyncDir(dir);
  const tmp = join(base, `${CURRENT}.tmp-${process.pid}`);
  writeFileSync(tmp, `${name}\n`);
  renameSync(tmp, join(base, CURRENT));
  fsyncDir(base);
  // Keep this snapshot and the one before it; drop older ones and leftovers of crashed saves.
  const keep = new Set([name, `snap-${String(seq - 1).padStart(8, '0')}`]);
  for (const n of readdirSync(base)) {
    if (SNAP_RE.test(n) && !keep.has(n)) rmSync(join(base, n), { recursive: true, force: true });
  }
  return dir;
}
