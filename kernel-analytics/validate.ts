// The `key=value` line of the feeder wire (docs/design.md §5.3). What a key, a host or a value may
// be is the variable contract (../schemas/variable.ts); this file adds what belongs to the line:
// its length, its '=' and why a line was refused.
import { isUtf8 } from 'node:buffer';
import {
  keyProblem,
  MAX_HOST_BYTES,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  parseHostKey,
  type VariableProblem,
  valueProblem,
} from '../schemas/variable.ts';

/** Longest `key=value` line, without its newline (an optional CR before it is allowed). */
export const MAX_LINE_BYTES = MAX_KEY_BYTES + 1 + MAX_VALUE_BYTES;
/** Longest `host/key=value` line (the feeder's every-host view), without its newline. */
export const MAX_QUALIFIED_LINE_BYTES = MAX_HOST_BYTES + 1 + MAX_LINE_BYTES;
/** What the original kernel client sends first; feeders accept and ignore it. */
export const STREAMING_START = 'KERNEL_ANALYTICS_STREAMING_START';
/** How many variables the original exported (MAX_ANALYTICS_CONF). */
export const MAX_ANALYTICS_CONF = 500;

// In unicode mode a proper surrogate pair is one code point, so this matches only lone halves,
// which have no UTF-8 encoding.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Why a line was refused; used as the metric label and in counters. */
export type KvRejectReason = VariableProblem['reason'] | 'binary' | 'missing-equals' | 'partial';

export const KV_REJECT_REASONS: readonly KvRejectReason[] = [
  'binary',
  'overlong',
  'missing-equals',
  'invalid-host',
  'invalid-key',
  'invalid-value',
  'partial',
];

export type KvLine =
  | { ok: true; key: string; value: string /** set when a qualified line named it */; host?: string }
  | { ok: false; reason: KvRejectReason; message: string };

/**
 * One `key=value` line (without its newline; a trailing CR is dropped). Splits at the first `=`,
 * so values may contain `=`. Nothing is trimmed: `k = v` has an invalid key. `qualified`: the line
 * may be `host/key=value` (the feeder's every-host view); the left side is split at its first '/'
 * and a left side without '/' is a bare key.
 */
export function parseKvLine(line: string, qualified = false): KvLine {
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (text.includes('\0')) return { ok: false, reason: 'binary', message: 'line contains NUL' };
  if (LONE_SURROGATE.test(text))
    return { ok: false, reason: 'binary', message: 'line is not valid UTF-8 text' };
  const max = qualified ? MAX_QUALIFIED_LINE_BYTES : MAX_LINE_BYTES;
  if (text.length > max / 3 && Buffer.byteLength(text, 'utf8') > max) {
    return { ok: false, reason: 'overlong', message: `line longer than ${max} bytes` };
  }
  const eq = text.indexOf('=');
  if (eq < 0) {
    return {
      ok: false,
      reason: 'missing-equals',
      message: `${JSON.stringify(clip(text))} has no '='; expected key=value`,
    };
  }
  const left = text.slice(0, eq);
  const value = text.slice(eq + 1);
  let host: string | undefined;
  let key = left;
  if (qualified && left.includes('/')) {
    const hk = parseHostKey(left);
    if (!hk.ok) return hk;
    host = hk.host;
    key = hk.key;
  } else {
    const k = keyProblem(key);
    if (k) return { ok: false, ...k };
  }
  const v = valueProblem(value);
  if (v) return { ok: false, reason: v.reason, message: `${left}: value ${v.message}` };
  return host === undefined ? { ok: true, key, value } : { ok: true, host, key, value };
}

// ---- byte-level checks for the consumer's hot path (no string is built for a rejected line) ----

/** Why the bytes of a whole line [s, e) fail; used once the fast path has seen something odd. */
export function classifyLineBytes(
  buf: Buffer,
  s: number,
  e: number,
  qualified = false,
): { reason: KvRejectReason; message: string } {
  const line = buf.subarray(s, e);
  if (line.includes(0) || !isUtf8(line)) {
    return { reason: 'binary', message: 'binary data (NUL or invalid UTF-8) is not a key=value line' };
  }
  const r = parseKvLine(line.toString('utf8'), qualified);
  if (!r.ok) return r;
  // The fast path and parseKvLine agree on everything else; reaching here is a bug, say so.
  return { reason: 'invalid-value', message: 'line refused by the byte check only' };
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
