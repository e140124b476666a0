// Operators' pins: `virgo pin host/key=value` freezes a variable at a value; learners stop emitting
// it until `virgo unpin host/key`. Pins live in <state-dir>/pins/pins.json (a separately run CLI
// edits it under a lock file; a running learner watches the directory), and with Kafka also in the
// compacted topic virgo.learner-pins (key host/key, JSON value, tombstone = unpin), so every
// learner instance of a consumer group sees a pin made anywhere. `Pins` is the learner host's view
// of them (file, topic and API pins, the newest per host/key in force); `publishPin` and
// `publishUnpin` are what `virgo pin`/`unpin` send with --brokers.
import { randomUUID } from 'node:crypto';
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
import { type Bus, followFromStart, type Subscription, TOPICS, topicSpecs } from '../bus/index.ts';
import { createLogger } from '../runtime/log.ts';
import type { AnalyticsVariable } from '../schemas/index.ts';
import type { DeclaredVariable } from './gate.ts';
import type { VarType } from './types.ts';
import { HOST_RE, KEY_RE, normalise, undeclared, ValueError, variableMessage } from './variables.ts';

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

export class PinValueError extends Error {
  override readonly name = 'PinValueError';
}

/** Checks and canonicalises an operator's pin against the declared variables. */
export function checkPin(
  variables: ReadonlyMap<string, DeclaredVariable>,
  host: string,
  key: string,
  value: string,
): { value: string; learner: string | undefined; type: VarType; unit: string | null } {
  if (!HOST_RE.test(host))
    throw new PinValueError(`host ${JSON.stringify(host)} must match [A-Za-z0-9_.:-]{1,128}`);
  if (!KEY_RE.test(key))
    throw new PinValueError(`key ${JSON.stringify(key)} must match [A-Za-z0-9_.:/-]{1,128}`);
  const dv = variables.get(key);
  const decl = dv?.decl ?? undeclared(key);
  try {
    const n = normalise(decl, value, false);
    return { value: n.value, learner: dv?.learner, type: decl.type, unit: decl.unit };
  } catch (err) {
    if (err instanceof ValueError) throw new PinValueError(`cannot pin ${host}/${key}: ${err.message}`);
    throw err;
  }
}

export interface PinDiff {
  pinned: PinEntry[];
  unpinned: PinEntry[];
}

export interface PinsOptions {
  bus: Bus;
  variables: ReadonlyMap<string, DeclaredVariable>;
  /** the state dir whose pins/pins.json holds this machine's pins; none: API and topic pins only */
  stateDir?: string;
  /** the compacted pins topic to follow and publish to; none: no topic */
  topic?: string;
  /** processing time: when an API pin was made */
  now: () => number;
  /**
   * Puts a change of the pins in force into effect (the host's gate). `force` names a host/key
   * whose value goes out even if announced. Always called inside `run`.
   */
  apply(diff: PinDiff, force?: string): void;
  /** runs `fn` in turn with the host's other work, then delivers what it queued */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** counts a malformed message of the pins topic */
  rejected?(): void;
}

/**
 * The pins in force on one learner host: its pins file (watched), the pins topic (followed from
 * the beginning by a group of its own, read to its end before `start` resolves) and pins made
 * through the API, the newest per host/key winning.
 */
export class Pins {
  private readonly store = new PinStore();
  private readonly file: PinFile | undefined;
  private stopWatch: (() => void) | undefined;
  private sub: Subscription | undefined;

  constructor(private readonly opts: PinsOptions) {
    if (opts.stateDir) {
      const dir = join(opts.stateDir, 'pins');
      mkdirSync(dir, { recursive: true });
      this.file = new PinFile(dir);
    }
  }

  get(host: string, key: string): PinEntry | undefined {
    return this.store.get(host, key);
  }

  get count(): number {
    return this.store.all().length;
  }

  /** Applies the file's pins and the topic's (read to its end, at most 15 s), then follows both. */
  async start(): Promise<void> {
    const file = this.file;
    if (file) {
      this.opts.apply(this.store.setSource('file', file.read()));
      this.stopWatch = file.watch((pins) => {
        void this.opts.run(async () => this.opts.apply(this.store.setSource('file', pins)));
      });
    }
    if (this.opts.topic) await this.follow(this.opts.topic);
  }

  /** Pins host/key at `value` (already checked); returns the entry in force. Call inside `run`. */
  async pin(host: string, key: string, value: string): Promise<PinEntry> {
    const id = `${host}/${key}`;
    const entry: PinEntry = { host, key, value, ts: this.opts.now(), by: whoAmI(), announced: true };
    if (this.file) {
      const pins = await this.file.update((m) => void m.set(id, entry));
      this.opts.apply(this.store.setSource('file', pins), id);
    } else {
      this.opts.apply(this.store.setOne('api', id, entry), id);
    }
    if (this.opts.topic)
      await this.opts.bus.publish(this.opts.topic, [{ key: id, value: encodePinMessage(entry) }]);
    return entry;
  }

  /** Lifts a pin from every source; false when none was in force. Call inside `run`. */
  async unpin(host: string, key: string): Promise<boolean> {
    const id = `${host}/${key}`;
    const had = this.store.get(host, key) !== undefined;
    if (this.file) {
      const pins = await this.file.update((m) => void m.delete(id));
      this.opts.apply(this.store.setSource('file', pins));
    }
    this.opts.apply(this.store.setOne('api', id, undefined));
    if (this.opts.topic) {
      this.opts.apply(this.store.setOne('topic', id, undefined));
      await this.opts.bus.publish(this.opts.topic, [{ key: id, value: null }]);
    }
    return had;
  }

  async close(): Promise<void> {
    this.stopWatch?.();
    await this.sub?.close();
  }

  /** Reads the pins topic from the start (it is compacted: the latest pin per host/key). */
  private async follow(topic: string): Promise<void> {
    const bus = this.opts.bus;
    await bus.ensureTopics([{ ...PINS_TOPIC_SPEC, topic }]);
    const followed = await followFromStart(bus, {
      topics: [topic],
      // Every instance reads every pin: its own group, from the beginning.
      groupId: `virgo-learner-pins-${randomUUID()}`,
      onBatch: async (batch) => {
        await this.opts.run(async () => {
          for (const m of batch) {
            const id = m.key?.toString('utf8') ?? '';
            try {
              const e = decodePinMessage(id, m.value);
              // Any producer can write the topic: a pin from it is checked like one from the API.
              if (e) e.value = checkPin(this.opts.variables, e.host, e.key, e.value).value;
              this.opts.apply(this.store.setOne('topic', id, e));
            } catch (err) {
              this.opts.rejected?.();
              log.warn('ignoring a malformed pin message', { topic, offset: m.offset, err });
            }
          }
        });
      },
    });
    this.sub = followed.sub;
    await this.sub.ready;
    await followed.caughtUp;
  }
}

/**
 * What `virgo pin --brokers` sends: the pin to the pins topic (so every learner instance holds the
 * variable) and the value itself to the analytics topic (so every reader sees it now).
 */
export async function publishPin(
  bus: Bus,
  entry: PinEntry,
  variable: AnalyticsVariable,
  topics: { pins?: string; analytics?: string } = {},
): Promise<void> {
  const pinsTopic = topics.pins ?? PINS_TOPIC;
  const analyticsTopic = topics.analytics ?? TOPICS.kernelAnalytics;
  const spec = { ...topicSpecs().find((s) => s.topic === TOPICS.kernelAnalytics)!, topic: analyticsTopic };
  await bus.ensureTopics([spec, { ...PINS_TOPIC_SPEC, topic: pinsTopic }]);
  await bus.publish(pinsTopic, [{ key: `${entry.host}/${entry.key}`, value: encodePinMessage(entry) }]);
  await bus.publish(analyticsTopic, [variableMessage(variable)]);
}

/** What `virgo unpin --brokers` sends: the tombstone of host/key on the pins topic. */
export async function publishUnpin(bus: Bus, id: string, pinsTopic = PINS_TOPIC): Promise<void> {
  await bus.ensureTopics([{ ...PINS_TOPIC_SPEC, topic: pinsTopic }]);
  await bus.publish(pinsTopic, [{ key: id, value: null }]);
}
