// A lock across processes around a read-modify-write of one file (issue #15.6: twenty `virgo conf
// set` at once kept 5 and 11 of their 20 updates, each process serialising only itself).
//
// The lock is `<file>.lock`, holding "<pid> <host> <ms since epoch> <token>", created whole and
// exclusively (link(2) of a written file, which fails when the name exists); it is removed when
// the holder is done. A holder that died (SIGKILL, a crash) leaves it behind: a
// lock whose pid no longer runs on this host, or (from another host, whose pids we cannot ask)
// older than `staleMs`, is stale and broken. Breaking renames the lock to a unique name first
// and checks it took the one it judged stale, so two processes breaking the same stale lock at
// once cannot remove a lock a third just took. No dependency: Node has no flock(2), and the
// npm lock libraries judge staleness by age alone, which a live but slow holder can outlast.

import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { processAlive } from './pids.ts';

export class FileLockError extends Error {
  override readonly name = 'FileLockError';
}

export interface FileLockOptions {
  /** give up after this long (default 10 s) */
  timeoutMs?: number;
  /** a lock from another host older than this is stale (default 60 s) */
  staleMs?: number;
}

const HOST = hostname();

interface Holder {
  pid: number;
  host: string;
  at: number;
}

function parse(text: string): Holder | undefined {
  const [pid, host, at] = text.trim().split(' ');
  const h = { pid: Number(pid), host: host ?? '', at: Number(at) };
  return Number.isInteger(h.pid) && h.pid > 0 && Number.isFinite(h.at) ? h : undefined;
}

function isStale(h: Holder | undefined, staleMs: number): boolean {
  // the lock appears whole (link of a written file), so one we cannot read is damaged
  if (!h) return true;
  if (h.host === HOST) return h.pid !== process.pid && !processAlive(h.pid);
  return Date.now() - h.at > staleMs;
}

/**
 * Creates the lock with its content in one step: the content goes to a file of our own, then
 * link(2) gives it the lock's name, failing if the name exists (the lockfile technique that also
 * holds on NFS). A lock is never seen empty, half written, or by two holders.
 */
async function tryCreate(lock: string, content: string): Promise<boolean> {
  const tmp = `${lock}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`;
  const h = await open(tmp, 'wx', 0o644);
  try {
    await h.writeFile(content);
  } finally {
    await h.close();
  }
  try {
    await link(tmp, lock);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Moves a stale lock out of the way; false when the lock had changed hands meanwhile. */
async function breakLock(lock: string, judged: string): Promise<boolean> {
  const aside = `${lock}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.stale`;
  try {
    await rename(lock, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  const took = await readFile(aside, 'utf8').catch(() => '');
  if (took === judged) {
    await unlink(aside).catch(() => {});
    return true;
  }
  // a live holder's lock: give it back (link fails if yet another one was taken meanwhile)
  await link(aside, lock).catch(() => {});
  await unlink(aside).catch(() => {});
  return false;
}

/** Runs `fn` holding `<path>.lock` against every other process that locks `path` this way. */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  opts: FileLockOptions = {},
): Promise<T> {
  const lock = `${path}.lock`;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const staleMs = opts.staleMs ?? 60_000;
  // the token tells two holders of one process apart (release removes only its own lock)
  const mine = `${process.pid} ${HOST} ${Date.now()} ${Math.random().toString(36).slice(2, 10)}\n`;
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    try {
      if (await tryCreate(lock, mine)) break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint =
        code === 'EACCES' || code === 'EPERM'
          ? ' (permission denied: run as root, or choose another file)'
          : code === 'ENOENT'
            ? ' (the directory does not exist)'
            : '';
      throw new FileLockError(`cannot create the lock ${lock}: ${code ?? (err as Error).message}${hint}`, {
        cause: err,
      });
    }
    const text = await readFile(lock, 'utf8').catch(() => undefined);
    if (text === undefined) continue; // released meanwhile
    const holder = parse(text);
    if (isStale(holder, staleMs) && (await breakLock(lock, text))) continue;
    if (Date.now() > deadline) {
      throw new FileLockError(
        `${path} is locked by ${holder ? `process ${holder.pid} on ${holder.host}` : 'another process'} ` +
          `(${lock}) for over ${timeoutMs / 1000} s; wait for it, or remove ${lock} if no such process runs`,
      );
    }
    // back off a little, with jitter, so twenty waiters do not retry in step
    await new Promise((r) => setTimeout(r, wait + Math.random() * wait));
    wait = Math.min(50, wait * 2);
  }
  try {
    return await fn();
  } finally {
    // ours unless a peer judged us stale (then it is theirs: leave it)
    const now = await readFile(lock, 'utf8').catch(() => undefined);
    if (now === mine) await unlink(lock).catch(() => {});
  }
}
