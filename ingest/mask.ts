// Tokenising and masking of log messages for the template miner: variables (numbers, hex, IPs,
// MACs, paths, host names, clock times, written-out dates) become `<*>` inside their token, so
// `uid=0` reads `uid=<*>` and `(10.0.0.1)` reads `(<*>)`; a token longer than MAX_WORD, holding
// an undecodable byte or a control character, or noisy (Scanner.noisy) is a value as a whole.
//
// Hot path: one pass over the message's characters with a character table, no regular
// expressions, no per-token strings for plain words. The masked message (tokens joined by one
// space) is built from slices of the original, and is the original itself when nothing changed.

import { isWeekdayAt, monthAt } from './calendar.ts';

export const WILDCARD = '<*>';

// Character classes (bit flags) for the ASCII range; everything else is "other".
const DIGIT = 1;
const ALPHA = 2;
const HEX = 4;
/** splits a token into units: `uid=0` → `uid`, `=`, `0` */
const DELIM = 8;
/** a cut point for partial wildcards when two tokens are merged: `user=root`/`user=guest` → `user=<*>` */
const CUT = 16;
const HOSTCH = 32;
const SPACE = 64;
const SLASH = 128;
/** '.' only; HOSTCH also has it */
const DOT = 256;
const COLON = 512;
/** the sentence punctuation a unit may end with: . : ! ? */
const TRAIL = 1024;
/** an undecodable byte (U+FFFD) or a control character: a token holding one is data, not a word */
const JUNK = 2048;
const LOWER = 4096;
const UPPER = 8192;
/** the symbols words hardly hold: !#$%&*+;<>?@\^{|}~ (not - _ . / : = , ( ) [ ], nor quotes) */
const RARE = 16384;
/** a token holding all three may be noise (noisy() decides) */
const MIXED = LOWER | UPPER | RARE;

/**
 * A token longer than this is a value (a hash, a blob, a dump), never a template word: the
 * longest word of Loghub's Linux and BGL sets is 63 characters, and high-entropy input (random
 * bytes) would otherwise make every line a template of its own.
 */
export const MAX_WORD = 64;

// Indexed by UTF-16 code unit (64 KiB): one load per character, no range branch.
const CLASS = new Uint16Array(65536);
for (let c = 48; c <= 57; c++) CLASS[c] = DIGIT | HEX | HOSTCH;
for (let c = 65; c <= 90; c++) CLASS[c] = ALPHA | UPPER | HOSTCH;
for (let c = 97; c <= 122; c++) CLASS[c] = ALPHA | LOWER | HOSTCH;
for (const c of 'abcdefABCDEF') CLASS[c.charCodeAt(0)]! |= HEX;
for (const c of '-_.') CLASS[c.charCodeAt(0)]! |= HOSTCH;
for (const c of `=,;()[]{}<>'"#|@`) CLASS[c.charCodeAt(0)]! |= DELIM | CUT;
for (const c of ':/.') CLASS[c.charCodeAt(0)]! |= CUT;
CLASS[32] = SPACE;
CLASS[47]! |= SLASH;
CLASS[46]! |= DOT;
CLASS[58]! |= COLON;
for (const c of '.:!?') CLASS[c.charCodeAt(0)]! |= TRAIL;
CLASS[9] = SPACE;
for (let c = 0; c < 32; c++) if (c !== 9) CLASS[c] = JUNK;
CLASS[127] = JUNK;
CLASS[0xfffd] = JUNK;
/** each rare symbol's bit, to tell a token holding two different ones */
const RARE_BIT = new Int32Array(128);
{
  let bit = 1;
  for (const c of '!#$%&*+;<>?@\\^{|}~') {
    CLASS[c.charCodeAt(0)]! |= RARE;
    RARE_BIT[c.charCodeAt(0)] = bit;
    bit <<= 1;
  }
}

const cls = (code: number): number => CLASS[code]!;

/** True where a merged token may be cut into a literal prefix/suffix around a wildcard. */
export function isCut(code: number): boolean {
  return (cls(code) & CUT) !== 0;
}

const WILD0 = WILDCARD.charCodeAt(0);
const WILD1 = WILDCARD.charCodeAt(1);
const WILD2 = WILDCARD.charCodeAt(2);
const utf16 = new TextDecoder('utf-16le');

/**
 * Scans one message at a time: token bounds, the bounds of the masked-out values, and the masked
 * message (tokens joined by one space) in a reusable buffer with its FNV-1a hash, so that a message
 * whose masked form was seen before costs no allocation. Reused between calls: copy what you keep.
 */
export class Scanner {
  message = '';
  /** end of the scanned range of message */
  end = 0;
  /** tokens */
  count = 0;
  /** token i is message.slice(starts[i], ends[i]) */
  starts = new Int32Array(64);
  ends = new Int32Array(64);
  /** token i owns values vstart[i] … vstart[i+1]-1 */
  vstart = new Int32Array(65);
  /** value j is message.slice(va[j], vb[j]) */
  va = new Int32Array(64);
  vb = new Int32Array(64);
  vcount = 0;
  /** the masked message, UTF-16 code units */
  buf = new Uint16Array(256);
  len = 0;
  hash = 0;

  token(i: number): string {
    return this.message.slice(this.starts[i]!, this.ends[i]!);
  }

  value(j: number): string {
    return this.message.slice(this.va[j]!, this.vb[j]!);
  }

  /** The masked message as a string (allocates). */
  key(): string {
    return this.len === 0 ? '' : utf16.decode(this.buf.subarray(0, this.len));
  }

  /** A copy of the masked message's code units, for keyEquals(). */
  keyUnits(): Uint16Array {
    return this.buf.slice(0, this.len);
  }

  /** True when `units` (from keyUnits()) is the masked message. */
  keyEquals(units: Uint16Array): boolean {
    const n = this.len;
    if (units.length !== n) return false;
    const buf = this.buf;
    for (let i = 0; i < n; i++) if (buf[i] !== units[i]) return false;
    return true;
  }

  /** Scans message[start, end) (the miner reads a message inside its line: no slice to create). */
  scan(message: string, start = 0, end = message.length): this {
    this.message = message;
    this.end = end;
    this.count = 0;
    this.vcount = 0;
    this.len = 0;
    this.hash = 0x811c9dc5;
    // room for the message plus wildcards longer than what they replace
    if (this.buf.length < (end - start) * 2 + 16) this.buf = new Uint16Array((end - start) * 2 + 16);
    const n = end;
    const buf = this.buf;
    let len = 0;
    let h = 0x811c9dc5;
    let i = this.skipSpace(start);
    while (i < n) {
      const a = i;
      const len0 = len;
      const h0 = h;
      // One pass to the token's end, copying it into the key and collecting its character
      // classes; tokens that may hold a variable are then rewound and masked.
      let acc = 0;
      while (i < n) {
        const c = message.charCodeAt(i);
        const k = CLASS[c]!;
        if (k & SPACE) break;
        acc |= k;
        buf[len++] = c;
        h = Math.imul(h ^ c, 16777619);
        i++;
      }
      const b = i;
      const t = this.count;
      if (t === this.starts.length) this.growTokens();
      this.starts[t] = a;
      this.ends[t] = b;
      this.vstart[t] = this.vcount;
      this.count = t + 1;
      if (acc & JUNK || b - a > MAX_WORD || ((acc & MIXED) === MIXED && this.noisy(a, b))) {
        this.len = len0;
        this.hash = h0;
        this.wild(a, b);
        len = this.len;
        h = this.hash;
      } else if (acc & (DIGIT | SLASH | DOT)) {
        if (acc & (DIGIT | SLASH) || this.dots(a, b) >= 2) {
          this.len = len0;
          this.hash = h0;
          if (acc & DELIM) this.maskToken(a, b);
          else this.maskUnitOf(a, b, acc);
          len = this.len;
          h = this.hash;
        }
      } else if (b - a === 3 && (this.isMonthDay(a, b) || this.isWeekdayDate(a, b))) {
        this.len = len0;
        this.hash = h0;
        this.wild(a, b);
        len = this.len;
        h = this.hash;
      }
      i = this.skipSpace(b);
      if (i < n) {
        buf[len++] = 32;
        h = Math.imul(h ^ 32, 16777619);
      }
    }
    this.len = len;
    this.hash = h;
    this.vstart[this.count] = this.vcount;
    return this;
  }

  /**
   * A token of lower and upper case letters and two different rare symbols that switches
   * character class (lower, upper, digit, other) six times or more is noise (random text, a key,
   * a mangled blob), a value as a whole: masked unit by unit it would give every line a masked
   * form of its own. With the long tokens this takes most tokens of random printable ASCII (all
   * the tokens of about 70% of its lines; bench ingest) and no token of kern.log, Loghub
   * Linux/BGL/Thunderbird, the ufw samples, the demo stream or the syslog conformance vectors
   * whose masked form it would change: quotes are not rare symbols (`'Hi16_ZMM'` stays `'<*>'`),
   * one separator repeated is a structure (`[error|xen3|15|Guest`, `eventID="1011"][Priority@3`),
   * e-mail addresses in lower case stay words. Only tokens holding both cases and a rare symbol
   * pay this second pass.
   */
  private noisy(a: number, b: number): boolean {
    const m = this.message;
    let switches = 0;
    let prev = -1;
    let rare = 0;
    for (let i = a; i < b; i++) {
      const c = m.charCodeAt(i);
      const k = CLASS[c]!;
      const kind = k & LOWER ? 0 : k & UPPER ? 1 : k & DIGIT ? 2 : 3;
      if (kind !== prev) {
        if (prev >= 0) switches++;
        prev = kind;
      }
      if (c < 128) rare |= RARE_BIT[c]!;
    }
    return switches >= 6 && (rare & (rare - 1)) !== 0;
  }

  private growTokens(): void {
    const n = this.starts.length * 2;
    const s = new Int32Array(n);
    s.set(this.starts);
    this.starts = s;
    const e = new Int32Array(n);
    e.set(this.ends);
    this.ends = e;
    const v = new Int32Array(n + 1);
    v.set(this.vstart);
    this.vstart = v;
  }

  private put(c: number): void {
    this.buf[this.len++] = c;
    this.hash = Math.imul(this.hash ^ c, 16777619);
  }

  private copy(a: number, b: number): void {
    const m = this.message;
    const buf = this.buf;
    let len = this.len;
    let h = this.hash;
    for (let i = a; i < b; i++) {
      const c = m.charCodeAt(i);
      buf[len++] = c;
      h = Math.imul(h ^ c, 16777619);
    }
    this.len = len;
    this.hash = h;
  }

  /** Replaces message[a,b) by the wildcard and records the value. */
  private wild(a: number, b: number): void {
    this.put(WILD0);
    this.put(WILD1);
    this.put(WILD2);
    const j = this.vcount;
    if (j === this.va.length) {
      const va = new Int32Array(j * 2);
      va.set(this.va);
      this.va = va;
      const vb = new Int32Array(j * 2);
      vb.set(this.vb);
      this.vb = vb;
    }
    this.va[j] = a;
    this.vb[j] = b;
    this.vcount = j + 1;
  }

  private skipSpace(i: number): number {
    const m = this.message;
    const n = this.end;
    while (i < n && CLASS[m.charCodeAt(i)]! & SPACE) i++;
    return i;
  }

  private tokenEnd(i: number): number {
    const m = this.message;
    const n = this.end;
    while (i < n && !(CLASS[m.charCodeAt(i)]! & SPACE)) i++;
    return i;
  }

  private isDayNumber(a: number, b: number): boolean {
    const m = this.message;
    if (b > a && m.charCodeAt(b - 1) === 44) b--; // "Jun 8, 2024"
    const c0 = m.charCodeAt(a);
    if (b - a === 1) return c0 >= 49 && c0 <= 57;
    if (b - a === 2) {
      const c1 = m.charCodeAt(a + 1);
      return c0 >= 48 && c0 <= 51 && c1 >= 48 && c1 <= 57;
    }
    return false;
  }

  /** A month name followed by a day number: `Jun 22`. */
  private isMonthDay(a: number, b: number): boolean {
    if (b - a !== 3 || monthAt(this.message, a) < 0) return false;
    const c = this.skipSpace(b);
    return c < this.end && this.isDayNumber(c, this.tokenEnd(c));
  }

  /** A weekday name followed by a month and a day: `Wed Jun 22`. */
  private isWeekdayDate(a: number, b: number): boolean {
    if (!isWeekdayAt(this.message, a)) return false;
    const c = this.skipSpace(b);
    return c < this.end && this.isMonthDay(c, this.tokenEnd(c));
  }

  private dots(a: number, b: number): number {
    let d = 0;
    for (let i = a; i < b; i++) if (this.message.charCodeAt(i) === 46) d++;
    return d;
  }

  /**
   * A unit whose character classes (`acc`) are known: plain words are copied, numbers, versions,
   * IPv4 addresses and dotted host names masked at once; paths and colon/slash forms go on to
   * maskUnit. (Same result as maskUnit, fewer passes for the common cases.)
   */
  private maskUnitOf(a: number, b: number, acc: number): void {
    if (!(acc & (DIGIT | SLASH | COLON | DOT))) {
      this.copy(a, b);
      return;
    }
    if (acc & (SLASH | COLON)) {
      this.maskUnit(a, b);
      return;
    }
    const m = this.message;
    let e = b;
    if (acc & TRAIL) while (e > a && CLASS[m.charCodeAt(e - 1)]! & TRAIL) e--;
    if (e === a) this.copy(a, b);
    else {
      if (acc & DIGIT) this.wild(a, e);
      else this.maskSub(a, e);
      if (e < b) this.copy(e, b);
    }
  }

  /** Masks the units of one token: runs between delimiters such as `=`, `(`, `,`. */
  private maskToken(a: number, b: number): void {
    const m = this.message;
    let i = a;
    while (i < b) {
      const c = m.charCodeAt(i);
      if (CLASS[c]! & DELIM) {
        this.put(c);
        i++;
        continue;
      }
      let j = i;
      let acc = 0;
      while (j < b) {
        const k = CLASS[m.charCodeAt(j)]!;
        if (k & DELIM) break;
        acc |= k;
        j++;
      }
      this.maskUnitOf(i, j, acc);
      i = j;
    }
  }

  /** A unit, e.g. `0000:00:1f.0`, `/proc/kmsg`, `host8.example.net`, `batch:1`. */
  private maskUnit(a: number, b: number): void {
    const m = this.message;
    // Sentence punctuation at the end stays literal: `ffff3000.` → `<*>.`, `entries:` → `entries:`.
    let e = b;
    while (e > a) {
      const c = m.charCodeAt(e - 1);
      if (c === 46 || c === 58 || c === 33 || c === 63) e--;
      else break;
    }
    if (e === a) {
      this.copy(a, b);
      return;
    }
    const first = m.charCodeAt(a);
    // Absolute and home/relative-dot paths, whole: `/udev/vcs2`, `~/x`, `./run.sh`.
    if (
      (first === 47 && e - a > 1) ||
      ((first === 126 || first === 46) && e - a > 2 && m.charCodeAt(a + 1) === 47)
    ) {
      this.wild(a, e);
      this.copy(e, b);
      return;
    }
    let colons = 0;
    let slashes = 0;
    let digit = false;
    let hexColonDot = true;
    for (let i = a; i < e; i++) {
      const c = m.charCodeAt(i);
      const k = cls(c);
      if (k & DIGIT) digit = true;
      if (c === 58) colons++;
      else if (c === 47) slashes++;
      else if (!(k & HEX) && c !== 46) hexColonDot = false;
    }
    if (colons >= 2 && digit && hexColonDot) {
      // MAC, IPv6, PCI address, clock time: one variable, not a run of `<*>:<*>`.
      this.wild(a, e);
    } else if (colons > 0 || slashes > 0) {
      // `batch:1` → `batch:<*>`, `PS/2` → `PS/<*>`, `8086/2410` → `<*>/<*>`
      let i = a;
      for (;;) {
        let j = i;
        while (j < e && m.charCodeAt(j) !== 58 && m.charCodeAt(j) !== 47) j++;
        this.maskSub(i, j);
        if (j >= e) break;
        this.put(m.charCodeAt(j));
        i = j + 1;
      }
    } else this.maskSub(a, e);
    this.copy(e, b);
  }

  /** The smallest piece: any digit makes it a variable; so do host names (two dots or more). */
  private maskSub(a: number, e: number): void {
    if (e <= a) return;
    const m = this.message;
    let dots = 0;
    let host = true;
    for (let i = a; i < e; i++) {
      const c = m.charCodeAt(i);
      const k = cls(c);
      if (k & DIGIT) {
        this.wild(a, e);
        return;
      }
      if (c === 46) {
        if (i === a || i === e - 1 || m.charCodeAt(i - 1) === 46) host = false;
        dots++;
      }
      if (!(k & HOSTCH)) host = false;
    }
    if (dots >= 2 && host) this.wild(a, e);
    else this.copy(a, e);
  }
}

export interface Masked {
  /** the tokens as written */
  tokens: string[];
  /** the tokens with variables replaced by `<*>` */
  masked: string[];
  /** masked-out values of each token */
  values: string[][];
}

/** Tokenises and masks a message (the convenient form of Scanner, off the hot path). */
export function maskMessage(message: string): Masked {
  const s = new Scanner().scan(message);
  const tokens: string[] = [];
  const values: string[][] = [];
  for (let i = 0; i < s.count; i++) {
    tokens.push(s.token(i));
    const v: string[] = [];
    for (let j = s.vstart[i]!; j < s.vstart[i + 1]!; j++) v.push(s.value(j));
    values.push(v);
  }
  return { tokens, masked: s.count === 0 ? [] : s.key().split(' '), values };
}
