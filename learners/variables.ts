// Variable declarations and the normalisation of proposed values. What a key, host or value may
// be, and which texts are numbers and booleans, is the variable contract (schemas/variable.ts);
// learners add the conf file's rule (no commas) so everything they emit fits every export.
// Numbers are clamped to the declared bounds here.
import { isIP } from 'node:net';
import { CONTENT_TYPES, HEADERS, type OutgoingMessage } from '../bus/index.ts';
import { type AnalyticsVariable, codecFor } from '../schemas/index.ts';
import {
  confValueProblem,
  HOST_RE,
  isValidKey,
  KEY_RE,
  parseBool as parseBoolText,
  parseHostKey,
  parseNumber,
} from '../schemas/variable.ts';
import type { VariableDecl, VariableDefinition } from './types.ts';

// The contract's patterns, re-exported for the learners that import them from here.
export { HOST_RE, KEY_RE };

export class DeclarationError extends Error {
  override readonly name = 'DeclarationError';
}

export class ValueError extends Error {
  override readonly name = 'ValueError';
}

export function checkDeclaration(d: VariableDecl, owner: string): void {
  const bad = (why: string) => new DeclarationError(`learner ${owner}, variable ${d.key}: ${why}`);
  if (!isValidKey(d.key)) throw bad('key must match [A-Za-z0-9_.:/-]{1,128}');
  if (!d.description || d.description.includes('\n')) throw bad('needs a one-line description');
  if (!(d.dwellMs >= 0)) throw bad('dwellMs must be >= 0');
  const def = d.definition as VariableDefinition | undefined;
  if (!def) throw bad('needs a definition (window, history, decayed or latest)');
  if (def.kind === 'window' && !(def.seconds > 0)) throw bad('a window definition needs seconds > 0');
  if (def.kind === 'decayed' && !(def.halfLifeSec > 0))
    throw bad('a decayed definition needs halfLifeSec > 0');
  if (!['window', 'history', 'decayed', 'latest'].includes(def.kind))
    throw bad(`unknown definition ${def.kind}`);
  if (d.type === 'int' || d.type === 'float') {
    if (d.min === undefined || d.max === undefined || !(d.min <= d.max))
      throw bad('numeric needs min <= max');
    if (d.hysteresis !== undefined && !(d.hysteresis >= 0)) throw bad('hysteresis must be >= 0');
    if (d.urgent !== undefined && d.urgent !== 'up' && d.urgent !== 'down') throw bad('urgent is up or down');
  }
  if (d.type === 'enum' && (!d.values || d.values.length === 0)) throw bad('enum needs values');
  if (d.type === 'bool' && d.urgent !== undefined && !['true', 'false'].includes(d.urgent.toLowerCase())) {
    throw bad('bool urgent is true or false');
  }
}

/** One line for --help and the README: what the value is computed over. */
export function describeDefinition(def: VariableDefinition): string {
  switch (def.kind) {
    case 'window':
      return def.tumbling
        ? `tumbling windows of ${def.seconds} s (event time), the last closed one`
        : `window ${def.seconds} s (event time, ending at the newest record)`;
    case 'history':
      return 'whole history (every record admitted)';
    case 'decayed':
      return `decayed, half-life ${def.halfLifeSec} s (event time)`;
    case 'latest':
      return 'latest record';
  }
}

export interface Normalised {
  /** the text on the wire */
  value: string;
  /** numeric value after clamping (int, float) */
  num?: number;
  /** the proposed number when it was clamped */
  clampedFrom?: number;
}

function boolText(b: boolean, style: VariableDecl['boolStyle']): string {
  if (style === 'python') return b ? 'True' : 'False';
  return b ? 'true' : 'false';
}

function parseBool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  return typeof v === 'string' ? parseBoolText(v) : undefined;
}

function formatFloat(x: number, decimals: number): string {
  // Number(toFixed) drops trailing zeros and the -0 of tiny negatives.
  const r = Number(x.toFixed(decimals));
  return String(Object.is(r, -0) ? 0 : r);
}

/**
 * The wire text of a proposed value under its declaration. Numbers outside the bounds are clamped
 * (`clamp: true`, what learners get) or rejected (`clamp: false`, what operators' pins get).
 */
export function normalise(d: VariableDecl, raw: unknown, clamp = true): Normalised {
  switch (d.type) {
    case 'int':
    case 'float': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseNumber(raw) : undefined;
      if (n === undefined || !Number.isFinite(n)) {
        throw new ValueError(`${d.key} is ${d.type}; got ${JSON.stringify(raw)}`);
      }
      const min = d.min ?? Number.NEGATIVE_INFINITY;
      const max = d.max ?? Number.POSITIVE_INFINITY;
      if (!clamp && (n < min || n > max)) {
        throw new ValueError(
          `${d.key} must be within [${min}, ${max}]${d.unit ? ` ${d.unit}` : ''}; got ${n}`,
        );
      }
      let v = Math.min(max, Math.max(min, n));
      if (d.type === 'int') v = Math.round(v);
      const value = d.type === 'int' ? String(v) : formatFloat(v, d.decimals ?? 3);
      const out: Normalised = { value, num: Number(value) };
      if (n < min || n > max) out.clampedFrom = n;
      return out;
    }
    case 'bool': {
      const b = parseBool(raw);
      if (b === undefined) throw new ValueError(`${d.key} is bool; got ${JSON.stringify(raw)}`);
      return { value: boolText(b, d.boolStyle) };
    }
    case 'ip': {
      const s = String(raw).trim();
      if (isIP(s) === 0) throw new ValueError(`${d.key} is an IP address; got ${JSON.stringify(raw)}`);
      return { value: s };
    }
    case 'enum': {
      const s = String(raw);
      if (!d.values?.includes(s)) {
        throw new ValueError(`${d.key} is one of ${d.values?.join('|')}; got ${JSON.stringify(raw)}`);
      }
      return { value: s };
    }
    case 'string': {
      const s = String(raw);
      const problem = s.length === 0 ? 'is empty' : confValueProblem(s)?.message;
      if (problem) throw new ValueError(`${d.key}: value ${problem}`);
      return { value: s };
    }
  }
}

/** The declaration an operator's pin of an undeclared key is checked against. */
export function undeclared(key: string): VariableDecl {
  return {
    key,
    type: 'string',
    unit: null,
    description: 'not declared by any learner',
    definition: { kind: 'latest' },
    dwellMs: 0,
  };
}

/** Splits `host/key` (the topic key) at the first '/'; throws ValueError saying what is wrong. */
export function splitHostKey(s: string): { host: string; key: string } {
  const r = parseHostKey(s);
  if (!r.ok) throw new ValueError(r.message);
  return { host: r.host, key: r.key };
}

const variableCodec = codecFor('AnalyticsVariable');

/** A variable as a message of virgo.kernel-analytics: key host/key, Avro value, its schema named. */
export function variableMessage(v: AnalyticsVariable): OutgoingMessage {
  return {
    key: `${v.host}/${v.key}`,
    value: variableCodec.encode(v),
    headers: { [HEADERS.contentType]: CONTENT_TYPES.avro, [HEADERS.schema]: variableCodec.fingerprintHex },
  };
}
