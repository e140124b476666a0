// Lines from a file or a stream, as raw bytes (no decoding: publish-logs passes them on as they
// are). With `follow`, a file is followed like `tail -F`: by name, across rotation (the name points
// to a new file: the old one is read to its end first) and truncation (read again from the start).
// Waits are event-driven (fs.watch on the directory), with a slow poll as a safety net for file
// systems that do not report changes.
import { type FSWatcher, watch } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createLogger } from '../runtime/log.ts';

const log = createLogger('ingest.follow');

export interface LineChunk {
  /** lines without their LF (and without a CR before it) */
  lines: Buffer[];
  /** true when the source has nothing more for now (follow mode waits next) */
  idle: boolean;
}

export interface ReadLinesOptions {
  follow?: boolean;
  /** follow: start at the current end of the file instead of its beginning */
  fromEnd?: boolean;
  signal?: AbortSignal;
  /** follow: how often to look even without a change event (ms) */
  pollMs?: number;
  chunkBytes?: number;
  /** called when follow mode notices rotation or truncation */
  onEvent?: (what: 'rotated' | 'truncated' | 'waiting' | 'opened', path: string) => void;
}

/** Splits chunks into lines, carrying a partial last line over to the next chunk. */
export class LineSplitter {
  private partial: Buffer | null = null;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let start = 0;
    let nl = chunk.indexOf(10);
    if (nl >= 0 && this.partial) {
      out.push(stripCr(Buffer.concat([this.partial, chunk.subarray(0, nl)])));
      this.partial = null;
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    while (nl >= 0) {
      out.push(stripCr(chunk.subarray(start, nl)));
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

  /** The unterminated last line, if any (end of input, or a rotated file). */
  flush(): Buffer[] {
    const p = this.partial;
    this.partial = null;
    return p && p.length > 0 ? [stripCr(p)] : [];
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
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const buf = Buffer.allocUnsafe(chunkBytes);
  const split = new LineSplitter();
  if (!opts.follow) {
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
    return;
  }

  const waiter = new ChangeWaiter(path, opts.pollMs ?? 1000, opts.signal);
  let fh: FileHandle | undefined;
  let ino = -1;
  let pos = 0;
  let first = true;
  // Reads fh from pos to its current end.
  async function* drain(h: FileHandle): AsyncGenerator<LineChunk> {
    for (;;) {
      const { bytesRead } = await h.read(buf, 0, chunkBytes, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      const lines = split.push(Buffer.from(buf.subarray(0, bytesRead)));
      if (lines.length) yield { lines, idle: false };
      if (opts.signal?.aborted) return;
    }
  }
  try {
    while (!opts.signal?.aborted) {
      if (!fh) {
        try {
          fh = await open(path, 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          opts.onEvent?.('waiting', path);
          yield { lines: [], idle: true };
          await waiter.wait();
          continue;
        }
        const st = await fh.stat();
        ino = st.ino;
        pos = opts.fromEnd && first ? st.size : 0;
        first = false;
        opts.onEvent?.('opened', path);
      }
      waiter.clear();
      yield* drain(fh);
      if (opts.signal?.aborted) break;
      // At the end of what is there: truncated? rotated? else wait for a change.
      if ((await fh.stat()).size < pos) {
        log.info('file truncated; reading it again from the start', { path });
        opts.onEvent?.('truncated', path);
        split.flush();
        pos = 0;
        continue;
      }
      let current: number | undefined;
      try {
        current = (await stat(path)).ino;
      } catch {
        current = undefined; // renamed away, the new file is not there yet: keep the old one
      }
      if (current !== undefined && current !== ino) {
        // Rotated: what was written to the old file before the switch is read first.
        yield* drain(fh);
        log.info('file rotated; following the new file', { path });
        opts.onEvent?.('rotated', path);
        await fh.close();
        fh = undefined;
        const tail = split.flush();
        if (tail.length) yield { lines: tail, idle: false };
        pos = 0;
        continue;
      }
      yield { lines: [], idle: true };
      await waiter.wait();
    }
  } finally {
    waiter.close();
    await fh?.close();
  }
  yield { lines: split.flush(), idle: true };
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
