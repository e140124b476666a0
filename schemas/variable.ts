// The analytics-variable contract (docs/design.md §5.3): what may travel as a variable,
// checked the same way at every door — the learners' gate, the feeder, the ring-buffer consumer,
// the variable table, the conf file, the Redis export and the drivers and devices that read the
// values. One definition here; nothing else defines a key pattern, a value limit or a reader.
//
//   host   [A-Za-z0-9_.:-]{1,128}    (the key charset minus '/', which separates host from key)
//   key    [A-Za-z0-9_.:/-]{1,128}
//   value  UTF-8 text of at most 1000 bytes (the original module's BUF_SIZE), one printable line:
//          no C0 or C1 control characters (CR, LF, tab, NUL, DEL, U+0080–U+009F), no lone
//          surrogates (they have no UTF-8). Commas travel, but the conf file cannot hold them
//          (it separates pairs with commas), so learners never produce them.
//   host/key   the topic key and the host-qualified line form; split at the first '/'.
//
// The checks used on hot paths (feeder updates, table writes, the consumer's byte parser) are
// plain loops over a byte table: no regular expression, no allocation.

/** Longest key, in bytes (keys are ASCII). */
export const MAX_KEY_BYTES = 128;
/** Longest host name, in bytes (ASCII). */
export const MAX_HOST_BYTES = 128;
/** Longest value, in UTF-8 bytes: the original module's BUF_SIZE. */
export const MAX_VALUE_BYTES = 1000;
/** The conf file's pair separator: a value holding it cannot be written there. */
export const CONF_SEPARATOR = ',';

export const KEY_RE = /^[A-Za-z0-9_.:/-]{1,128}$/;
export const HOST_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

/** 1 for bytes allowed in keys. */
export const KEY_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-') {
  KEY_BYTE[c.charCodeAt(0)] = 1;
}
/** '/' separates host from key: the one key byte a host may not hold. */
export const SLASH = 0x2f;

/** Why a host, key or value cannot travel; `reason` is the label metrics count it under. */
export interface VariableProblem {
  reason: 'invalid-host' | 'invalid-key' | 'invalid-value' | 'overlong';
  message: string;
}

// C0 controls, DEL and C1 controls: not printable. CR/LF are among them.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// In unicode mode a proper surrogate pair is one code point, so this matches only lone halves.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** The key rule as a plain loop (hot paths); keyProblem explains a failure. */
export function isValidKey(k: string): boolean {
  const n = k.length;
  if (n === 0 || n > MAX_KEY_BYTES) return false;
  for (let i = 0; i < n; i++) {
    const c = k.charCodeAt(i);
    if (c > 0x7f || KEY_BYTE[c] !== 1) return false;
  }
  return true;
}

/** The host rule as a plain loop: the key bytes minus '/'. */
export function isValidHost(h: string): boolean {
  const n = h.length;
  if (n === 0 || n > MAX_HOST_BYTES) return false;
  for (let i = 0; i < n; i++) {
    const c = h.charCodeAt(i);
    if (c > 0x7f || KEY_BYTE[c] !== 1 || c === SLASH) return false;
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

export function keyProblem(k: string): VariableProblem | undefined {
  if (isValidKey(k)) return undefined;
  if (k.length === 0) return { reason: 'invalid-key', message: 'empty key' };
  if (k.length > MAX_KEY_BYTES) {
    return {
      reason: 'invalid-key',
      message: `key is ${k.length} characters, at most ${MAX_KEY_BYTES} allowed`,
    };
  }
  const bad = [...k].find((c) => !/[A-Za-z0-9_.:/-]/.test(c)) ?? '';
  return {
    reason: 'invalid-key',
    message: `key ${JSON.stringify(clip(k))} has ${JSON.stringify(bad)}; keys use only A-Z a-z 0-9 _ . : / -`,
  };
}

export function hostProblem(h: string): VariableProblem | undefined {
  if (isValidHost(h)) return undefined;
  if (h.length === 0) return { reason: 'invalid-host', message: 'empty host name' };
  if (h.length > MAX_HOST_BYTES) {
    return {
      reason: 'invalid-host',
      message: `host name is ${h.length} characters, at most ${MAX_HOST_BYTES} allowed`,
    };
  }
  const bad = [...h].find((c) => !/[A-Za-z0-9_.:-]/.test(c)) ?? '';
  return {
    reason: 'invalid-host',
    message: `host ${JSON.stringify(clip(h))} has ${JSON.stringify(bad)}; host names use only A-Z a-z 0-9 _ . : -`,
  };
}

/**
 * Why a value cannot travel on the wire (feeder, consumer, topic), or undefined when it can. The
 * message reads after the word "value" ("value " + message): callers name the variable.
 */
export function valueProblem(v: string): VariableProblem | undefined {
  if (isValidValue(v)) return undefined;
  const m = CONTROL.exec(v);
  if (m) {
    const code = m[0].charCodeAt(0);
    const what = `${code === 10 || code === 13 ? 'a line break, ' : ''}control character U+${hex4(code)}`;
    return { reason: 'invalid-value', message: `contains ${what}; values are one printable line` };
  }
  // Cheap bound first: UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (v.length * 3 > MAX_VALUE_BYTES) {
    const bytes = Buffer.byteLength(v, 'utf8');
    if (bytes > MAX_VALUE_BYTES) {
      return {
        reason: 'overlong',
        message: `is ${bytes} bytes, longer than the ${MAX_VALUE_BYTES} bytes allowed`,
      };
    }
  }
  if (LONE_SURROGATE.test(v)) {
    return { reason: 'invalid-value', message: 'has a lone surrogate (not valid UTF-8)' };
  }
  // isValidValue and the checks above agree; reaching here would be a bug, so refuse loudly.
  return { reason: 'invalid-value', message: 'refused' };
}

export interface ConfValueProblem {
  reason: VariableProblem['reason'] | 'comma';
  message: string;
}

/**
 * valueProblem plus the conf file's rule, no comma: what the conf file can hold, and so what
 * learners may emit. The message reads after the word "value", as valueProblem's.
 */
export function confValueProblem(v: string): ConfValueProblem | undefined {
  if (v.includes(CONF_SEPARATOR)) {
    return {
      reason: 'comma',
      message: `contains '${CONF_SEPARATOR}' (${JSON.stringify(clip(v))}): the conf file separates pairs with commas, so its reader would split it; write it without commas (e.g. ';' or ' ' between items)`,
    };
  }
  return valueProblem(v);
}

export type HostKey = { ok: true; host: string; key: string } | ({ ok: false } & VariableProblem);

/** Splits `host/key` (the topic key, a host-qualified line's left side) at the first '/'. */
export function parseHostKey(s: string): HostKey {
  const i = s.indexOf('/');
  if (i < 0)
    return { ok: false, reason: 'invalid-key', message: `expected host/key, got ${JSON.stringify(clip(s))}` };
  const host = s.slice(0, i);
  const key = s.slice(i + 1);
  const h = hostProblem(host);
  if (h) return { ok: false, ...h };
  const k = keyProblem(key);
  if (k) return { ok: false, ...k };
  return { ok: true, host, key };
}

/** The `host/key` of a variable: topic key, pin argument, host-qualified line. */
export function joinHostKey(host: string, key: string): string {
  return `${host}/${key}`;
}

// ---- readers: what a value means to a driver, a device or the gate ----
//
// Values are text; these say which texts are numbers and booleans, for everyone. They follow the
// original kernel side (kstrtol, kstrtobool) where it is unambiguous and stay stricter where C
// and JavaScript would disagree:
//   numbers   decimal only: [+-]digits[.digits][e[+-]digits] (also "5." and ".5"), surrounding
//             spaces ignored, finite. No hex, octal or binary prefixes: kstrtol with base 0 reads
//             "010" as 8 and "0x10" as 16 where Number() reads 10 and 16, so the same text would
//             mean two numbers across the kernel boundary; learners write plain decimal anyway.
//             No "Infinity", "NaN", "1_000", empty text.
//   booleans  kstrtobool's spellings as whole words, any case, surrounding spaces ignored:
//             true: 1 y yes t true on      false: 0 n no f false off
//             (the original wrote Python's True/False). kstrtobool looks only at the first one
//             or two characters, so it would take "yellow" as true; we do not.

const DECIMAL = /^ *[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)? *$/;

/** The number a value text means, or undefined (see the rules above). */
export function parseNumber(text: string | undefined): number | undefined {
  if (text === undefined || !DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** The boolean a value text means, or undefined (see the rules above). */
export function parseBool(text: string | undefined): boolean | undefined {
  if (text === undefined || text.length > 16) return undefined;
  switch (trimSpaces(text).toLowerCase()) {
    case '1':
    case 'y':
    case 'yes':
    case 't':
    case 'true':
    case 'on':
      return true;
    case '0':
    case 'n':
    case 'no':
    case 'f':
    case 'false':
    case 'off':
      return false;
    default:
      return undefined;
  }
}

function trimSpaces(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) === 0x20) a++;
  while (b > a && s.charCodeAt(b - 1) === 0x20) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}
