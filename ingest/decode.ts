// Kafka message value → log lines, or the reason it cannot be read (the stage dead-letters those).
// Any producer may write the topic (DESIGN.md section 2), so nothing about a value is trusted.
import { isUtf8 } from 'node:buffer';

/** Lines longer than this (UTF-8 bytes) are cut and flagged `truncated`. */
export const MAX_LINE_BYTES = 64 * 1024;

export type DecodeReason = 'empty' | 'binary' | 'invalid-utf8';

export type Decoded =
  | { ok: true; lines: string[]; truncated: number[] }
  | { ok: false; reason: DecodeReason; detail: string };

// C0 controls other than tab, LF, CR and ESC (colour codes), and DEL.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g;

function controlBytes(b: Buffer): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if ((c < 0x20 && c !== 9 && c !== 10 && c !== 13 && c !== 0x1b) || c === 0x7f) n++;
  }
  return n;
}

/**
 * The lines of one message value: split on LF (a producer may batch lines into one message), blank
 * lines dropped (a trailing CR stays: the parser trims it), each cut to `maxLineBytes` on a character
 * boundary (their indexes in `truncated`).
 */
export function decodeValue(value: Buffer | null, maxLineBytes = MAX_LINE_BYTES): Decoded {
  if (value === null || value.length === 0) return { ok: false, reason: 'empty', detail: 'no bytes' };
  if (value.indexOf(0) >= 0) {
    return { ok: false, reason: 'binary', detail: `NUL byte in ${value.length} bytes` };
  }
  if (!isUtf8(value)) {
    const ctl = controlBytes(value);
    if (ctl * 8 > value.length)
      return { ok: false, reason: 'binary', detail: `${ctl} of ${value.length} bytes are control bytes` };
    return { ok: false, reason: 'invalid-utf8', detail: `${value.length} bytes are not valid UTF-8` };
  }
  const text = value.toString('utf8');
  CONTROL.lastIndex = 0;
  if (CONTROL.test(text)) {
    const ctl = text.match(CONTROL)?.length ?? 0;
    if (ctl * 8 > text.length)
      return {
        ok: false,
        reason: 'binary',
        detail: `${ctl} of ${text.length} characters are control characters`,
      };
  }
  const pieces = text.indexOf('\n') >= 0 ? text.split('\n') : [text];
  const lines: string[] = [];
  const truncated: number[] = [];
  const big = value.length > maxLineBytes;
  for (const p of pieces) {
    // Trailing CR and blanks stay (the parser trims them): no slice of a single-line value.
    const line = isBlank(p) ? '' : p;
    if (line.length === 0) continue;
    if (big && Buffer.byteLength(line) > maxLineBytes) {
      truncated.push(lines.length);
      lines.push(cutUtf8(line, maxLineBytes));
    } else lines.push(line);
  }
  if (lines.length === 0) return { ok: false, reason: 'empty', detail: `${value.length} blank bytes` };
  return { ok: true, lines, truncated };
}

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
