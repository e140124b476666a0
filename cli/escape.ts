// Text from the outside (log lines, dead letters, variable values) made safe for a terminal: control
// bytes in `cat -v` notation (^@ for NUL, ^[ for ESC, ^? for DEL, M-… for the C1 controls and for
// bytes that are not UTF-8), so no record can move the cursor, clear the screen, retitle the window
// or split itself over several lines. Printable UTF-8 stays as it is (cat -v would show every
// non-ASCII byte as M-…; a kernel log line or a host name in another script stays readable here).
// Tab stays, as with cat -v. Bidirectional overrides are shown as <U+202E> (they reorder what is
// shown after them).

function caret(b: number): string {
  if (b === 0x7f) return '^?';
  return `^${String.fromCharCode(b + 0x40)}`;
}

/** cat -v's spelling of one byte that is not printable ASCII. */
function catV(b: number): string {
  if (b >= 0x80) {
    const low = b & 0x7f;
    return `M-${low < 0x20 || low === 0x7f ? caret(low) : String.fromCharCode(low)}`;
  }
  return caret(b);
}

const BIDI = new Set([0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]);

/** The length of the valid UTF-8 sequence at `i` and its code point, or undefined. */
function utf8At(buf: Uint8Array, i: number): [number, number] | undefined {
  const b0 = buf[i]!;
  let n: number;
  let cp: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
    cp = b0 & 0x1f;
    min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    cp = b0 & 0x0f;
    min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else return undefined;
  if (i + n > buf.length) return undefined;
  for (let k = 1; k < n; k++) {
    const b = buf[i + k]!;
    if ((b & 0xc0) !== 0x80) return undefined;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
  return [n, cp];
}

/** `input` with its control bytes spelled out (see above); a string is taken as its UTF-8. */
export function escapeControls(input: Uint8Array | string): string {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  let out = '';
  let plainFrom = 0;
  const flush = (to: number) => {
    if (to > plainFrom)
      out += Buffer.from(buf.buffer, buf.byteOffset + plainFrom, to - plainFrom).toString('utf8');
  };
  let i = 0;
  while (i < buf.length) {
    const b = buf[i]!;
    if (b < 0x80) {
      if ((b < 0x20 && b !== 0x09) || b === 0x7f) {
        flush(i);
        out += catV(b);
        plainFrom = i + 1;
      }
      i++;
      continue;
    }
    const seq = utf8At(buf, i);
    if (!seq) {
      flush(i);
      out += catV(b);
      i++;
      plainFrom = i;
      continue;
    }
    const [n, cp] = seq;
    if (cp <= 0x9f || BIDI.has(cp)) {
      flush(i);
      // a C1 control as cat -v shows its byte value; a bidi override by name
      out += cp <= 0x9f ? catV(cp) : `<U+${cp.toString(16).toUpperCase()}>`;
      plainFrom = i + n;
    }
    i += n;
  }
  flush(buf.length);
  return out;
}
