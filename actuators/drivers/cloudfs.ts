// Cloud file system, :50000: the original's telnet file commands, confined to one root directory.
//   virgo_cloud_open(<path>)                     -> <fd>          (from 3; created when missing)
//   virgo_cloud_read(<fd>,none,<count>,<pos>)    -> <data>        (escaped, see data-escape.ts)
//   virgo_cloud_write(<fd>,<data>,<count>,<pos>) -> <bytes written>
//   virgo_cloud_close(<fd>)                      -> ok
// Confinement: paths are relative to the root; absolute paths and `..` components are refused
// before touching the disk; the parent directory is resolved with realpath and must be inside the
// root; the file is opened with O_NOFOLLOW (a symlink as the last component is refused) and
// O_NONBLOCK (a FIFO cannot hang us), must be a regular file, and its real path (/proc/self/fd) is
// checked again after open, which closes the race of a directory swapped for a symlink meanwhile.
// Descriptors belong to the connection that opened them, like a process's own fd table: numbered
// from 3 per connection, invisible to every other client, closed when the connection closes,
// bounded per connection and in total, and closed after sitting idle. (The original's descriptors
// were the server's, shared by every client; a client then could read or write another's files
// and exhaust the table for all.)
import { constants, type FileHandle, open, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LineClient } from '../../runtime/line-server.ts';
import { createLogger } from '../../runtime/log.ts';
import { counter, gauge } from '../../runtime/metrics.ts';
import { expectCall, parseCount, splitFirst, splitLast } from './call-syntax.ts';
import { EscapeError, escapeBytes, unescapeBytes } from './data-escape.ts';
import { type CommonServerOptions, DriverError, DriverService, quote } from './driver-server.ts';
import { CLOUDFS_PORT } from './ports.ts';
import { TokenBucket } from './token-bucket.ts';
import { readNumber, type VariableSource } from './variables.ts';

const log = createLogger('drivers.cloudfs');
const openGauge = gauge('virgo_cloudfs_open_files', 'files open in cloudfs');
const writtenBytes = counter('virgo_cloudfs_written_bytes_total', 'bytes written through cloudfs');
const throttled = counter(
  'virgo_cloudfs_throttled_total',
  'cloudfs writes delayed or refused by the rate limit',
  ['outcome'],
);

export const FS_VARS = { writeBytesPerS: 'cloudfs.write_bytes_per_s' } as const;
export const FIRST_FD = 3;

const COMMANDS = ['virgo_cloud_open', 'virgo_cloud_read', 'virgo_cloud_write', 'virgo_cloud_close'] as const;
const HELP =
  'cloudfs: virgo_cloud_open(<path>) -> fd | virgo_cloud_read(<fd>,none,<count>,<pos>) -> data | virgo_cloud_write(<fd>,<data>,<count>,<pos>) -> bytes | virgo_cloud_close(<fd>) -> ok; paths relative to the cloudfs root; data escapes \\\\ \\n \\r \\t \\xHH';

export interface CloudFsOptions extends CommonServerOptions {
  variables: VariableSource;
  /** the directory clients see; must exist */
  root: string;
  port?: number;
  readOnly?: boolean;
  /** descriptors open at once, all connections together (default 256) */
  maxOpenFiles?: number;
  /** descriptors one connection may hold (default 16) */
  maxOpenFilesPerClient?: number;
  /** largest read in bytes */
  maxReadBytes?: number;
  /** no write may end past this offset */
  maxFileBytes?: number;
  /** close descriptors unused for this long */
  fdIdleMs?: number;
  /** when `cloudfs.write_bytes_per_s` is unset (0: unlimited) */
  defaultWriteBytesPerS?: number;
  /** a write that would wait longer for the rate limit is refused */
  maxWriteWaitMs?: number;
}

interface OpenFile {
  handle: FileHandle;
  path: string;
  lastUsed: number;
}

export class CloudFs extends DriverService {
  readonly bucket: TokenBucket;
  private rootReal = '';
  /** each connection's descriptors, by connection id */
  private readonly tables = new Map<number, Map<number, OpenFile>>();
  private total = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly opts: CloudFsOptions) {
    super(
      {
        name: 'cloudfs',
        port: opts.port ?? CLOUDFS_PORT,
        help: HELP,
        // a write line carries its data: room for 64 KiB plus the call around it
        maxLineBytes: opts.maxLineBytes ?? 65_536 + 256,
      },
      opts,
      log,
    );
    this.bucket = new TokenBucket(opts.defaultWriteBytesPerS ?? 0, opts.maxWriteWaitMs ?? 5_000);
  }

  protected override onClientClose(client: LineClient): void {
    void this.closeAll(client.id);
  }

  /** descriptors open now, all connections together */
  get openFiles(): number {
    return this.total;
  }

  async start(): Promise<number> {
    try {
      this.rootReal = await realpath(this.opts.root);
    } catch (err) {
      throw new Error(
        `cloudfs root ${this.opts.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; create the directory or choose another with --cloudfs-root`,
      );
    }
    const idle = this.opts.fdIdleMs ?? 600_000;
    this.sweeper = setInterval(() => void this.sweep(idle), Math.min(idle, 60_000));
    this.sweeper.unref();
    return this.server.listen();
  }

  private async sweep(idleMs: number): Promise<void> {
    const cutoff = Date.now() - idleMs;
    for (const [client, files] of this.tables) {
      for (const [fd, f] of files) {
        if (f.lastUsed >= cutoff) continue;
        this.forget(files, fd);
        log.info('closing idle descriptor', { client, fd, path: f.path });
        await f.handle.close().catch(() => {});
      }
    }
  }

  private forget(files: Map<number, OpenFile>, fd: number): void {
    if (files.delete(fd)) this.total--;
    openGauge.set(this.total);
  }

  /** A connection is gone: its descriptors go with it. */
  private async closeAll(client: number): Promise<void> {
    const files = this.tables.get(client);
    if (!files) return;
    this.tables.delete(client);
    this.total -= files.size;
    openGauge.set(this.total);
    for (const f of files.values()) await f.handle.close().catch(() => {});
  }

  private table(client: LineClient): Map<number, OpenFile> {
    let t = this.tables.get(client.id);
    if (!t) {
      t = new Map();
      this.tables.set(client.id, t);
    }
    return t;
  }

  protected async handle(line: string, client: LineClient): Promise<string> {
    const files = this.table(client);
    const call = expectCall(line, COMMANDS);
    switch (call.name) {
      case 'virgo_cloud_open':
        return String(await this.open(call.inner, client, files));
      case 'virgo_cloud_read': {
        const p = call.inner.split(',');
        if (p.length !== 4) {
          throw new DriverError(
            'malformed',
            'virgo_cloud_read: expected virgo_cloud_read(<fd>,none,<count>,<pos>)',
          );
        }
        const [fdS, placeholder, countS, posS] = p as [string, string, string, string];
        if (placeholder.trim() !== 'none' && placeholder.trim() !== '') {
          throw new DriverError(
            'malformed',
            `virgo_cloud_read: the second argument is the buffer placeholder, send none (got ${quote(placeholder)})`,
          );
        }
        const f = this.file(files, fdS);
        const count = parseCount(countS, 'virgo_cloud_read: count', this.opts.maxReadBytes ?? 65_536);
        const pos = parseCount(posS, 'virgo_cloud_read: pos');
        const buf = Buffer.alloc(count);
        const { bytesRead } = await io(() => f.handle.read(buf, 0, count, pos), 'read', f.path);
        return escapeBytes(buf.subarray(0, bytesRead));
      }
      case 'virgo_cloud_write': {
        const [fdS, rest] = splitFirst(call.inner, 1);
        const parts = rest === undefined ? [] : splitLast(rest, 2);
        if (parts.length !== 3) {
          throw new DriverError(
            'malformed',
            'virgo_cloud_write: expected virgo_cloud_write(<fd>,<data>,<count>,<pos>)',
          );
        }
        const [dataS, countS, posS] = parts as [string, string, string];
        const f = this.file(files, fdS!);
        if (this.opts.readOnly) throw new DriverError('forbidden', 'virgo_cloud_write: cloudfs is read-only');
        let data: Buffer;
        try {
          data = unescapeBytes(dataS);
        } catch (err) {
          if (err instanceof EscapeError)
            throw new DriverError('malformed', `virgo_cloud_write: ${err.message}`);
          throw err;
        }
        const count = parseCount(countS, 'virgo_cloud_write: count');
        if (count > data.length) {
          throw new DriverError(
            'malformed',
            `virgo_cloud_write: count ${count} is more than the ${data.length} bytes of data`,
          );
        }
        const pos = parseCount(posS, 'virgo_cloud_write: pos');
        const maxFile = this.opts.maxFileBytes ?? 1 << 30;
        if (pos + count > maxFile) {
          throw new DriverError(
            'limit',
            `virgo_cloud_write: would end at byte ${pos + count}, past the ${maxFile}-byte file limit`,
          );
        }
        await this.throttle(count);
        const { bytesWritten } = await io(() => f.handle.write(data, 0, count, pos), 'write', f.path);
        writtenBytes.inc(bytesWritten);
        return String(bytesWritten);
      }
      default: {
        const fd = this.fdNumber(call.inner);
        const f = this.file(files, call.inner);
        this.forget(files, fd);
        await io(() => f.handle.close(), 'close', f.path);
        return 'ok';
      }
    }
  }

  /** Applies `cloudfs.write_bytes_per_s` as it is now; waits, or refuses a wait that is too long. */
  private async throttle(bytes: number): Promise<void> {
    const rate = readNumber(
      this.opts.variables,
      FS_VARS.writeBytesPerS,
      this.opts.defaultWriteBytesPerS ?? 0,
      {
        min: 0,
      },
    );
    this.bucket.setRate(rate);
    const r = this.bucket.reserve(bytes);
    if (!r) {
      throttled.inc({ outcome: 'refused' });
      const wait = this.bucket.wouldWaitMs(bytes);
      throw new DriverError(
        'rate-limited',
        `virgo_cloud_write: ${bytes} bytes would wait ${(wait / 1000).toFixed(1)} s at ${FS_VARS.writeBytesPerS}=${rate}; retry later or write less`,
      );
    }
    if (r.waitMs > 0) {
      throttled.inc({ outcome: 'delayed' });
      await sleep(r.waitMs);
    }
  }

  private fdNumber(s: string): number {
    const fd = parseCount(s, 'fd');
    if (fd < FIRST_FD)
      throw new DriverError('not-found', `fd ${fd} is not a cloudfs descriptor (they start at ${FIRST_FD})`);
    return fd;
  }

  private file(files: Map<number, OpenFile>, s: string): OpenFile {
    const fd = this.fdNumber(s);
    const f = files.get(fd);
    if (!f) throw new DriverError('not-found', `fd ${fd} is not open; virgo_cloud_open(<path>) returns one`);
    f.lastUsed = Date.now();
    return f;
  }

  private async open(raw: string, client: LineClient, files: Map<number, OpenFile>): Promise<number> {
    const mine = this.opts.maxOpenFilesPerClient ?? 16;
    if (files.size >= mine) {
      throw new DriverError(
        'limit',
        `too many open files on this connection (${mine}); virgo_cloud_close(<fd>) some first`,
      );
    }
    const max = this.opts.maxOpenFiles ?? 256;
    if (this.total >= max) {
      throw new DriverError('limit', `too many open files on this server (${max}); try again later`);
    }
    const rel = checkRelativePath(raw.trim());
    const full = join(this.rootReal, rel);
    const parent = dirname(full);
    let parentReal: string;
    try {
      parentReal = await realpath(parent);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new DriverError(
          'not-found',
          `virgo_cloud_open: directory ${quote(dirname(rel))} does not exist in the cloudfs root`,
        );
      }
      throw new DriverError('io', `virgo_cloud_open: ${quote(rel)}: ${code ?? (err as Error).message}`);
    }
    if (!this.inside(parentReal)) throw escapes(rel);
    const target = join(parentReal, basename(full));
    const flags =
      (this.opts.readOnly ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT) |
      constants.O_NOFOLLOW |
      constants.O_NONBLOCK;
    let handle: FileHandle;
    try {
      handle = await open(target, flags, 0o644);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') {
        throw new DriverError(
          'forbidden',
          `virgo_cloud_open: ${quote(rel)} is a symbolic link; cloudfs does not follow links`,
        );
      }
      if (code === 'EISDIR')
        throw new DriverError('malformed', `virgo_cloud_open: ${quote(rel)} is a directory`);
      if (code === 'ENOENT')
        throw new DriverError('not-found', `virgo_cloud_open: ${quote(rel)} does not exist`);
      if (code === 'EACCES' || code === 'EPERM') {
        throw new DriverError('forbidden', `virgo_cloud_open: ${quote(rel)}: permission denied`);
      }
      throw new DriverError('io', `virgo_cloud_open: ${quote(rel)}: ${code ?? (err as Error).message}`);
    }
    try {
      const st = await handle.stat();
      if (!st.isFile())
        throw new DriverError('forbidden', `virgo_cloud_open: ${quote(rel)} is not a regular file`);
      const real = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => target);
      if (!this.inside(real)) throw escapes(rel);
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
    if (client.closed || this.tables.get(client.id) !== files) {
      // the connection went away while the file was being opened: nobody can close it later
      await handle.close().catch(() => {});
      throw new DriverError('unavailable', 'virgo_cloud_open: the connection closed meanwhile');
    }
    let fd = FIRST_FD;
    while (files.has(fd)) fd++;
    files.set(fd, { handle, path: rel, lastUsed: Date.now() });
    this.total++;
    openGauge.set(this.total);
    return fd;
  }

  private inside(real: string): boolean {
    return (
      real === this.rootReal ||
      real.startsWith(this.rootReal.endsWith(sep) ? this.rootReal : this.rootReal + sep)
    );
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.server.close();
    for (const client of [...this.tables.keys()]) await this.closeAll(client);
    openGauge.set(0);
  }
}

function escapes(rel: string): DriverError {
  return new DriverError('forbidden', `virgo_cloud_open: ${quote(rel)} resolves outside the cloudfs root`);
}

/** The lexical checks, before any disk access: relative, no `..`, sane length. */
export function checkRelativePath(p: string): string {
  if (p === '') throw new DriverError('malformed', 'virgo_cloud_open: expected virgo_cloud_open(<path>)');
  if (Buffer.byteLength(p) > 4096)
    throw new DriverError('malformed', 'virgo_cloud_open: path longer than 4096 bytes');
  if (isAbsolute(p)) {
    throw new DriverError(
      'forbidden',
      `virgo_cloud_open: ${quote(p)} is absolute; paths are relative to the cloudfs root`,
    );
  }
  const parts = p.split('/');
  if (parts.includes('..')) {
    throw new DriverError(
      'forbidden',
      `virgo_cloud_open: ${quote(p)} contains '..'; paths may not leave the cloudfs root`,
    );
  }
  if (parts.every((x) => x === '' || x === '.')) {
    throw new DriverError('malformed', `virgo_cloud_open: ${quote(p)} names the root directory, not a file`);
  }
  return p;
}

async function io<T>(fn: () => Promise<T>, what: string, path: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DriverError('io', `virgo_cloud_${what}: ${quote(path)}: ${code ?? (err as Error).message}`);
  }
}
