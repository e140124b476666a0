// /etc/virgo_kernel_analytics.conf, as the original module read it (docs/design.md §5.6):
// comma-separated key=value pairs on one logical line; writers append `,key=value`; newlines are
// not separators. We read it the same way but say what we cannot read instead of storing NULLs,
// and refuse to write a value the format cannot hold (a comma would split it, as a Python set
// repr once did to the original parser). Whole-file writes are atomic: temp file, fsync, rename,
// fsync of the directory.
// One file holds ONE host's variables, as the original was read by the kernel module of one
// machine: ConfFileSink keeps a file for a named host, ConfDirSink one file per host
// (<dir>/<host>.conf). No sink ever writes two hosts' values into one file (docs/design.md §5.4).
import { randomUUID } from 'node:crypto';
import { constants, mkdirSync } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileLockError, withFileLock } from '../runtime/file-lock.ts';
import { createLogger } from '../runtime/log.ts';
import { confValueProblem, hostProblem, keyProblem, valueProblem } from '../schemas/variable.ts';
import type { ExportSink, SinkStats } from './export.ts';
import { exportErrors, exportRejects, exportWrites } from './metrics.ts';
import type { VariableChange, VariableDelete } from './table.ts';
import type { KvRejectReason } from './validate.ts';

const log = createLogger('kernel-analytics.conf');

export const DEFAULT_CONF_PATH = '/etc/virgo_kernel_analytics.conf';

export interface ConfProblem {
  /** 0-based position of the token among the comma-separated ones */
  index: number;
  /** the token as found (CR/LF trimmed), clipped to 80 characters */
  token: string;
  reason: KvRejectReason;
  message: string;
}

export interface ConfContents {
  /** key → value; a key given twice (an append) takes the later value */
  values: Map<string, string>;
  problems: ConfProblem[];
  /** false when the file does not exist (read as empty) */
  exists: boolean;
}

/** Thrown when asked to write something the format cannot hold; names the key and the fix. */
export class ConfValueError extends Error {
  override readonly name = 'ConfValueError';
  constructor(
    readonly key: string,
    readonly reason: 'comma' | KvRejectReason,
    message: string,
  ) {
    super(message);
  }
}

/** A file-system failure, with the path and the likely fix in its message. */
export class ConfFileError extends Error {
  override readonly name = 'ConfFileError';
}

const clip = (s: string) => (s.length > 80 ? `${s.slice(0, 77)}...` : s);

/** Reads the conf format: split on ',', trim CR/LF, split each token at its first '='. */
export function parseConf(text: string): Omit<ConfContents, 'exists'> {
  const values = new Map<string, string>();
  const problems: ConfProblem[] = [];
  const tokens = text.split(',');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!.replace(/^[\r\n]+|[\r\n]+$/g, '');
    // An empty token is what appending `,k=v` to an empty file (or a trailing comma) leaves.
    if (token === '') continue;
    const eq = token.indexOf('=');
    if (eq < 0) {
      const prev = i > 0 ? tokens[i - 1]! : '';
      problems.push({
        index: i,
        token: clip(token),
        reason: 'missing-equals',
        message:
          `token ${i} ${JSON.stringify(clip(token))} has no '='` +
          (prev.includes('=') ? ` (part of the value before it, which contained a comma?)` : ''),
      });
      continue;
    }
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    const k = keyProblem(key);
    if (k) {
      problems.push({ index: i, token: clip(token), reason: k.reason, message: `token ${i}: ${k.message}` });
      continue;
    }
    const v = valueProblem(value);
    if (v) {
      problems.push({
        index: i,
        token: clip(token),
        reason: v.reason,
        message: `token ${i} (${key}): value ${v.message}`,
      });
      continue;
    }
    values.set(key, value);
  }
  return { values, problems };
}

/** Why a pair cannot be written, or undefined when it can. */
export function confPairError(key: string, value: string): ConfValueError | undefined {
  const k = keyProblem(key);
  if (k) return new ConfValueError(key, k.reason, k.message);
  const v = confValueProblem(value);
  if (v) return new ConfValueError(key, v.reason, `value of ${key} ${v.message}`);
  return undefined;
}

/** The file text for these pairs: `k1=v1,k2=v2` and a newline. Throws ConfValueError. */
export function formatConf(values: Iterable<readonly [string, string]> | Record<string, string>): string {
  const pairs = Symbol.iterator in values ? [...values] : Object.entries(values);
  const parts: string[] = [];
  for (const [k, v] of pairs) {
    const err = confPairError(k, v);
    if (err) throw err;
    parts.push(`${k}=${v}`);
  }
  return parts.length > 0 ? `${parts.join(',')}\n` : '';
}

export interface ConfFileOptions {
  /** fsync file and directory on writes (default true) */
  fsync?: boolean;
}

export class ConfFile {
  /** serialises this process's read-modify-writes of the file */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string = DEFAULT_CONF_PATH,
    private readonly opts: ConfFileOptions = {},
  ) {}

  async read(): Promise<ConfContents> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        return { values: new Map(), problems: [], exists: false };
      throw this.fsError('read', err);
    }
    return { ...parseConf(text), exists: true };
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.read()).values.get(key);
  }

  async list(): Promise<Record<string, string>> {
    return Object.fromEntries((await this.read()).values);
  }

  /** Replaces the whole file atomically with these pairs. Throws ConfValueError before touching it. */
  write(values: Iterable<readonly [string, string]> | Record<string, string>): Promise<void> {
    const text = formatConf(values);
    return this.serial(() => this.replace(text));
  }

  /** Sets pairs (keeping the others and their order), atomically. Unreadable tokens are kept out and reported. */
  set(key: string, value: string): Promise<ConfProblem[]>;
  set(pairs: Record<string, string>): Promise<ConfProblem[]>;
  set(a: string | Record<string, string>, b?: string): Promise<ConfProblem[]> {
    const pairs = typeof a === 'string' ? { [a]: b ?? '' } : a;
    for (const [k, v] of Object.entries(pairs)) {
      const err = confPairError(k, v);
      if (err) return Promise.reject(err);
    }
    return this.update((m) => {
      for (const [k, v] of Object.entries(pairs)) m.set(k, v);
    });
  }

  /** Removes keys atomically; resolves with the ones that were there. */
  async unset(...keys: string[]): Promise<string[]> {
    const removed: string[] = [];
    await this.update((m) => {
      for (const k of keys) if (m.delete(k)) removed.push(k);
    });
    return removed;
  }

  /**
   * The original writers' way: append `,key=value` (O_APPEND, not a rewrite). Cheap for a stream
   * of updates; the reader takes the last value of a key. Use `compact()` to fold the history.
   */
  append(key: string, value: string): Promise<void> {
    const err = confPairError(key, value);
    if (err) return Promise.reject(err);
    return this.serial(async () => {
      let fh: Awaited<ReturnType<typeof open>>;
      try {
        fh = await open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644);
      } catch (e) {
        throw this.fsError('append to', e);
      }
      try {
        const size = (await fh.stat()).size;
        await fh.write(size === 0 ? `${key}=${value}` : `,${key}=${value}`);
        if (this.opts.fsync !== false) await fh.datasync();
      } finally {
        await fh.close();
      }
    });
  }

  /** Rewrites the file with one pair per key (after appends); resolves with the problems found. */
  compact(): Promise<ConfProblem[]> {
    return this.update(() => {});
  }

  /** Read, change, write atomically; the problems of the read come back (those tokens are dropped). */
  update(change: (values: Map<string, string>) => void): Promise<ConfProblem[]> {
    return this.serial(async () => {
      const cur = await this.read();
      change(cur.values);
      for (const p of cur.problems)
        log.warn('conf token dropped on rewrite', { file: this.path, problem: p.message });
      await this.replace(formatConf(cur.values));
      return cur.problems;
    });
  }

  /**
   * One change at a time: in order within this process, and under `<file>.lock` against every
   * other process writing the file this way (runtime/file-lock.ts), so concurrent `virgo conf
   * set`s and a running consumer's exports never lose each other's updates.
   */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const locked = async () => {
      try {
        return await withFileLock(this.path, fn);
      } catch (err) {
        if (err instanceof FileLockError) {
          // the lock could not be made (no directory, no permission): as for the file itself
          const cause = err.cause as NodeJS.ErrnoException | undefined;
          throw cause?.code ? this.fsError('write', cause) : new ConfFileError(err.message, { cause: err });
        }
        throw err;
      }
    };
    const next = this.chain.then(locked, locked);
    this.chain = next.catch(() => {});
    return next;
  }

  private async replace(text: string): Promise<void> {
    const dir = dirname(this.path);
    const tmp = join(dir, `.${basename(this.path)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
    let mode = 0o644;
    try {
      mode = (await stat(this.path)).mode & 0o7777;
    } catch {
      // new file: default mode
    }
    const sync = this.opts.fsync !== false;
    try {
      const fh = await open(tmp, 'wx', mode);
      try {
        await fh.writeFile(text, 'utf8');
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw this.fsError('write', err);
    }
    if (sync) {
      // The rename is durable only once the directory entry is.
      try {
        const d = await open(dir, 'r');
        try {
          await d.sync();
        } finally {
          await d.close();
        }
      } catch (err) {
        throw this.fsError('sync the directory of', err);
      }
    }
  }

  private fsError(what: string, err: unknown): ConfFileError {
    const e = err as NodeJS.ErrnoException;
    const hint =
      e.code === 'EACCES' || e.code === 'EPERM'
        ? ' (permission denied: run as root, or choose another file with --file / VIRGO_CONF_FILE)'
        : e.code === 'ENOENT'
          ? ' (the directory does not exist)'
          : '';
    return new ConfFileError(`cannot ${what} ${this.path}: ${e.code ?? e.message}${hint}`, { cause: err });
  }
}

export interface ConfSinkOptions {
  /** the host whose variables the file holds; changes of other hosts are not this file's */
  host: string;
  /** coalesce changes for this long before rewriting the file (default 50 ms) */
  delayMs?: number;
  name?: string;
}

/**
 * Keeps a conf file in step with one host's variables in a table: changes are coalesced and
 * written with one atomic read-modify-write, so pairs set by people (`virgo conf set`) survive. A
 * value the format cannot hold (a comma) is refused, counted and logged, and the key is left as it
 * was in the file. Other hosts' changes are passed over: one file, one host.
 */
export class ConfFileSink implements ExportSink {
  readonly name: string;
  readonly file: ConfFile;
  readonly host: string;
  private pending = new Map<string, string | undefined>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failures = 0;
  private closed = false;
  private readonly counts = { written: 0, errors: 0, rejected: 0 };
  private lastError: string | undefined;

  constructor(
    file: ConfFile | string,
    private readonly opts: ConfSinkOptions,
  ) {
    this.file = typeof file === 'string' ? new ConfFile(file) : file;
    this.host = opts.host;
    this.name = opts.name ?? 'conf';
  }

  offer(ch: VariableChange): void {
    if (ch.host !== this.host) return;
    const err = confPairError(ch.key, ch.value);
    if (err) {
      this.counts.rejected++;
      exportRejects.inc({ sink: this.name });
      this.lastError = err.message;
      log.warn('variable not written to the conf file', { file: this.file.path, err: err.message });
      return;
    }
    this.pending.set(ch.key, ch.value);
    this.schedule(this.opts.delayMs ?? 50);
  }

  offerDelete(d: VariableDelete): void {
    if (d.host !== this.host) return;
    this.pending.set(d.key, undefined);
    this.schedule(this.opts.delayMs ?? 50);
  }

  private schedule(ms: number): void {
    if (this.timer || this.running || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, ms);
  }

  private run(): Promise<void> {
    if (this.running) return this.running;
    if (this.pending.size === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.running = this.file
      .update((m) => {
        for (const [k, v] of batch) {
          if (v === undefined) m.delete(k);
          else m.set(k, v);
        }
      })
      .then(
        () => {
          this.failures = 0;
          this.counts.written += batch.size;
          exportWrites.inc({ sink: this.name }, batch.size);
        },
        (err: Error) => {
          this.failures++;
          this.counts.errors++;
          exportErrors.inc({ sink: this.name });
          this.lastError = err.message;
          log.error('conf file write failed; will retry', { err: err.message, failures: this.failures });
          // Newer changes win over the ones being put back.
          for (const [k, v] of batch) if (!this.pending.has(k)) this.pending.set(k, v);
        },
      )
      .finally(() => {
        this.running = undefined;
        if (this.pending.size > 0)
          this.schedule(this.failures > 0 ? Math.min(30_000, 100 * 2 ** this.failures) : 0);
      });
    return this.running;
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // One attempt for what is pending now (a failing disk is reported, not waited on forever).
    if (this.running) await this.running;
    await this.run();
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  stats(): SinkStats {
    return { ...this.counts, pending: this.pending.size, lastError: this.lastError };
  }
}

export interface ConfDirOptions {
  /** coalesce changes for this long before rewriting a file (default 50 ms) */
  delayMs?: number;
  /** fsync files and the directory on writes (default true) */
  fsync?: boolean;
  name?: string;
}

/**
 * One conf file per host, `<dir>/<host>.conf`, each kept like ConfFileSink keeps its file (host
 * names are [A-Za-z0-9_.:-], so they are safe file names and never reach outside `dir`). A
 * variable without a valid host is refused and counted. The kernel module of machine M reads
 * `<dir>/M.conf` (e.g. symlinked from /etc/virgo_kernel_analytics.conf: writes replace the file
 * inside `dir`, the link keeps pointing at it).
 */
export class ConfDirSink implements ExportSink {
  readonly name: string;
  private readonly files = new Map<string, ConfFileSink>();
  private rejected = 0;
  private lastError: string | undefined;

  constructor(
    readonly dir: string,
    private readonly opts: ConfDirOptions = {},
  ) {
    this.name = opts.name ?? 'conf-dir';
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ConfFileError(`cannot create the conf directory ${dir}: ${e.code ?? e.message}`, {
        cause: err,
      });
    }
  }

  /** The file that holds `host`'s variables. */
  pathOf(host: string): string {
    return join(this.dir, `${host}.conf`);
  }

  /** Hosts with a file kept by this sink so far. */
  hosts(): string[] {
    return [...this.files.keys()];
  }

  private sinkFor(host: string): ConfFileSink | undefined {
    let s = this.files.get(host);
    if (s) return s;
    const bad = hostProblem(host);
    if (bad) {
      const n = ++this.rejected;
      exportRejects.inc({ sink: this.name });
      this.lastError = `no conf file for a variable of host ${JSON.stringify(host)}: ${bad.message}`;
      if ((n & (n - 1)) === 0)
        log.warn('variable not written to a conf file', { err: this.lastError, refused: n });
      return undefined;
    }
    s = new ConfFileSink(new ConfFile(this.pathOf(host), { fsync: this.opts.fsync ?? true }), {
      host,
      name: this.name,
      ...(this.opts.delayMs !== undefined ? { delayMs: this.opts.delayMs } : {}),
    });
    this.files.set(host, s);
    return s;
  }

  offer(ch: VariableChange): void {
    this.sinkFor(ch.host)?.offer(ch);
  }

  offerDelete(d: VariableDelete): void {
    this.files.get(d.host)?.offerDelete(d);
  }

  async flush(): Promise<void> {
    await Promise.all([...this.files.values()].map((s) => s.flush()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((s) => s.close()));
  }

  stats(): SinkStats {
    const out: SinkStats = {
      written: 0,
      errors: 0,
      rejected: this.rejected,
      pending: 0,
      lastError: this.lastError,
    };
    for (const s of this.files.values()) {
      const x = s.stats();
      out.written += x.written;
      out.errors += x.errors;
      out.rejected += x.rejected;
      out.pending += x.pending;
      out.lastError = x.lastError ?? out.lastError;
    }
    return out;
  }
}
