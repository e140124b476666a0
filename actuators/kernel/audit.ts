// The kernel actuator's audit log: append-only JSON lines, each fsync'd before the command it
// announces runs, so that after any crash (SIGKILL, power loss) the log names every setting that
// may have changed and its original. One file holds many sessions; a session runs from its
// "start" record to its "end" record, and a session without an end is unfinished: the next run
// (or `virgo actuate --rollback`) restores its originals before anything else.
//
// Times are wall-clock ISO 8601 (for people and for matching other logs); nothing here decides
// anything by them. A lock file beside the log keeps two actuators off one log.
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { createLogger } from '../../runtime/log.ts';
import { processAlive } from '../../runtime/pids.ts';
import type { Setting, TargetRef } from './targets.ts';

const log = createLogger('actuators.kernel.audit');

export interface StartRecord {
  type: 'start';
  session: string;
  time: string;
  pid: number;
  machine: string;
  /** the namespace every command ran in; a rollback runs there too */
  netns: string | null;
  policy: string;
  /** whose variables drove it */
  host: string;
}

export interface ActionRecord {
  type: 'action';
  session: string;
  seq: number;
  time: string;
  rule: string;
  /** host/key of the variable that drove it */
  variable: string;
  value: string;
  why: string;
  target: TargetRef;
  old: Setting;
  new: Setting;
  argv: string[];
}

export interface ResultRecord {
  type: 'result';
  session: string;
  seq: number;
  time: string;
  ok: boolean;
  error?: string;
  /** the setting read back after the command */
  seen?: Setting;
}

export interface RollbackRecord {
  type: 'rollback';
  session: string;
  time: string;
  target: TargetRef;
  original: Setting;
  /** the restoring command; null when the setting already was the original */
  argv: string[] | null;
  ok: boolean;
  error?: string;
  /** which process restored it */
  by: number;
}

export interface EndRecord {
  type: 'end';
  session: string;
  time: string;
  reason: string;
}

export type AuditRecord = StartRecord | ActionRecord | ResultRecord | RollbackRecord | EndRecord;

export class AuditLockError extends Error {
  override readonly name = 'AuditLockError';
}

export class AuditLog {
  private fd: number | undefined;
  private readonly lockPath: string;

  private constructor(readonly path: string) {
    this.lockPath = `${path}.lock`;
  }

  /** Opens (creates) the log for appending and takes its lock; a dead holder's lock is taken over. */
  static open(path: string): AuditLog {
    const a = new AuditLog(path);
    mkdirSync(dirname(path), { recursive: true });
    a.lock();
    try {
      const created = !existsSync(path);
      a.fd = openSync(path, 'a');
      // A crash mid-write can leave a torn last line: start ours on a fresh one.
      const size = fstatSync(a.fd).size;
      if (size > 0) {
        const last = Buffer.alloc(1);
        const rfd = openSync(path, 'r');
        try {
          readSync(rfd, last, 0, 1, size - 1);
        } finally {
          closeSync(rfd);
        }
        if (last[0] !== 0x0a) writeSync(a.fd, '\n');
      }
      if (created) fsyncDir(dirname(path));
    } catch (err) {
      a.unlock();
      throw err;
    }
    return a;
  }

  private lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockPath, 'wx');
        writeSync(fd, `${process.pid}\n`);
        fsyncSync(fd);
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number(readFileSync(this.lockPath, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new AuditLockError(
          `another virgo actuate (pid ${pid}) holds ${this.path}; stop it first (its lock: ${this.lockPath})`,
        );
      }
      // Its holder is dead (killed, crashed): the log it left is what recovery reads.
      log.warn('taking over the lock of a dead actuator', { lock: this.lockPath, pid });
      unlinkSync(this.lockPath);
    }
    throw new AuditLockError(`cannot take the lock ${this.lockPath}`);
  }

  private unlock(): void {
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }

  /** Appends one record and fsyncs it: when this returns, the record survives a crash. */
  append(r: AuditRecord): void {
    if (this.fd === undefined) throw new Error('audit log is closed');
    writeSync(this.fd, `${JSON.stringify(r)}\n`);
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    this.unlock();
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on a directory; the file's own fsync still holds
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface Session {
  start: StartRecord;
  records: AuditRecord[];
  end?: EndRecord;
}

/** Every session of a log, oldest first. A torn or foreign line is skipped with a warning. */
export function readSessions(path: string): Session[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const sessions = new Map<string, Session>();
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let r: AuditRecord;
    try {
      r = JSON.parse(line) as AuditRecord;
    } catch {
      log.warn('skipping an unreadable audit line (a crash mid-write leaves one)', { path, line: i + 1 });
      return;
    }
    if (typeof r !== 'object' || r === null || typeof r.session !== 'string') return;
    if (r.type === 'start') {
      sessions.set(r.session, { start: r, records: [] });
      return;
    }
    const s = sessions.get(r.session);
    if (!s) return;
    s.records.push(r);
    if (r.type === 'end') s.end = r;
  });
  return [...sessions.values()];
}

export function unfinished(sessions: readonly Session[]): Session[] {
  return sessions.filter((s) => !s.end);
}

export interface Original {
  target: TargetRef;
  original: Setting;
}

/**
 * What a session may have changed, with the originals to restore: the first `old` recorded per
 * target (an action is logged before its command runs, so a logged action may or may not have
 * happened; restoring checks first). Bans are left out: their table goes, and they with it.
 * In the order the targets were first changed.
 */
export function originalsOf(s: Session, id: (t: TargetRef) => string): Original[] {
  const out = new Map<string, Original>();
  for (const r of s.records) {
    if (r.type !== 'action' || r.target.kind === 'nft-element') continue;
    const k = id(r.target);
    if (!out.has(k)) out.set(k, { target: r.target, original: r.old });
  }
  return [...out.values()];
}

export function now(): string {
  return new Date().toISOString();
}

export function machine(): string {
  return hostname();
}
