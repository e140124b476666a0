// Operators' pins: `virgo pin host/key=value` freezes a variable at a value; learners stop emitting
// it until `virgo unpin host/key`. Pins live in <state-dir>/pins/pins.json (a separately run CLI
// edits it under a lock file; a running learner watches the directory), and with Kafka also in the
// compacted topic virgo.learner-pins (key host/key, JSON value, tombstone = unpin), so every
// learner instance of a consumer group sees a pin made anywhere.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../runtime/log.ts';

const log = createLogger('learners.pins');

export const PINS_TOPIC = 'virgo.learner-pins';
export const PINS_TOPIC_SPEC = {
  topic: PINS_TOPIC,
  partitions: 1,
  configs: { 'cleanup.policy': 'compact' },
};

export interface PinEntry {
  host: string;
  key: string;
  value: string;
  /** epoch ms of the pin; the newest pin of a host/key wins across sources */
  ts: number;
  /** who pinned it (user@machine) */
  by: string;
  /** true when the pinning command already published the value to virgo.kernel-analytics */
  announced: boolean;
}

export class PinFileError extends Error {
  override readonly name = 'PinFileError';
}

export function whoAmI(): string {
  let user = 'operator';
  try {
    user = userInfo().username || user;
  } catch {
    // no passwd entry (containers): keep the generic name
  }
  return `${user}@${hostname()}`;
}

interface PinFileJson {
  version: 1;
  pins: Record<string, Omit<PinEntry, 'host' | 'key'>>;
}

function isEntry(v: unknown): v is Omit<PinEntry, 'host' | 'key'> {
  const e = v as Record<string, unknown>;
  return typeof e === 'object' && e !== null && typeof e.value === 'string' && typeof e.ts === 'number';
}

/** The pins file: atomic replace under an exclusive lock file, so concurrent CLIs lose nothing. */
export class PinFile {
  readonly path: string;
  private readonly lockPath: string;

  constructor(readonly dir: string) {
    this.path = join(dir, 'pins.json');
    this.lockPath = `${this.path}.lock`;
  }

  read(): Map<string, PinEntry> {
    const out = new Map<string, PinEntry>();
    if (!existsSync(this.path)) return out;
    let doc: PinFileJson;
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8')) as PinFileJson;
    } catch (err) {
      throw new PinFileError(
        `pins file ${this.path} is not valid JSON (${(err as Error).message}); fix or remove it, then pin again`,
      );
    }
    if (typeof doc !== 'object' || doc === null || typeof doc.pins !== 'object' || doc.pins === null) {
      throw new PinFileError(`pins file ${this.path}: expected {"version":1,"pins":{…}}`);
    }
    for (const [id, e] of Object.entries(doc.pins)) {
      const slash = id.indexOf('/');
      if (slash <= 0 || !isEntry(e)) {
        log.warn('ignoring a malformed pin', { file: this.path, id });
        continue;
      }
      out.set(id, {
        host: id.slice(0, slash),
        key: id.slice(slash + 1),
        value: e.value,
        ts: e.ts,
        by: typeof e.by === 'string' ? e.by : 'operator',
        announced: e.announced === true,
      });
    }
    return out;
  }

  /** Read-modify-write under the lock; returns the pins as written. */
  async update(change: (pins: Map<string, PinEntry>) => void): Promise<Map<string, PinEntry>> {
    mkdirSync(this.dir, { recursive: true });
    await this.lock();
    try {
      const pins = this.read();
      change(pins);
      const doc: PinFileJson = { version: 1, pins: {} };
      for (const [id, e] of [...pins].sort(([a], [b]) => a.localeCompare(b))) {
        doc.pins[id] = { value: e.value, ts: e.ts, by: e.by, announced: e.announced };
      }
      const tmp = `${this.path}.tmp-${process.pid}`;
      const fd = openSync(tmp, 'w');
      try {
        writeFileSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      return pins;
    } finally {
      this.unlock();
    }
  }

  private async lock(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        closeSync(openSync(this.lockPath, 'wx'));
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      // A lock older than 30 s belongs to a process that died mid-update.
      try {
        if (Date.now() - statSync(this.lockPath).mtimeMs > 30_000) unlinkSync(this.lockPath);
      } catch {
        // gone meanwhile: retry at once
      }
      if (Date.now() > deadline) {
        throw new PinFileError(
          `pins file ${this.path} is locked (${this.lockPath}); retry, or remove a stale lock`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private unlock(): void {
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }

  /**
   * Calls `onChange` with the pins whenever the file changes: inotify on the directory (atomic
   * renames replace the inode, so watching the file itself would go deaf) plus a slow poll as a
   * safety net for filesystems without change events.
   */
  watch(onChange: (pins: Map<string, PinEntry>) => void, pollMs = 2_000): () => void {
    let last = this.signature();
    const check = () => {
      const sig = this.signature();
      if (sig === last) return;
      last = sig;
      try {
        onChange(this.read());
      } catch (err) {
        log.error('cannot read the pins file; keeping the pins in force', { err });
      }
    };
    let watcher: ReturnType<typeof watch> | undefined;
    try {
      watcher = watch(this.dir, { persistent: false }, (_ev, name) => {
        if (name === null || name === 'pins.json') check();
      });
      watcher.on('error', (err) => log.warn('pins watch failed; polling only', { err }));
    } catch (err) {
      log.warn('cannot watch the pins directory; polling only', { dir: this.dir, err });
    }
    const timer = setInterval(check, pollMs);
    timer.unref();
    return () => {
      watcher?.close();
      clearInterval(timer);
    };
  }

  private signature(): string {
    try {
      const s = statSync(this.path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'none';
    }
  }
}

/** Pins from several sources (file, topic); per host/key the newest pin wins. */
export class PinStore {
  private readonly sources = new Map<string, Map<string, PinEntry>>();
  private effective = new Map<string, PinEntry>();

  get(host: string, key: string): PinEntry | undefined {
    return this.effective.get(`${host}/${key}`);
  }

  all(): PinEntry[] {
    return [...this.effective.values()];
  }

  /** Replaces one source's pins; returns what changed in the effective set. */
  setSource(source: string, pins: Map<string, PinEntry>): { pinned: PinEntry[]; unpinned: PinEntry[] } {
    this.sources.set(source, new Map(pins));
    return this.recompute();
  }

  /** Changes one pin of a source (a topic message); `undefined` removes it. */
  setOne(
    source: string,
    id: string,
    entry: PinEntry | undefined,
  ): { pinned: PinEntry[]; unpinned: PinEntry[] } {
    let m = this.sources.get(source);
    if (!m) {
      m = new Map();
      this.sources.set(source, m);
    }
    if (entry) m.set(id, entry);
    else m.delete(id);
    return this.recompute();
  }

  private recompute(): { pinned: PinEntry[]; unpinned: PinEntry[] } {
    const next = new Map<string, PinEntry>();
    for (const m of this.sources.values()) {
      for (const [id, e] of m) {
        const cur = next.get(id);
        if (!cur || e.ts > cur.ts) next.set(id, e);
      }
    }
    const pinned: PinEntry[] = [];
    const unpinned: PinEntry[] = [];
    for (const [id, e] of next) {
      const old = this.effective.get(id);
      if (!old || old.value !== e.value) pinned.push(e);
    }
    for (const [id, e] of this.effective) if (!next.has(id)) unpinned.push(e);
    this.effective = next;
    return { pinned, unpinned };
  }
}

/** Topic message body of a pin (the key is host/key; a null value is the unpin tombstone). */
export function encodePinMessage(e: PinEntry): string {
  return JSON.stringify({ value: e.value, ts: e.ts, by: e.by, announced: e.announced });
}

export function decodePinMessage(id: string, value: Buffer | null): PinEntry | undefined {
  if (value === null) return undefined;
  const slash = id.indexOf('/');
  const e = JSON.parse(value.toString('utf8')) as unknown;
  if (slash <= 0 || !isEntry(e)) throw new PinFileError(`pin message ${id}: expected {"value":…,"ts":…}`);
  return {
    host: id.slice(0, slash),
    key: id.slice(slash + 1),
    value: e.value,
    ts: e.ts,
    by: typeof e.by === 'string' ? e.by : 'operator',
    announced: e.announced === true,
  };
}
