// Kafka message value → log lines, or the reason it cannot be read (the stage dead-letters those).
// Any producer may write the topic (docs/design.md §5.2), so nothing about a value is trusted.
import { isUtf8 } from 'node:buffer';

/** Lines longer than this (UTF-8 bytes) are cut and flagged `truncated`. */
export const MAX_LINE_BYTES = 64 * 1024;

export type DecodeReason = 'empty' | 'binary' | 'invalid-utf8';

export type Decoded =
  | { ok: true; lines: string[]; truncated: readonly number[] }
  | { ok: false; reason: DecodeReason; detail: string };

export interface Rejection {
  reason: DecodeReason;
  detail: string;
}

// C0 controls other than tab, LF, CR and ESC (colour codes), and DEL. In valid UTF-8 these bytes
// never occur inside a multi-byte character; in bytes that are not UTF-8 they are counted in the
// bytes read as Latin-1 (one character per byte, converted natively).
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the same, to count them
const CONTROLS = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g;

/**
 * Why `value` cannot be read as log text, or null when it can: the checks of `decodeValue` before
 * it splits lines. One rule for every route (the consumer stage, `publish-logs`, `virgo learn
 * --input`), so a line is dead-lettered for the same reason whichever way it came in.
 */
export function rejection(value: Buffer | null): Rejection | null {
  const bad = check(value);
  checkedText = '';
  return bad;
}

/** the text the last `check` read when it rejected nothing (module scratch: no result object per
 * message; cleared by whoever takes it, so no value's text stays referenced) */
let checkedText = '';

/**
 * `rejection`, and the text when it is none. Valid UTF-8 (the common case) is decoded once and
 * the control characters are looked for in that text: they are ASCII, so in valid UTF-8 each is
 * one byte and one character, and no Latin-1 copy of the value is needed.
 */
function check(value: Buffer | null): Rejection | null {
  checkedText = '';
  if (value === null || value.length === 0) return { reason: 'empty', detail: 'no bytes' };
  if (isUtf8(value)) {
    const text = value.toString('utf8');
    checkedText = text;
    // NUL is a control character: a text without any has none, and no separate scan of the bytes
    if (!CONTROL.test(text)) return null;
    if (text.indexOf('\0') >= 0) return { reason: 'binary', detail: `NUL byte in ${value.length} bytes` };
    const ctl = text.match(CONTROLS)?.length ?? 0;
    // the share of characters as JavaScript counts them (UTF-16 units), as the text is read later
    if (ctl * 8 > text.length)
      return { reason: 'binary', detail: `${ctl} of ${text.length} characters are control characters` };
    return null;
  }
  if (value.indexOf(0) >= 0) return { reason: 'binary', detail: `NUL byte in ${value.length} bytes` };
  const bytes = value.toString('latin1');
  const ctl = bytes.match(CONTROLS)?.length ?? 0;
  if (ctl * 8 > value.length)
    return { reason: 'binary', detail: `${ctl} of ${value.length} bytes are control bytes` };
  return { reason: 'invalid-utf8', detail: `${value.length} bytes are not valid UTF-8` };
}

/** `rejection` for one line (no LF inside): also a line of blanks only cannot be read. */
export function lineRejection(line: Buffer): Rejection | null {
  const r = rejection(line);
  if (r) return r;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c !== 13 && c !== 32 && c !== 9) return null;
  }
  return { reason: 'empty', detail: `${line.length} blank bytes` };
}

/**
 * The lines of one message value: split on LF (a producer may batch lines into one message), blank
 * lines dropped (a trailing CR stays: the parser trims it), each cut to `maxLineBytes` on a character
 * boundary (their indexes in `truncated`).
 */
export function decodeValue(value: Buffer | null, maxLineBytes = MAX_LINE_BYTES): Decoded {
  const bad = check(value);
  const text = checkedText;
  checkedText = '';
  if (bad) return { ok: false, ...bad };
  // one line that needs no cut (a message per line, as publish-logs writes): no split, no copies
  if (value!.length <= maxLineBytes && text.indexOf('\n') < 0) {
    if (isBlank(text)) return { ok: false, reason: 'empty', detail: `${value!.length} blank bytes` };
    return { ok: true, lines: [text], truncated: NOT_TRUNCATED };
  }
  const pieces = text.indexOf('\n') >= 0 ? text.split('\n') : [text];
  const lines: string[] = [];
  const truncated: number[] = [];
  const big = value!.length > maxLineBytes;
  for (const p of pieces) {
    // Trailing CR and blanks stay (the parser trims them): no slice of a single-line value.
    const line = isBlank(p) ? '' : p;
    if (line.length === 0) continue;
    if (big && Buffer.byteLength(line) > maxLineBytes) {
      truncated.push(lines.length);
      lines.push(cutUtf8(line, maxLineBytes));
    } else lines.push(line);
  }
  if (lines.length === 0) return { ok: false, reason: 'empty', detail: `${value!.length} blank bytes` };
  return { ok: true, lines, truncated };
}

/** `truncated` of a value with no line cut: one shared empty list */
const NOT_TRUNCATED: readonly number[] = Object.freeze([]);

function isBlank(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 13 && c !== 32 && c !== 9) return false;
  }
  return true;
}

/** The first `max` bytes of `s` in UTF-8, never splitting a character. */
export function cutUtf8(s: string, max: number): string {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return s;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end).toString('utf8');
}
