// Lines from a file or a stream, as raw bytes (no decoding: publish-logs passes them on as they
// are). With `follow`, a file is followed like `tail -F`: by name, across rotation (the name points
// to a new file: the old one is read to its end first) and truncation in place (copytruncate: read
// again from the start, after the lines past our position were read from logrotate's copy).
// A file is known by device + inode + its first bytes (the fingerprint), as Filebeat and Vector
// know theirs: a truncated file refilled past our position keeps its inode and size but not its
// first bytes. Every line of a followed file carries the byte offset just past it, so publish-logs
// can checkpoint what the Bus acknowledged and resume there (`resume`).
// Waits are event-driven (fs.watch on the directory), with a slow poll as a safety net for file
// systems that do not report changes.
import { createHash } from 'node:crypto';
import { type FSWatcher, type Stats, watch } from 'node:fs';
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createLogger } from '../runtime/log.ts';

const log = createLogger('ingest.follow');

/** Leading bytes that identify a file (Filebeat's fingerprint default is 1 KiB too). */
export const FINGERPRINT_BYTES = 1024;

/** Which file lines came from: survives renames, and tells a refilled file from the old one. */
export interface FileIdentity {
  /** the name it was read under */
  path: string;
  dev: number;
  ino: number;
  /** how many leading bytes the fingerprint covers: FINGERPRINT_BYTES, fewer while the file is
   * shorter than that */
  fingerprintBytes: number;
  /** sha256 (hex) of the first fingerprintBytes bytes */
  fingerprint: string;
}

/** A point in a file: the identity and the byte offset just past the last line handled. */
export interface FilePosition extends FileIdentity {
  offset: number;
}

export type FollowEvent = 'opened' | 'rotated' | 'truncated' | 'waiting' | 'resumed';

export interface LineChunk {
  /** lines without their LF (and without a CR before it) */
  lines: Buffer[];
  /** true when the source has nothing more for now (follow mode waits next) */
  idle: boolean;
  /** followed files: per line, the byte offset just past it (its LF) in `file` */
  ends?: number[];
  /** followed files: the file these lines were read from */
  file?: FileIdentity;
}

export interface ReadLinesOptions {
  follow?: boolean;
  /** follow: start at the current end of the file instead of its beginning (unless `resume`) */
  fromEnd?: boolean;
  /** follow: continue after this position (a checkpoint), in whatever file holds it now: the
   * followed name, or a rotated sibling (`NAME.1`, `NAME-20240101`, not compressed ones) */
  resume?: FilePosition;
  signal?: AbortSignal;
  /** follow: how often to look even without a change event (ms) */
  pollMs?: number;
  chunkBytes?: number;
  /** follow: at stop, leave an unterminated last line unread instead of emitting it (it is being
   * written; a checkpoint resumes before it, so it is read whole next time) */
  holdPartial?: boolean;
  /** called when follow mode opens, resumes, notices rotation or truncation, or waits */
  onEvent?: (what: FollowEvent, path: string) => void;
}

/** Splits chunks into lines, carrying a partial last line over to the next chunk. */
export class LineSplitter {
  private partial: Buffer | null = null;

  /** With `ends`, appends per line the offset just past its LF, counting the chunk from `base`. */
  push(chunk: Buffer, ends?: number[], base = 0): Buffer[] {
    const out: Buffer[] = [];
    let start = 0;
    let nl = chunk.indexOf(10);
    if (nl >= 0 && this.partial) {
      out.push(stripCr(Buffer.concat([this.partial, chunk.subarray(0, nl)])));
      ends?.push(base + nl + 1);
      this.partial = null;
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    while (nl >= 0) {
      out.push(stripCr(chunk.subarray(start, nl)));
      ends?.push(base + nl + 1);
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      // Copy: the chunk's memory may be reused by the reader.
      const rest = Buffer.from(chunk.subarray(start));
      this.partial = this.partial ? Buffer.concat([this.partial, rest]) : rest;
    }
    return out;
  }

  /** The unterminated last line, if any (end of input, or a rotated file); with `ends`, `end` is
   * appended as its end offset. */
  flush(ends?: number[], end = 0): Buffer[] {
    const p = this.partial;
    this.partial = null;
    if (!p || p.length === 0) return [];
    ends?.push(end);
    return [stripCr(p)];
  }

  get pending(): number {
    return this.partial?.length ?? 0;
  }
}

function stripCr(b: Buffer): Buffer {
  return b.length > 0 && b[b.length - 1] === 13 ? b.subarray(0, b.length - 1) : b;
}

/** Lines of a readable stream (stdin), chunk by chunk. */
export async function* streamLines(
  stream: NodeJS.ReadableStream,
  signal?: AbortSignal,
): AsyncGenerator<LineChunk> {
  const split = new LineSplitter();
  const onAbort = () => (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      const lines = split.push(b);
      if (lines.length) yield { lines, idle: false };
      if (signal?.aborted) break;
    }
  } catch (err) {
    if (!signal?.aborted) throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  yield { lines: split.flush(), idle: true };
}

/**
 * Lines of a file; with `follow`, forever (until the signal aborts). Each read is copied out of the
 * reused read buffer once, so the lines (views of that copy) stay valid after the next read.
 */
export async function* fileLines(path: string, opts: ReadLinesOptions = {}): AsyncGenerator<LineChunk> {
  if (opts.follow) {
    yield* followFile(path, opts);
    return;
  }
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const buf = Buffer.allocUnsafe(chunkBytes);
  const split = new LineSplitter();
  const fh = await open(path, 'r');
  try {
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, chunkBytes, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      const lines = split.push(Buffer.from(buf.subarray(0, bytesRead)));
      if (lines.length) yield { lines, idle: false };
      if (opts.signal?.aborted) break;
    }
  } finally {
    await fh.close();
  }
  yield { lines: split.flush(), idle: true };
}

/** An open file being read: where we are, and the first bytes we read (its fingerprint). */
interface OpenFile {
  fh: FileHandle;
  path: string;
  dev: number;
  ino: number;
  pos: number;
  /** the file's first min(FINGERPRINT_BYTES, pos) bytes, as read */
  head: Buffer;
  id: FileIdentity | undefined;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(b, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return b.subarray(0, got);
}

async function openAt(fh: FileHandle, path: string, st: Stats, pos: number): Promise<OpenFile> {
  const head = await readAt(fh, Math.min(FINGERPRINT_BYTES, pos), 0);
  return { fh, path, dev: st.dev, ino: st.ino, pos, head, id: undefined };
}

function identity(f: OpenFile): FileIdentity {
  f.id ??= {
    path: f.path,
    dev: f.dev,
    ino: f.ino,
    fingerprintBytes: f.head.length,
    fingerprint: sha256(f.head),
  };
  return f.id;
}

/** Does the file start with the bytes `id` fingerprinted? */
async function sameStart(fh: FileHandle, size: number, id: FileIdentity): Promise<boolean> {
  if (size < id.fingerprintBytes) return false;
  return sha256(await readAt(fh, id.fingerprintBytes, 0)) === id.fingerprint;
}

// logrotate's names for an older generation: NAME.1, NAME-20240101, NAME.old; compressed ones
// cannot be read back here.
const COMPRESSED = /\.(gz|xz|bz2|zst|lz4|Z)$/;

/**
 * The rotated generation of `path` that holds `want`: the same file renamed (device + inode +
 * fingerprint), else a copy with the same first bytes at least `want.offset` long (copytruncate).
 * Only siblings whose name starts with the followed name are looked at.
 */
async function findRotated(
  path: string,
  want: FilePosition,
): Promise<{ fh: FileHandle; path: string; st: Stats } | undefined> {
  const base = basename(path);
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return undefined;
  }
  let copy: { fh: FileHandle; path: string; st: Stats } | undefined;
  for (const name of names.sort()) {
    if (name === base || !name.startsWith(base) || COMPRESSED.test(name)) continue;
    const p = join(dirname(path), name);
    let fh: FileHandle | undefined;
    try {
      fh = await open(p, 'r');
      const st = await fh.stat();
      if (st.isFile() && st.size >= want.offset && (await sameStart(fh, st.size, want))) {
        if (st.dev === want.dev && st.ino === want.ino) {
          await copy?.fh.close();
          return { fh, path: p, st };
        }
        if (!copy) {
          copy = { fh, path: p, st };
          fh = undefined;
        }
      }
    } catch {
      // vanished or unreadable: not the one
    }
    await fh?.close();
  }
  return copy;
}

async function* followFile(path: string, opts: ReadLinesOptions): AsyncGenerator<LineChunk> {
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const buf = Buffer.allocUnsafe(chunkBytes);
  const signal = opts.signal;
  const split = new LineSplitter();
  const waiter = new ChangeWaiter(path, opts.pollMs ?? 1000, signal);
  let cur: OpenFile | undefined;
  let nextPos: 'end' | 0 = opts.fromEnd ? 'end' : 0;
  let resume = opts.resume;

  // Reads f from its position to its current end.
  async function* readToEnd(f: OpenFile): AsyncGenerator<LineChunk> {
    for (;;) {
      const { bytesRead } = await f.fh.read(buf, 0, chunkBytes, f.pos);
      if (bytesRead === 0) return;
      const data = Buffer.from(buf.subarray(0, bytesRead));
      const at = f.pos;
      if (at < FINGERPRINT_BYTES && f.head.length === at) {
        f.head = Buffer.concat([f.head, data.subarray(0, FINGERPRINT_BYTES - at)]);
        f.id = undefined;
      }
      f.pos += bytesRead;
      const ends: number[] = [];
      const lines = split.push(data, ends, at);
      if (lines.length) yield { lines, idle: false, ends, file: identity(f) };
      if (signal?.aborted) return;
    }
  }

  // The unterminated last line of a file we leave (rotated, truncated, end of a resumed one).
  function tail(f: OpenFile): LineChunk | undefined {
    const ends: number[] = [];
    const lines = split.flush(ends, f.pos);
    return lines.length ? { lines, idle: false, ends, file: identity(f) } : undefined;
  }

  // Reads a rotated generation from `from` to its end (the lines past `from` were never sent).
  async function* finishRotated(want: FilePosition, why: string): AsyncGenerator<LineChunk> {
    const old = await findRotated(path, want);
    if (!old) {
      log.warn(`${why}, and no uncompressed rotated file holds it: reading ${path} from its start`, {
        path,
        checkpoint: want,
      });
      return;
    }
    log.info(`${why}: finishing the rotated file first`, { path, rotated: old.path, from: want.offset });
    opts.onEvent?.('resumed', old.path);
    yield* readRotated(old, want.offset);
  }

  async function* readRotated(
    old: { fh: FileHandle; path: string; st: Stats },
    from: number,
  ): AsyncGenerator<LineChunk> {
    const f = await openAt(old.fh, old.path, old.st, from);
    try {
      yield* readToEnd(f);
      const t = tail(f);
      if (t) yield t;
    } finally {
      await old.fh.close();
    }
  }

  try {
    while (!signal?.aborted) {
      if (!cur) {
        let fh: FileHandle;
        try {
          fh = await open(path, 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          if (resume) {
            yield* finishRotated(resume, 'the checkpointed file was renamed');
            resume = undefined;
            nextPos = 0;
          }
          opts.onEvent?.('waiting', path);
          yield { lines: [], idle: true };
          await waiter.wait();
          continue;
        }
        const st = await fh.stat();
        let pos = nextPos === 'end' ? st.size : 0;
        if (resume) {
          const r = resume;
          resume = undefined;
          if (
            st.dev === r.dev &&
            st.ino === r.ino &&
            st.size >= r.offset &&
            (await sameStart(fh, st.size, r))
          ) {
            pos = r.offset;
            opts.onEvent?.('resumed', path);
          } else {
            yield* finishRotated(r, 'the checkpointed file was rotated or truncated while we were away');
            pos = 0;
          }
        }
        nextPos = 0;
        cur = await openAt(fh, path, st, pos);
        opts.onEvent?.('opened', path);
      }
      waiter.clear();
      // Still the file we were reading? A copytruncate rotation empties it in place (same inode):
      // now shorter than our position, or refilled past it, with other first bytes.
      const size = (await cur.fh.stat()).size;
      if (size < cur.pos || !(await sameStart(cur.fh, size, identity(cur)))) {
        log.info('file truncated in place (copytruncate); reading it again from the start', { path });
        opts.onEvent?.('truncated', path);
        // logrotate copied the file before truncating it: what lies past our position is in the copy.
        const copy = await findRotated(path, { ...identity(cur), offset: cur.pos });
        if (copy) yield* readRotated(copy, cur.pos);
        else {
          const t = tail(cur);
          if (t) yield t;
        }
        cur = await openAt(cur.fh, path, await cur.fh.stat(), 0);
        continue;
      }
      yield* readToEnd(cur);
      if (signal?.aborted) break;
      let now: Stats | undefined;
      try {
        now = await stat(path);
      } catch {
        now = undefined; // renamed away, the new file is not there yet: keep the old one
      }
      if (now && (now.ino !== cur.ino || now.dev !== cur.dev)) {
        // Rotated: what was written to the old file before the switch is read first.
        yield* readToEnd(cur);
        log.info('file rotated; following the new file', { path });
        opts.onEvent?.('rotated', path);
        const t = tail(cur);
        await cur.fh.close();
        cur = undefined;
        if (t) yield t;
        continue;
      }
      yield { lines: [], idle: true };
      await waiter.wait();
    }
  } finally {
    waiter.close();
    await cur?.fh.close();
  }
  if (opts.holdPartial || !cur) {
    yield { lines: [], idle: true };
    return;
  }
  const ends: number[] = [];
  const lines = split.flush(ends, cur.pos);
  yield { lines, idle: true, ends, file: identity(cur) };
}

/** Resolves wait() on a change of `path` (or its directory entry), a poll tick, or abort. */
class ChangeWaiter {
  dirty = false;
  private watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private readonly name: string;

  constructor(
    path: string,
    private readonly pollMs: number,
    private readonly signal?: AbortSignal,
  ) {
    this.name = basename(path);
    try {
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === this.name || String(file) === this.name) this.poke();
      });
      this.watcher.on('error', (err) => log.warn('watching stopped; polling only', { path, err }));
    } catch (err) {
      log.warn('cannot watch; polling only', { path, err });
    }
    signal?.addEventListener('abort', this.poke, { once: true });
  }

  private readonly poke = (): void => {
    this.dirty = true;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  };

  clear(): void {
    this.dirty = false;
  }

  wait(): Promise<void> {
    if (this.dirty || this.signal?.aborted) {
      this.dirty = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, this.pollMs);
      this.wake = () => {
        clearTimeout(t);
        this.dirty = false;
        resolve();
      };
    });
  }

  close(): void {
    this.watcher?.close();
    this.signal?.removeEventListener('abort', this.poke);
  }
}
