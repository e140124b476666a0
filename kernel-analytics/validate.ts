// The analytics-variable rules of docs/design.md §5.3, shared by the feeder, the consumer, the
// table and the conf file so that every door into the system refuses the same things.
import { isUtf8 } from 'node:buffer';

/** Longest key, in bytes (keys are ASCII). */
export const MAX_KEY_BYTES = 128;
/** Longest value, in UTF-8 bytes: the original module's BUF_SIZE. */
export const MAX_VALUE_BYTES = 1000;
/** Longest `key=value` line, without its newline (an optional CR before it is allowed). */
export const MAX_LINE_BYTES = MAX_KEY_BYTES + 1 + MAX_VALUE_BYTES;
/** What the original kernel client sends first; feeders accept and ignore it. */
export const STREAMING_START = 'KERNEL_ANALYTICS_STREAMING_START';
/** How many variables the original exported (MAX_ANALYTICS_CONF). */
export const MAX_ANALYTICS_CONF = 500;

export const KEY_PATTERN = /^[A-Za-z0-9_.:/-]{1,128}$/;
// C0 controls, DEL and C1 controls: not printable. CR/LF are among them.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// In unicode mode a proper surrogate pair is one code point, so this matches only lone halves,
// which have no UTF-8 encoding.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Why a line, key or value was refused; used as the metric label and in counters. */
export type KvRejectReason =
  | 'binary'
  | 'overlong'
  | 'missing-equals'
  | 'invalid-key'
  | 'invalid-value'
  | 'partial';

export const KV_REJECT_REASONS: readonly KvRejectReason[] = [
  'binary',
  'overlong',
  'missing-equals',
  'invalid-key',
  'invalid-value',
  'partial',
];

export type Validation = { ok: true } | { ok: false; reason: KvRejectReason; message: string };

const OK: Validation = { ok: true };

/** 1 for bytes allowed in keys. */
export const KEY_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-') {
  KEY_BYTE[c.charCodeAt(0)] = 1;
}

/** The key rule as a plain loop: what hot paths (feeder, table) call; validateKey explains failures. */
export function isValidKey(k: string): boolean {
  const n = k.length;
  if (n === 0 || n > MAX_KEY_BYTES) return false;
  for (let i = 0; i < n; i++) {
    const c = k.charCodeAt(i);
    if (c > 0x7f || KEY_BYTE[c] !== 1) return false;
  }
  return true;
}

/** The value rule as one pass: no controls, no lone surrogates, at most MAX_VALUE_BYTES in UTF-8. */
export function isValidValue(v: string): boolean {
  const n = v.length;
  if (n > MAX_VALUE_BYTES) return false;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20 || c === 0x7f) return false;
      bytes++;
    } else if (c <= 0x9f) return false;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdfff) {
      const d = v.charCodeAt(i + 1);
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) return false;
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes <= MAX_VALUE_BYTES;
}

export function validateKey(k: string): Validation {
  if (isValidKey(k)) return OK;
  if (k.length === 0) return { ok: false, reason: 'invalid-key', message: 'empty key' };
  if (k.length > MAX_KEY_BYTES) {
    return {
      ok: false,
      reason: 'invalid-key',
      message: `key is ${k.length} characters, at most ${MAX_KEY_BYTES} allowed`,
    };
  }
  const bad = [...k].find((c) => !/[A-Za-z0-9_.:/-]/.test(c)) ?? '';
  return {
    ok: false,
    reason: 'invalid-key',
    message: `key ${JSON.stringify(clip(k))} has ${JSON.stringify(bad)}; keys use only A-Z a-z 0-9 _ . : / -`,
  };
}

export function validateValue(v: string): Validation {
  if (isValidValue(v)) return OK;
  const m = CONTROL.exec(v);
  if (m) {
    const code = m[0].charCodeAt(0);
    const what = code === 10 || code === 13 ? 'a line break' : `control character U+${hex4(code)}`;
    return {
      ok: false,
      reason: 'invalid-value',
      message: `value contains ${what}; values are one printable line`,
    };
  }
  // Cheap bound first: UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (v.length * 3 > MAX_VALUE_BYTES) {
    const bytes = Buffer.byteLength(v, 'utf8');
    if (bytes > MAX_VALUE_BYTES) {
      return {
        ok: false,
        reason: 'overlong',
        message: `value is ${bytes} bytes, at most ${MAX_VALUE_BYTES} allowed`,
      };
    }
  }
  if (LONE_SURROGATE.test(v)) {
    return { ok: false, reason: 'invalid-value', message: 'value has a lone surrogate (not valid UTF-8)' };
  }
  // isValidValue and the checks above agree; reaching here would be a bug, so refuse loudly.
  return { ok: false, reason: 'invalid-value', message: 'value refused' };
}

export type KvLine =
  | { ok: true; key: string; value: string }
  | { ok: false; reason: KvRejectReason; message: string };

/**
 * One `key=value` line (without its newline; a trailing CR is dropped). Splits at the first `=`,
 * so values may contain `=`. Nothing is trimmed: `k = v` has an invalid key.
 */
export function parseKvLine(line: string): KvLine {
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (text.includes('\0')) return { ok: false, reason: 'binary', message: 'line contains NUL' };
  if (LONE_SURROGATE.test(text))
    return { ok: false, reason: 'binary', message: 'line is not valid UTF-8 text' };
  if (text.length > MAX_LINE_BYTES / 3 && Buffer.byteLength(text, 'utf8') > MAX_LINE_BYTES) {
    return { ok: false, reason: 'overlong', message: `line longer than ${MAX_LINE_BYTES} bytes` };
  }
  const eq = text.indexOf('=');
  if (eq < 0) {
    return {
      ok: false,
      reason: 'missing-equals',
      message: `${JSON.stringify(clip(text))} has no '='; expected key=value`,
    };
  }
  const key = text.slice(0, eq);
  const value = text.slice(eq + 1);
  const k = validateKey(key);
  if (!k.ok) return k;
  const v = validateValue(value);
  if (!v.ok) return { ok: false, reason: v.reason, message: `${key}: ${v.message}` };
  return { ok: true, key, value };
}

// ---- byte-level checks for the consumer's hot path (no string is built for a rejected line) ----

/** Why the bytes of a whole line [s, e) fail; used once the fast path has seen something odd. */
export function classifyLineBytes(
  buf: Buffer,
  s: number,
  e: number,
): { reason: KvRejectReason; message: string } {
  const line = buf.subarray(s, e);
  if (line.includes(0) || !isUtf8(line)) {
    return { reason: 'binary', message: 'binary data (NUL or invalid UTF-8) is not a key=value line' };
  }
  const r = parseKvLine(line.toString('utf8'));
  if (!r.ok) return r;
  // The fast path and parseKvLine agree on everything else; reaching here is a bug, say so.
  return { reason: 'invalid-value', message: 'line refused by the byte check only' };
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}
