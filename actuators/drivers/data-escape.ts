// File bytes on a line protocol. Reads answer with the bytes as text where they are printable
// UTF-8, and C-style escapes otherwise (\\ \n \r \t \xHH), so a reply is always exactly one line
// and binary files survive; writes take the same escapes back, so read-then-write round-trips.
// Both run per byte on up to 64 KiB on the event loop, hence the tables and no per-byte objects.

const HEX = '0123456789abcdef';
/** for bytes < 0x80: the text that stands for the byte */
const ASCII: string[] = [];
for (let b = 0; b < 0x80; b++) {
  if (b === 0x5c) ASCII.push('\\\\');
  else if (b === 0x0a) ASCII.push('\\n');
  else if (b === 0x0d) ASCII.push('\\r');
  else if (b === 0x09) ASCII.push('\\t');
  else if (b < 0x20 || b === 0x7f) ASCII.push(`\\x${HEX[b >> 4]}${HEX[b & 15]}`);
  else ASCII.push(String.fromCharCode(b));
}
const HIGH: string[] = [];
for (let b = 0x80; b < 0x100; b++) HIGH.push(`\\x${HEX[b >> 4]}${HEX[b & 15]}`);

const cont = (b: number | undefined) => b !== undefined && (b & 0xc0) === 0x80;

/** The length of a well-formed UTF-8 sequence at i, or 0. */
function utf8Len(buf: Uint8Array, i: number): number {
  const b = buf[i]!;
  const b1 = buf[i + 1];
  if (b >= 0xc2 && b <= 0xdf) return cont(b1) ? 2 : 0;
  const b2 = buf[i + 2];
  if (b >= 0xe0 && b <= 0xef) {
    if (!cont(b1) || !cont(b2)) return 0;
    if (b === 0xe0 && b1! < 0xa0) return 0; // overlong
    if (b === 0xed && b1! >= 0xa0) return 0; // surrogate halves
    return 3;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    if (!cont(b1) || !cont(b2) || !cont(buf[i + 3])) return 0;
    if (b === 0xf0 && b1! < 0x90) return 0;
    if (b === 0xf4 && b1! >= 0x90) return 0;
    return 4;
  }
  return 0;
}

/** C1 controls (U+0080-U+009F) and U+2028/U+2029: valid UTF-8 that breaks lines in some readers. */
function unprintable(buf: Uint8Array, i: number, len: number): boolean {
  if (len === 2) return buf[i] === 0xc2 && buf[i + 1]! <= 0x9f;
  return len === 3 && buf[i] === 0xe2 && buf[i + 1] === 0x80 && (buf[i + 2] === 0xa8 || buf[i + 2] === 0xa9);
}

export function escapeBytes(buf: Uint8Array): string {
  // at most 4 output bytes per input byte (\xHH); valid UTF-8 is copied as is
  const out = Buffer.allocUnsafe(buf.length * 4);
  let n = 0;
  for (let i = 0; i < buf.length; ) {
    const b = buf[i]!;
    if (b >= 0x20 && b < 0x7f && b !== 0x5c) {
      out[n++] = b;
      i++;
      continue;
    }
    if (b >= 0x80) {
      const len = utf8Len(buf, i);
      if (len > 0 && !unprintable(buf, i, len)) {
        for (let k = 0; k < len; k++) out[n++] = buf[i + k]!;
        i += len;
        continue;
      }
    }
    const e = b < 0x80 ? ASCII[b]! : HIGH[b - 0x80]!;
    for (let k = 0; k < e.length; k++) out[n++] = e.charCodeAt(k);
    i++;
  }
  return out.toString('utf8', 0, n);
}

export class EscapeError extends Error {
  override readonly name = 'EscapeError';
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

export function unescapeBytes(s: string): Buffer {
  if (!s.includes('\\')) return Buffer.from(s, 'utf8');
  // escapes only shrink, so the UTF-8 length bounds the result
  const out = Buffer.allocUnsafe(Buffer.byteLength(s, 'utf8'));
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch !== 0x5c) {
      if (ch < 0x80) out[n++] = ch;
      else {
        // one code point (a surrogate pair is two units)
        const w = ch >= 0xd800 && ch <= 0xdbff && i + 1 < s.length ? 2 : 1;
        n += out.write(s.slice(i, i + w), n, 'utf8');
        i += w - 1;
      }
      continue;
    }
    const c = s.charCodeAt(i + 1);
    if (c === 0x5c) out[n++] = 0x5c;
    else if (c === 0x6e) out[n++] = 0x0a;
    else if (c === 0x72) out[n++] = 0x0d;
    else if (c === 0x74) out[n++] = 0x09;
    else if (c === 0x78 && hexVal(s.charCodeAt(i + 2)) >= 0 && hexVal(s.charCodeAt(i + 3)) >= 0) {
      out[n++] = (hexVal(s.charCodeAt(i + 2)) << 4) | hexVal(s.charCodeAt(i + 3));
      i += 2;
    } else {
      throw new EscapeError(
        `bad escape ${JSON.stringify(s.slice(i, i + 4))} at character ${i}; use \\\\ \\n \\r \\t or \\xHH`,
      );
    }
    i++;
  }
  return out.subarray(0, n);
}
