// How drivers and devices read analytics variables: the least they need from the variable table
// (latest value per key, synchronously, optionally of one host, plus change events), so the same
// driver runs against the in-process VariableTable (../table.ts satisfies this as is) or, in
// another process, against Redis (redis-variables.ts mirrors the exporter's hashes into a table).
// Which value texts are numbers and booleans is the variable contract's (../../schemas/variable.ts).
import { parseNumber } from '../../schemas/variable.ts';

/** What a VariableSource reports on 'change' (the table's own VariableChange carries more). */
export interface SourceChange {
  key: string;
  /** undefined when the variable was removed */
  value: string | undefined;
  /** the host the variable belongs to, when the source knows */
  host?: string;
}

export type ChangeListener = (change: SourceChange) => void;

export interface VariableSource {
  /** the latest value: of `host` when given, else the newest over all hosts */
  get(key: string, host?: string): string | undefined;
  on(event: 'change', fn: ChangeListener): unknown;
  off?(event: 'change', fn: ChangeListener): unknown;
}

/**
 * One host's variables as a flat source: a device reads `pxrc.throttle` of its own device id, never
 * another drone's. Changes of other hosts are not passed on.
 */
export function hostView(src: VariableSource, host: string): VariableSource {
  const wrapped = new Map<ChangeListener, ChangeListener>();
  return {
    get: (key) => src.get(key, host),
    on(event, fn) {
      const w: ChangeListener = (c) => {
        if (c.host === undefined || c.host === host) fn({ key: c.key, value: c.value, host });
      };
      wrapped.set(fn, w);
      return src.on(event, w);
    },
    off(event, fn) {
      const w = wrapped.get(fn);
      if (!w) return undefined;
      wrapped.delete(fn);
      return src.off?.(event, w);
    },
  };
}

/**
 * Several sources read as one, the first that has a value winning: operator overrides
 * (`drivers up --set`) in front of the learnt table. Change events of every layer pass through.
 */
export function layered(...layers: VariableSource[]): VariableSource {
  return {
    get(key, host) {
      for (const l of layers) {
        const v = l.get(key, host);
        if (v !== undefined) return v;
      }
      return undefined;
    },
    on(event, fn) {
      for (const l of layers) l.on(event, fn);
      return this;
    },
    off(event, fn) {
      for (const l of layers) l.off?.(event, fn);
      return this;
    },
  };
}

/** Subscribes `fn` to changes of the given keys; returns the unsubscribe. */
export function watchKeys(src: VariableSource, keys: readonly string[], fn: ChangeListener): () => void {
  const wanted = new Set(keys);
  const listener: ChangeListener = (c) => {
    if (wanted.has(c.key)) fn(c);
  };
  src.on('change', listener);
  return () => src.off?.('change', listener);
}

export interface NumberBounds {
  min?: number;
  max?: number;
}

/**
 * A numeric variable, or `fallback` when it is missing or not a number (a bad value from a learner
 * must not turn into NaN inside a driver). Values outside the bounds are clamped.
 */
export function readNumber(
  src: VariableSource,
  key: string,
  fallback: number,
  bounds: NumberBounds = {},
): number {
  const raw = src.get(key);
  if (raw === undefined) return fallback;
  const n = parseNumber(raw);
  if (n === undefined) return fallback;
  return clamp(n, bounds.min ?? Number.NEGATIVE_INFINITY, bounds.max ?? Number.POSITIVE_INFINITY);
}

export function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}
