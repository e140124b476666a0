// The in-process table of analytics variables: what the kernel module exported kernel-wide as
// `virgo_kernel_analytics_conf`. Drivers and devices read it synchronously on each tick; exporters
// and watchers follow its change events or iterate its changes.
import { EventEmitter } from 'node:events';
import { createLogger } from '../runtime/log.ts';
import { counter, gauge } from '../runtime/metrics.ts';
import { isValidKey, isValidValue } from '../schemas/variable.ts';
import { MAX_ANALYTICS_CONF } from './validate.ts';

const log = createLogger('kernel-analytics.table');
const variablesGauge = gauge('virgo_analytics_variables', 'variables held by a variable table', ['table']);
const refusedTotal = counter(
  'virgo_analytics_table_refused_total',
  'new variables refused because the table was full (maxVariables)',
  ['table'],
);

/** One variable as the table holds it. `host` is '' when the source did not say. */
export interface VariableEntry {
  readonly host: string;
  readonly key: string;
  readonly value: string;
  /** the sequence number of the update that set this value */
  readonly seq: number;
  /** epoch ms of that update */
  readonly ts: number;
}

export interface VariableChange {
  host: string;
  key: string;
  value: string;
  /** the value this host/key had before, undefined when it is new */
  previous: string | undefined;
  seq: number;
  ts: number;
}

export interface VariableDelete {
  host: string;
  key: string;
  previous: string;
  seq: number;
}

export interface TableEvents {
  change: [VariableChange];
  delete: [VariableDelete];
  /** a new variable could not be added: the table holds maxVariables already */
  refused: [{ host: string; key: string; maxVariables: number }];
  /** EventEmitter's own: a listener is being added / was removed */
  newListener: [eventName: string | symbol, listener: unknown];
  removeListener: [eventName: string | symbol, listener: unknown];
}

export type SetResult = 'added' | 'changed' | 'unchanged' | 'refused' | 'invalid';

export interface SetOptions {
  host?: string;
  /** sequence number to record (the consumer passes its ring's); the table's own otherwise */
  seq?: number;
  ts?: number;
}

export interface VariableTableOptions {
  /**
   * Distinct variables (host/key pairs) held at most; default 500, the original MAX_ANALYTICS_CONF.
   * Past it new variables are refused (counted, 'refused' event); existing ones keep updating.
   */
  maxVariables?: number;
  /** label of this table's metrics */
  name?: string;
}

export interface TableStats {
  variables: number;
  maxVariables: number;
  hosts: number;
  sets: number;
  changes: number;
  unchanged: number;
  refused: number;
  invalid: number;
  deletes: number;
  /** change iterators currently open */
  iterators: number;
}

export interface ChangesOptions {
  /** first yield every current variable (as changes with previous undefined) */
  snapshot?: boolean;
  /** only this host's variables */
  host?: string;
  signal?: AbortSignal;
}

class Entry implements VariableEntry {
  constructor(
    readonly host: string,
    readonly key: string,
    public value: string,
    public seq: number,
    public ts: number,
  ) {}
}

export class VariableTable extends EventEmitter<TableEvents> {
  readonly maxVariables: number;
  readonly name: string;
  private readonly byHost = new Map<string, Map<string, Entry>>();
  /** per key, the entry (of any host) that changed last */
  private readonly latest = new Map<string, Entry>();
  private count = 0;
  private seq = 0;
  private readonly iterators = new Set<ChangeQueue>();
  /** 'change' listeners attached */
  private watchers = 0;
  // Single-host fast path: the consumer's table sees one host all the time.
  private lastHost: string | undefined;
  private lastMap: Map<string, Entry> | undefined;
  private readonly counts = { sets: 0, changes: 0, unchanged: 0, refused: 0, invalid: 0, deletes: 0 };

  constructor(opts: VariableTableOptions = {}) {
    super();
    const max = opts.maxVariables ?? MAX_ANALYTICS_CONF;
    if (!Number.isInteger(max) || max < 1)
      throw new RangeError(`maxVariables must be an integer >= 1, got ${max}`);
    this.maxVariables = max;
    this.name = opts.name ?? 'table';
    // Many drivers may watch one table; that is not a leak.
    this.setMaxListeners(0);
    // listenerCount() per update costs more than the rest of an unwatched update.
    this.on('newListener', (ev) => {
      if (ev === 'change') this.watchers++;
    });
    this.on('removeListener', (ev) => {
      if (ev === 'change') this.watchers--;
    });
  }

  /** Validates and stores one variable. Never throws on bad input: says 'invalid' (and counts it). */
  set(key: string, value: string, opts: SetOptions = {}): SetResult {
    if (!isValidKey(key) || !isValidValue(value)) {
      this.counts.invalid++;
      return 'invalid';
    }
    return this.setValidated(key, value, opts.host ?? '', opts.seq, opts.ts);
  }

  /**
   * `set` for callers that already applied the contract's checks (the consumer's byte parser,
   * the feeder): the hot path, no regular expressions.
   */
  setValidated(key: string, value: string, host = '', seq?: number, ts?: number): SetResult {
    this.counts.sets++;
    let map: Map<string, Entry> | undefined;
    if (host === this.lastHost) map = this.lastMap;
    else {
      map = this.byHost.get(host);
      if (map) {
        this.lastHost = host;
        this.lastMap = map;
      }
    }
    const entry = map === undefined ? undefined : map.get(key);
    if (entry !== undefined && entry.value === value) {
      this.counts.unchanged++;
      return 'unchanged';
    }
    let s: number;
    if (seq === undefined) s = this.seq++;
    else {
      s = seq;
      if (seq >= this.seq) this.seq = seq + 1;
    }
    const t = ts === undefined ? Date.now() : ts;
    let previous: string | undefined;
    let e: Entry;
    if (entry !== undefined) {
      previous = entry.value;
      entry.value = value;
      entry.seq = s;
      entry.ts = t;
      // With one host the latest of a key is always that host's entry: skip the second lookup.
      if (this.byHost.size > 1 && this.latest.get(key) !== entry) this.latest.set(key, entry);
      e = entry;
    } else {
      if (this.count >= this.maxVariables) {
        this.refuse(host, key);
        return 'refused';
      }
      if (!map) {
        map = new Map();
        this.byHost.set(host, map);
        this.lastHost = host;
        this.lastMap = map;
      }
      e = new Entry(host, key, value, s, t);
      map.set(key, e);
      this.latest.set(key, e);
      this.count++;
      variablesGauge.set({ table: this.name }, this.count);
    }
    this.counts.changes++;
    if (this.watchers > 0 || this.iterators.size > 0) {
      const ch: VariableChange = { host, key, value, previous, seq: s, ts: e.ts };
      // No Set iterator (an allocation) per change when no `changes()` reader is open.
      if (this.iterators.size > 0) for (const it of this.iterators) it.push(ch);
      if (this.watchers > 0) this.emit('change', ch);
    }
    return entry !== undefined ? 'changed' : 'added';
  }

  private refuse(host: string, key: string): void {
    this.counts.refused++;
    refusedTotal.inc({ table: this.name });
    const n = this.counts.refused;
    // First refusal, then every power of ten: loud enough to notice, never a log flood.
    if ((n & (n - 1)) === 0 || Number.isInteger(Math.log10(n))) {
      log.warn('table full: new variable refused (raise maxVariables / --max-variables)', {
        table: this.name,
        host,
        key,
        maxVariables: this.maxVariables,
        refused: n,
      });
    }
    if (this.listenerCount('refused') > 0)
      this.emit('refused', { host, key, maxVariables: this.maxVariables });
  }

  /** Removes one variable (a compacted topic's tombstone); true when it existed. */
  delete(key: string, host = ''): boolean {
    const map = this.byHost.get(host);
    const e = map?.get(key);
    if (!map || !e) return false;
    map.delete(key);
    if (map.size === 0) {
      this.byHost.delete(host);
      if (this.lastHost === host) {
        this.lastHost = undefined;
        this.lastMap = undefined;
      }
    }
    this.count--;
    this.counts.deletes++;
    variablesGauge.set({ table: this.name }, this.count);
    if (this.latest.get(key) === e) {
      // Fall back to the newest value another host has for the key.
      let best: Entry | undefined;
      for (const m of this.byHost.values()) {
        const o = m.get(key);
        if (o && (!best || o.seq > best.seq)) best = o;
      }
      if (best) this.latest.set(key, best);
      else this.latest.delete(key);
    }
    this.emit('delete', { host, key, previous: e.value, seq: this.seq++ });
    return true;
  }

  /** The latest value of `key`: of `host` when given, else whichever host changed it last. */
  get(key: string, host?: string): string | undefined {
    if (host === undefined) return this.latest.get(key)?.value;
    return this.byHost.get(host)?.get(key)?.value;
  }

  entry(key: string, host?: string): VariableEntry | undefined {
    const e = host === undefined ? this.latest.get(key) : this.byHost.get(host)?.get(key);
    return e ? { host: e.host, key: e.key, value: e.value, seq: e.seq, ts: e.ts } : undefined;
  }

  has(key: string, host?: string): boolean {
    return this.get(key, host) !== undefined;
  }

  /**
   * The sequence number the next update will get. Every update gets a larger one, so entries with
   * `seq >= a value read earlier` are exactly those changed since (see changedSince).
   */
  get nextSeq(): number {
    return this.seq;
  }

  /** Variables changed at or after sequence number `seq`: one host's, or every host's; oldest first. */
  changedSince(seq: number, host?: string): VariableEntry[] {
    const out: VariableEntry[] = [];
    const maps =
      host === undefined ? this.byHost.values() : [this.byHost.get(host) ?? new Map<string, Entry>()];
    for (const m of maps) {
      for (const e of m.values()) {
        if (e.seq >= seq) out.push({ host: e.host, key: e.key, value: e.value, seq: e.seq, ts: e.ts });
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** Distinct variables (host/key pairs) held. */
  get size(): number {
    return this.count;
  }

  hosts(): string[] {
    return [...this.byHost.keys()];
  }

  /** True when the table holds a variable of `host`. */
  hasHost(host: string): boolean {
    return this.byHost.has(host);
  }

  keys(host?: string): string[] {
    if (host === undefined) return [...this.latest.keys()];
    return [...(this.byHost.get(host)?.keys() ?? [])];
  }

  /** Copies of the held variables: one host's, or every host's. */
  entries(host?: string): VariableEntry[] {
    const out: VariableEntry[] = [];
    const maps = host === undefined ? [...this.byHost.values()] : [this.byHost.get(host) ?? new Map()];
    for (const m of maps)
      for (const e of m.values())
        out.push({ host: e.host, key: e.key, value: e.value, seq: e.seq, ts: e.ts });
    return out;
  }

  /** key → value: one host's variables, or the latest value of each key over all hosts. */
  snapshot(host?: string): Record<string, string> {
    const out: Record<string, string> = {};
    const src = host === undefined ? this.latest : (this.byHost.get(host) ?? new Map<string, Entry>());
    for (const [k, e] of src) out[k] = e.value;
    return out;
  }

  stats(): TableStats {
    return {
      variables: this.count,
      maxVariables: this.maxVariables,
      hosts: this.byHost.size,
      ...this.counts,
      iterators: this.iterators.size,
    };
  }

  /**
   * The changes as they happen, for `for await`. A reader that falls behind is not fed an
   * unbounded queue: pending changes coalesce per host/key (it gets the newest value, with the
   * `previous` it had not yet seen), so memory stays within the table's size.
   */
  changes(opts: ChangesOptions = {}): AsyncIterableIterator<VariableChange> {
    const q = new ChangeQueue(opts.host, () => this.iterators.delete(q));
    if (opts.snapshot) {
      const src =
        opts.host === undefined ? [...this.byHost.values()] : [this.byHost.get(opts.host) ?? new Map()];
      for (const m of src)
        for (const e of m.values())
          q.push({ host: e.host, key: e.key, value: e.value, previous: undefined, seq: e.seq, ts: e.ts });
    }
    this.iterators.add(q);
    if (opts.signal) {
      if (opts.signal.aborted) q.end();
      else opts.signal.addEventListener('abort', () => q.end(), { once: true });
    }
    return q;
  }
}

/** One `changes()` reader: a coalescing queue (host/key → newest change) plus a waiting promise. */
class ChangeQueue implements AsyncIterableIterator<VariableChange> {
  private pending = new Map<string, VariableChange>();
  private waiter: ((r: IteratorResult<VariableChange>) => void) | undefined;
  private done = false;

  constructor(
    private readonly host: string | undefined,
    private readonly detach: () => void,
  ) {}

  push(ch: VariableChange): void {
    if (this.done || (this.host !== undefined && ch.host !== this.host)) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: ch, done: false });
      return;
    }
    const id = `${ch.host}\0${ch.key}`;
    const older = this.pending.get(id);
    // Keep the reader's view consistent: previous is what it last saw, not an unseen middle value.
    this.pending.set(id, older ? { ...ch, previous: older.previous } : ch);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.pending.clear();
    this.detach();
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<VariableChange>> {
    for (const [id, ch] of this.pending) {
      this.pending.delete(id);
      return Promise.resolve({ value: ch, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((r) => {
      this.waiter = r;
    });
  }

  return(): Promise<IteratorResult<VariableChange>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<VariableChange> {
    return this;
  }
}
