// Line parser: syslog headers (RFC 3164, RFC 5424, ISO-8601 stamps), the kernel's `[ 1234.567890]`
// stamp, dmesg -T / -x / -r, /dev/kmsg records, `journalctl -o json` objects, the Loghub HPC layouts
// (BGL, Thunderbird: hpc.ts); then the kernel family of the message.
//
// The rules, and where established parsers disagree which one we follow, are ingest/README.md's
// "Header rules"; test/ingest/conformance.test.ts runs the vectors collected from those parsers'
// own test suites. Two principles decide the doubtful cases: a header field is taken only when the
// line's shape says what it is (a stamp must be a real date; RFC 5424 must be RFC 5424 to the
// letter, else the line is bare), and a line we cannot read is kept whole as a bare message, never
// cut into wrong fields.
//
// Hand-written scanning on the hot path (one parse per line at stream speed), no per-line
// allocation but the ParsedLine and its strings: scanners report through module-level scratch
// variables (the parser is synchronous and never re-entered). The family parsers in families.ts
// only run on lines that a cheap substring test already picked.
//
// Stamps without a zone (RFC 3164's `Jan  2 03:04:05`, `2024-01-02 03:04:05`) are read as UTC,
// so every consumer reads the same instant whatever its own time zone.
import { codeAt, daysInMonth, digits, isDigit, isWeekdayAt, monthAt, monthAtAnyCase } from './calendar.ts';
import { classify } from './families.ts';
import { type HpcHeader, hpcHeader } from './hpc.ts';
import { severityAt } from './severity.ts';
import type { Family, LineFormat, ParsedLine, ParseOptions } from './types.ts';

export type { Family, LineFormat, ParsedLine, ParseOptions } from './types.ts';

/** Programs whose messages may belong to a kernel family. */
const KERNELISH = new Set(['kernel', 'audit', 'auditd', 'audispd', 'ufw', 'klogd']);

let lastKernelishProgram = '';
let lastKernelish = false;

function kernelish(program: string): boolean {
  // programSlice hands out the same string for a repeated program: one lookup per change
  if (program !== lastKernelishProgram) {
    lastKernelishProgram = program;
    lastKernelish = KERNELISH.has(program);
  }
  return lastKernelish;
}

// ---------------------------------------------------------------------------------------------
// Scratch outputs of the scanners (valid until the next scanner call).

/** event time of the last stamp read, epoch ms */
let stampTs = 0;
/** seconds since boot of the last kernel stamp read */
let monoSecs = 0;
/** end of the last clock read */
let clockEnd = 0;

const SP = 32;
const TAB = 9;
const COLON = 58;

const isBlank = (c: number): boolean => c === SP || c === TAB;

function skipBlanks(s: string, i: number): number {
  // a trimmed line ends in a non-blank: only a start at the end could read past it
  if (i >= s.length) return i;
  while (isBlank(s.charCodeAt(i))) i++;
  return i;
}

function tokenEnd(s: string, i: number): number {
  const n = s.length;
  while (i < n && !isBlank(s.charCodeAt(i))) i++;
  return i;
}

/** At the end of the line, or at a blank: where a stamp or a field may end. */
const isBoundary = (s: string, i: number): boolean => i >= s.length || isBlank(s.charCodeAt(i));

// ---------------------------------------------------------------------------------------------
// Stamps

/**
 * `hh:mm:ss[.frac]` (also `,frac`) at i → ms of the day; clockEnd past it; -1 if not a time.
 * strict: RFC 5424's TIME-SECFRAC (1-6 digits after a dot, no leap second).
 */
function clockAt(s: string, i: number, strict: boolean): number {
  if (s.charCodeAt(i + 2) !== COLON || s.charCodeAt(i + 5) !== COLON) return -1;
  const hh = digits(s, i, 2);
  const mm = digits(s, i + 3, 2);
  const ss = digits(s, i + 6, 2);
  if (hh < 0 || mm < 0 || ss < 0 || hh > 23 || mm > 59 || ss > (strict ? 59 : 60)) return -1;
  let ms = hh * 3_600_000 + mm * 60_000 + ss * 1000;
  let j = i + 8;
  const sep = s.charCodeAt(j);
  if (sep === 46 || (sep === 44 && !strict)) {
    j++;
    const d0 = j;
    let scale = 100;
    while (isDigit(s.charCodeAt(j))) {
      if (scale >= 1) ms += (s.charCodeAt(j) - 48) * scale;
      scale /= 10;
      j++;
    }
    const nd = j - d0;
    // a dot needs digits (`22:09:01.Z` is no time); RFC 5424 allows up to microseconds
    if (nd === 0 || (strict && nd > 6)) {
      // `Aug 29 02:00:00. host` (syslog-ng's test): a lone dot after a BSD clock is a typo
      if (nd === 0 && !strict && isBoundary(s, j)) {
        clockEnd = j;
        return ms;
      }
      return -1;
    }
    ms = Math.floor(ms);
  }
  clockEnd = j;
  return ms;
}

// `Jan  2` → epoch ms of that UTC midnight, for the year in force; one Date.UTC per day seen.
let dayCacheKey = -1;
let dayCacheNowDay = -1;
let dayCacheMs = 0;
let yearNowDay = -1;
let yearOfNow = 1970;

/** UTC midnight of month/day in the year the stamp most likely has (-1: no such day that year). */
function bsdDayStart(month: number, day: number, now: number): number {
  const key = month * 32 + day;
  const nowDay = Math.floor(now / 86_400_000);
  if (key === dayCacheKey && nowDay === dayCacheNowDay) return dayCacheMs;
  if (nowDay !== yearNowDay) {
    yearNowDay = nowDay;
    yearOfNow = new Date(now).getUTCFullYear();
  }
  let y = yearOfNow;
  // A December line read in January belongs to last year.
  if (Date.UTC(y, month, Math.min(day, 28)) > now + 31 * 86_400_000) y--;
  const ms = day <= daysInMonth(y, month) ? Date.UTC(y, month, day) : -1;
  dayCacheKey = key;
  dayCacheNowDay = nowDay;
  dayCacheMs = ms;
  return ms;
}

/** A plausible year written inside a BSD stamp (`Apr 15 2007 21:28:13`, `Apr 15 21:28:13 2007`). */
function yearAt(s: string, i: number): number {
  const y = digits(s, i, 4);
  return y >= 1970 && y <= 2099 && isBoundary(s, i + 4) ? y : -1;
}

/**
 * RFC 3164's `Mmm dd hh:mm:ss` at i, and what real senders do with it: any case (`NOV`), one or
 * two blanks before the day, a fraction, a year before or after the clock (Cisco, Linksys), a
 * colon after it (Cisco), a `*`/`.` sync mark before it (Cisco). → the end, stampTs; -1 if not.
 */
function bsdStampAt(s: string, i: number, now: number): number {
  const mark = s.charCodeAt(i);
  if (mark === 42 || mark === 46) i++; // `*Oct 07 …`, `.Apr 15 …`
  const month = monthAtAnyCase(s, i);
  if (month < 0 || s.charCodeAt(i + 3) !== SP) return -1;
  let j = i + 4;
  if (s.charCodeAt(j) === SP) j++;
  const d0 = j;
  while (j - d0 < 2 && isDigit(s.charCodeAt(j))) j++;
  if (j === d0 || s.charCodeAt(j) !== SP) return -1;
  const day = digits(s, d0, j - d0);
  if (day < 1) return -1;
  j++;
  let year = yearAt(s, j);
  if (year > 0) j = skipBlanks(s, j + 4);
  const ms = clockAt(s, j, false);
  if (ms < 0) return -1;
  j = clockEnd;
  if (s.charCodeAt(j) === COLON) j++;
  if (!isBoundary(s, j)) return -1;
  if (year < 0) {
    // `21:28:13 2007` (Linksys); `05:34:00 CST 1987` (RFC 3164 §5.4 example 3): a zone name is
    // not an offset, so the clock stays read as UTC like every zoneless stamp
    let k = j + 1;
    let z = k;
    while (z - k < 5 && s.charCodeAt(z) >= 65 && s.charCodeAt(z) <= 90) z++;
    if (z - k >= 2 && s.charCodeAt(z) === SP && yearAt(s, z + 1) > 0) k = z + 1;
    year = yearAt(s, k);
    if (year > 0) {
      j = k + 4;
      if (s.charCodeAt(j) === COLON) j++;
    }
  }
  let base: number;
  if (year > 0) base = day <= daysInMonth(year, month) ? Date.UTC(year, month, day) : -1;
  else base = bsdDayStart(month, day, now);
  if (base < 0) return -1;
  stampTs = base + ms;
  return j;
}

/**
 * RFC 3339 `2024-01-02T03:04:05[.frac][Z|±hh:mm]` at i (lenient: a space for the T, `±hhmm`, no
 * zone = UTC). strict: RFC 5424's profile (upper-case T and Z, the offset required, 1-6 fraction
 * digits). The date must exist and the stamp must end at a blank. → the end, stampTs; -1 if not.
 */
function isoStampAt(s: string, i: number, strict: boolean): number {
  if (s.charCodeAt(i + 4) !== 45 || s.charCodeAt(i + 7) !== 45) return -1;
  const sep = s.charCodeAt(i + 10);
  if (sep !== 84 && (strict || sep !== SP)) return -1;
  const y = digits(s, i, 4);
  const mo = digits(s, i + 5, 2);
  const d = digits(s, i + 8, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo - 1)) return -1;
  const t = clockAt(s, i + 11, strict);
  if (t < 0) return -1;
  let ms = Date.UTC(y, mo - 1, d) + t;
  let j = clockEnd;
  const z = s.charCodeAt(j);
  if (z === 90 || (z === 122 && !strict)) j++;
  else if (z === 43 || z === 45) {
    const oh = digits(s, j + 1, 2);
    const colon = s.charCodeAt(j + 3) === COLON ? 1 : 0;
    if (strict && colon === 0) return -1;
    const om = digits(s, j + 3 + colon, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return -1;
    const off = (oh * 60 + om) * 60_000;
    ms += z === 43 ? -off : off;
    j += 5 + colon;
  } else if (strict) return -1;
  if (!isBoundary(s, j)) return -1;
  stampTs = ms;
  return j;
}

/** `[ 1234.567890]` at i → end past `] ` (one blank), monoSecs; -1 if not a stamp. */
function kernelStampAt(s: string, i: number): number {
  if (s.charCodeAt(i) !== 91) return -1;
  let j = skipBlanks(s, i + 1);
  let whole = 0;
  const d0 = j;
  while (isDigit(s.charCodeAt(j))) whole = whole * 10 + (s.charCodeAt(j++) - 48);
  if (j === d0) return -1;
  let frac = 0;
  let scale = 1;
  if (s.charCodeAt(j) === 46) {
    j++;
    while (isDigit(s.charCodeAt(j))) {
      frac = frac * 10 + (s.charCodeAt(j++) - 48);
      scale *= 10;
    }
  }
  if (s.charCodeAt(j) !== 93) return -1;
  j++;
  if (s.charCodeAt(j) === SP) j++;
  monoSecs = whole + frac / scale;
  return j;
}

/** dmesg -T: `[Tue Jan  2 03:04:05 2024]` at i → end past `] `, stampTs; -1 if not. */
function dmesgTimeAt(s: string, i: number): number {
  if (s.charCodeAt(i) !== 91 || !isWeekdayAt(s, i + 1) || s.charCodeAt(i + 4) !== SP) return -1;
  const month = monthAt(s, i + 5);
  if (month < 0 || s.charCodeAt(i + 8) !== SP) return -1;
  const d0 = s.charCodeAt(i + 9);
  const d1 = s.charCodeAt(i + 10);
  if (!isDigit(d1) || !(d0 === SP || isDigit(d0)) || s.charCodeAt(i + 11) !== SP) return -1;
  const day = (d0 === SP ? 0 : d0 - 48) * 10 + (d1 - 48);
  const t = clockAt(s, i + 12, false);
  if (t < 0 || s.charCodeAt(clockEnd) !== SP) return -1;
  const y = digits(s, clockEnd + 1, 4);
  if (y < 0 || s.charCodeAt(clockEnd + 5) !== 93 || day < 1 || day > daysInMonth(y, month)) return -1;
  stampTs = Date.UTC(y, month, day) + t;
  let j = clockEnd + 6;
  if (s.charCodeAt(j) === SP) j++;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Fields

// Lines of a stream mostly repeat their host and program: hand out the same string, sparing a
// slice per line (a compare of a few characters instead).
let lastHost = '';
let lastProgram = '';

function hostSlice(s: string, a: number, b: number): string {
  if (lastHost.length === b - a && s.startsWith(lastHost, a)) return lastHost;
  lastHost = s.slice(a, b);
  return lastHost;
}

function programSlice(s: string, a: number, b: number): string {
  if (lastProgram.length === b - a && s.startsWith(lastProgram, a)) return lastProgram;
  lastProgram = s.slice(a, b);
  return lastProgram;
}

/**
 * Characters of a HOSTNAME: letters, digits, `-._`, `:` and `[]` (IPv6 and its literal form), and
 * anything beyond ASCII (IDN hosts written in Unicode). Not `%`, quotes, braces or `=`: a token
 * with those is text.
 */
function isHostChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    isDigit(c) ||
    c === 45 ||
    c === 46 ||
    c === 95 ||
    c === COLON ||
    c === 91 ||
    c === 93 ||
    c >= 128
  );
}

function isHostToken(s: string, a: number, b: number): boolean {
  if (b <= a || b - a > 255) return false;
  // brackets only around an IPv6 literal (`[2001:db8::2]`): `example[0]` is text
  const literal = s.charCodeAt(a) === 91 && s.charCodeAt(b - 1) === 93;
  for (let k = a; k < b; k++) {
    const c = s.charCodeAt(k);
    if (!isHostChar(c) || ((c === 91 || c === 93) && !literal)) return false;
  }
  return true;
}

/** An IPv6 address as a host (`0002::`, `fe80::1`, `::FFFF:129.144.52.38`), though it ends in `:`. */
function isIpv6Token(s: string, a: number, b: number): boolean {
  let colons = 0;
  for (let k = a; k < b; k++) {
    const c = s.charCodeAt(k);
    if (c === COLON) colons++;
    else if (!(isDigit(c) || c === 46 || ((c | 0x20) >= 97 && (c | 0x20) <= 102))) return false;
  }
  return colons >= 2;
}

// The tag read by tagAt.
let tagProgA = 0;
let tagProgB = 0;
let tagPid: number | null = null;

/** A program name may not be a quoted or bracketed word (`{"user":`, `"key":`, `(note):`). */
function isProgramName(s: string, a: number, b: number): boolean {
  if (b <= a || b - a > 128) return false;
  const first = s.charCodeAt(a);
  if (first === 123 || first === 91 || first === 34 || first === 39 || first === 60 || first === 40)
    return false;
  const last = s.charCodeAt(b - 1);
  return last !== 34 && last !== 39;
}

/**
 * The TAG of RFC 3164 §4.1.3 as senders write it, in the token [a, b): `prog:`, `prog[pid]:`
 * (the name may hold colons, as RFC 5424's APP-NAME may: the token's last colon ends it),
 * `prog[pid]:text` (no blank after the colon); with `colonless`, also `prog[pid]` alone. A `[…]`
 * that is not a number still ends the name (pid null). → where the message starts, and
 * tagProgA/B, tagPid; -1 if the token is no tag.
 */
function tagAt(s: string, a: number, b: number, colonless: boolean): number {
  if (b - a < 2) return -1;
  let nameEnd: number;
  let next: number;
  // bracketed: the name must end in `[…]` (glued `prog[pid]:text`, colonless `prog[pid]`)
  let bracketed = false;
  if (s.charCodeAt(b - 1) === COLON) {
    nameEnd = b - 1;
    next = b;
  } else {
    let k = a + 1;
    while (k < b - 1 && !(s.charCodeAt(k) === 93 && s.charCodeAt(k + 1) === COLON)) k++;
    if (k < b - 1) {
      nameEnd = k + 1;
      next = k + 2;
    } else if (colonless && s.charCodeAt(b - 1) === 93) {
      nameEnd = b;
      next = b;
    } else return -1;
    bracketed = true;
  }
  tagPid = null;
  if (s.charCodeAt(nameEnd - 1) === 93) {
    let open = nameEnd - 2;
    while (open > a && s.charCodeAt(open) !== 91) open--;
    if (open > a) {
      const len = nameEnd - 2 - open;
      const v = len > 0 && len <= 10 ? digits(s, open + 1, len) : -1;
      if (v >= 0) tagPid = v;
      // `prog[pid]` without a colon is a tag only with a number in the brackets
      else if (next === nameEnd) return -1;
      nameEnd = open;
    } else if (bracketed) return -1;
  }
  if (!isProgramName(s, a, nameEnd)) return -1;
  tagProgA = a;
  tagProgB = nameEnd;
  return skipBlanks(s, next);
}

/**
 * A tag of several words that ends in `[pid]:` (`-- root[2421]: ROOT LOGIN …`, Loghub Linux), at
 * most 32 characters: only the pid form, so that prose with a colon is never taken for a tag.
 */
function multiWordTagAt(s: string, a: number): number {
  const limit = Math.min(s.length, a + 40);
  for (let k = a; k < limit; k++) {
    if (s.charCodeAt(k) !== COLON || s.charCodeAt(k - 1) !== 93) continue;
    let open = k - 2;
    while (open > a && isDigit(s.charCodeAt(open))) open--;
    if (s.charCodeAt(open) !== 91 || open === k - 2 || open - a > 32) return -1;
    if (!isBoundary(s, k + 1) || !isProgramName(s, a, open)) return -1;
    tagProgA = a;
    tagProgB = open;
    tagPid = digits(s, open + 1, k - 2 - open);
    return skipBlanks(s, k + 1);
  }
  return -1;
}

function isVersion(s: string, a: number, b: number): boolean {
  if (b <= a) return false;
  for (let k = a; k < b; k++) {
    const c = s.charCodeAt(k);
    if (!isDigit(c) && c !== 46) return false;
  }
  return true;
}

// The header read by headerAt: host [hostA, hostB) (hostA < 0: none), program [progA, progB)
// (progA < 0: none), pid, and where the message starts.
let hdrHostA = -1;
let hdrHostB = -1;
let hdrProgA = -1;
let hdrProgB = -1;
let hdrPid: number | null = null;
let hdrMsg = 0;

/** The header's program and pid are the tag tagAt just read; its message starts at m. */
function headerTag(m: number): true {
  hdrProgA = tagProgA;
  hdrProgB = tagProgB;
  hdrPid = tagPid;
  hdrMsg = m;
  return true;
}

const FORWARDED = 'Message forwarded from ';

/**
 * What follows a stamp: `host prog[pid]: msg`, `prog[pid]: msg` (no host), `host msg`, `host`.
 * With `strict` (after a kernel stamp, `journalctl -o short-monotonic`), only `host tag: msg` counts:
 * `[ 1.2] usb 1-1: …` is dmesg text. → false when strict and no such header.
 */
function headerAt(s: string, i: number, strict: boolean): boolean {
  const n = s.length;
  hdrHostA = -1;
  hdrProgA = -1;
  hdrPid = null;
  i = skipBlanks(s, i);
  hdrMsg = i;
  if (i >= n) return !strict;
  // AIX relays: `Message forwarded from HOST: prog[pid]: msg`
  if (!strict && s.charCodeAt(i) === 77 && s.startsWith(FORWARDED, i)) {
    const a = i + FORWARDED.length;
    const b = tokenEnd(s, a);
    if (b - a > 1 && s.charCodeAt(b - 1) === COLON && isHostToken(s, a, b - 1)) {
      hdrHostA = a;
      hdrHostB = b - 1;
      return afterHost(s, skipBlanks(s, b), false);
    }
  }
  const b1 = tokenEnd(s, i);
  if (isIpv6Token(s, i, b1)) {
    hdrHostA = i;
    hdrHostB = b1;
    return afterHost(s, skipBlanks(s, b1), strict);
  }
  if (!strict) {
    const m = tagAt(s, i, b1, false);
    if (m >= 0) return headerTag(m);
  }
  if (!isHostToken(s, i, b1) || s.charCodeAt(b1 - 1) === COLON) return !strict;
  hdrHostA = i;
  hdrHostB = b1;
  return afterHost(s, skipBlanks(s, b1), strict);
}

function afterHost(s: string, i2: number, strict: boolean): boolean {
  hdrMsg = i2;
  if (i2 >= s.length) return !strict;
  const b2 = tokenEnd(s, i2);
  let m = tagAt(s, i2, b2, !strict);
  // after a kernel stamp, journalctl writes `kernel:` or `ident[pid]:`; `usb 1-1:` is dmesg text
  if (m >= 0 && strict && tagPid === null && !(b2 - i2 === 7 && s.startsWith('kernel:', i2))) m = -1;
  if (m < 0 && !strict) m = multiWordTagAt(s, i2);
  if (m >= 0) return headerTag(m);
  if (strict) return false;
  // sysklogd's `syslogd 1.4.1: restart.`: a program and its version as the tag
  if (b2 > i2 && isDigit(s.charCodeAt(b2 + 1))) {
    const i3 = b2 + 1;
    const b3 = tokenEnd(s, i3);
    if (s.charCodeAt(b3 - 1) === COLON && isVersion(s, i3, b3 - 1)) {
      hdrProgA = i2;
      hdrProgB = b3 - 1;
      hdrMsg = skipBlanks(s, b3);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Results

const EMPTY: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** hostOf() sets this: it wants the host, not the kernel family. */
let skipClassify = false;

/** Whether a line of this program and layout may belong to a kernel family (result, classifyParsed). */
function mayClassify(format: LineFormat, program: string | null): boolean {
  return program === null || format === 'kernel' || kernelish(program);
}

/**
 * The kernel family and fields of a line parsed with `classify: false`, set as parseLine would
 * have set them (the same rule and the same classify on the same message).
 */
export function classifyParsed(p: ParsedLine): void {
  if (!mayClassify(p.format, p.program)) return;
  const c = classify(p.message);
  if (c) {
    p.family = c.family;
    p.fields = c.fields;
  }
}

function result(
  format: LineFormat,
  ts: number,
  hasTime: boolean,
  mono: number | null,
  host: string,
  program: string | null,
  pid: number | null,
  pri: number,
  message: string,
): ParsedLine {
  let family: Family = 'other';
  let fields: Record<string, string> = EMPTY;
  if (!skipClassify && mayClassify(format, program)) {
    const c = classify(message);
    if (c) {
      family = c.family;
      fields = c.fields;
    }
  }
  return {
    format,
    ts,
    hasTime,
    mono,
    host,
    program,
    pid,
    facility: pri >= 0 ? pri >> 3 : null,
    severity: pri >= 0 ? pri & 7 : null,
    message,
    messageAt: -1,
    family,
    fields,
  };
}

const rest = (s: string, i: number): string => (i <= 0 ? s : i >= s.length ? '' : s.slice(i));

/** The message from i, a leading kernel stamp taken off into `mono` (kern.log's `kernel: [ 1.2] …`). */
function messageResult(
  format: LineFormat,
  s: string,
  i: number,
  ts: number,
  hasTime: boolean,
  host: string,
  program: string | null,
  pid: number | null,
  pri: number,
): ParsedLine {
  let mono: number | null = null;
  if (codeAt(s, i) === 91) {
    const e = kernelStampAt(s, i);
    if (e >= 0) {
      mono = monoSecs;
      i = e;
    }
  }
  return result(format, ts, hasTime, mono, host, program, pid, pri, rest(s, i));
}

/**
 * The message after the `prog[pid]:` tag tagAt found at `tag` (its program and pid), or, with no tag
 * (`tag` < 0), the text from `at` with neither.
 */
function taggedResult(
  format: LineFormat,
  s: string,
  tag: number,
  at: number,
  ts: number,
  hasTime: boolean,
  host: string,
  pri: number,
): ParsedLine {
  return tag >= 0
    ? messageResult(format, s, tag, ts, hasTime, host, programSlice(s, tagProgA, tagProgB), tagPid, pri)
    : messageResult(format, s, at, ts, hasTime, host, null, null, pri);
}

/** A stamped syslog line: the header after the stamp (headerAt) into a result. */
function headerResult(format: LineFormat, s: string, i: number, ts: number, pri: number, host: string) {
  headerAt(s, i, false);
  return messageResult(
    format,
    s,
    hdrMsg,
    ts,
    true,
    hdrHostA >= 0 ? hostSlice(s, hdrHostA, hdrHostB) : host,
    hdrProgA >= 0 ? programSlice(s, hdrProgA, hdrProgB) : null,
    hdrPid,
    pri,
  );
}

/** Strips the line terminator(s), a UTF-8 BOM and trailing blanks. */
function trimLine(raw: string): string {
  let end = raw.length;
  while (end > 0) {
    const c = raw.charCodeAt(end - 1);
    if (c === 10 || c === 13 || c === SP || c === TAB) end--;
    else break;
  }
  const start = codeAt(raw, 0) === 0xfeff ? 1 : 0;
  return start === 0 && end === raw.length ? raw : raw.slice(start, end);
}

/**
 * Parses one log line. Never throws: a line in no known layout is a `bare` message.
 */
export function parseLine(raw: string, opts: ParseOptions = {}): ParsedLine {
  const s = trimLine(raw);
  let p: ParsedLine;
  if (opts.classify === false) {
    const before = skipClassify;
    skipClassify = true;
    try {
      p = parseTrimmed(s, opts);
    } finally {
      skipClassify = before;
    }
  } else p = parseTrimmed(s, opts);
  // every layout but JSON cuts the message as a suffix of the trimmed line
  if (p.format !== 'journal') p.messageAt = (codeAt(raw, 0) === 0xfeff ? 1 : 0) + s.length - p.message.length;
  return p;
}

/** `<PRI>` at i: 1-3 digits without a leading zero, at most 191 → the value; priEnd past `>`. */
let priEnd = 0;

function priAt(s: string, i: number): number {
  if (s.charCodeAt(i) !== 60) return -1;
  let j = i + 1;
  let v = 0;
  while (j - i <= 3 && isDigit(s.charCodeAt(j))) v = v * 10 + (s.charCodeAt(j++) - 48);
  const nd = j - i - 1;
  if (nd === 0 || s.charCodeAt(j) !== 62 || v > 191 || (nd > 1 && s.charCodeAt(i + 1) === 48)) return -1;
  priEnd = j + 1;
  return v;
}

function parseTrimmed(s: string, opts: ParseOptions): ParsedLine {
  const now = opts.now ?? Date.now();
  const defaultHost = opts.host ?? '';
  // a line may be indented (relays, copy-paste)
  let i = skipBlanks(s, 0);
  const c0 = codeAt(s, i);
  if (c0 === 123) {
    const j = journalLine(s, now, defaultHost);
    if (j) return j;
  }
  let pri = -1;
  if (c0 === 60) {
    pri = priAt(s, i);
    if (pri >= 0) {
      i = priEnd;
      // RFC 5424: `<PRI>VERSION SP …`, strictly; anything short of it is read as below
      if (isDigit(codeAt(s, i)) && codeAt(s, i) !== 48) {
        const r = rfc5424At(s, i, pri, now, defaultHost);
        if (r) return r;
      }
      // real senders put a blank after the PRI (`<15> openvpn[2499]: …`, `<7> Aug 29 …`)
      i = skipBlanks(s, i);
    }
  } else if (isDigit(c0)) {
    // RFC 5424 without its PRI (`1 2020-05-22T14:59:09.250-03:00 host app …`), /dev/kmsg records
    if (c0 === 49 && codeAt(s, i + 1) === SP) {
      const r = rfc5424At(s, i, -1, now, defaultHost);
      if (r) return r;
    }
    const k = kmsgRecord(s, i, now, defaultHost);
    if (k) return k;
  }
  let c = codeAt(s, i);
  if (isDigit(c)) {
    // BGL, Thunderbird: `1117838570 2005.06.03 …` (a digit first, then a fixed shape)
    const h = hpcHeader(s, i);
    if (h) return hpcLine(s, h, pri);
    const e = isoStampAt(s, i, false);
    if (e >= 0) return headerResult(pri >= 0 ? 'rfc3164' : 'iso', s, e, stampTs, pri, defaultHost);
    // Cisco IOS numbers its messages: `<0>91: *Oct 07 03:10:04: host …`
    if (pri >= 0) {
      let j = i;
      while (isDigit(codeAt(s, j))) j++;
      if (codeAt(s, j) === COLON && codeAt(s, j + 1) === SP) {
        const k = skipBlanks(s, j + 1);
        const e2 = bsdStampAt(s, k, now);
        if (e2 >= 0) return headerResult('rfc3164', s, e2, stampTs, pri, defaultHost);
      }
    }
  } else if (pri < 0 && c >= 97 && c <= 122) {
    // dmesg -x: `kern  :info  : [    1.234567] msg`, then the stamp as below
    const e = dmesgDecoded(s, i);
    if (e >= 0) {
      pri = decodedPri;
      i = e;
      c = codeAt(s, i);
    }
  }
  if (c === 91) {
    // dmesg: `[ 1234.567890] msg`; journalctl -o short-monotonic: `[ 1234.567890] host prog[pid]: msg`
    const e = kernelStampAt(s, i);
    if (e >= 0) {
      const mono = monoSecs;
      if (headerAt(s, e, true)) {
        return result(
          'kernel',
          now,
          false,
          mono,
          hostSlice(s, hdrHostA, hdrHostB),
          programSlice(s, hdrProgA, hdrProgB),
          hdrPid,
          pri,
          rest(s, hdrMsg),
        );
      }
      return result('kernel', now, false, mono, defaultHost, 'kernel', null, pri, rest(s, e));
    }
    const t = dmesgTimeAt(s, i);
    if (t >= 0) return messageResult('kernel', s, t, stampTs, true, defaultHost, 'kernel', null, pri);
  }
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 42 || c === 46) {
    const e = bsdStampAt(s, i, now);
    if (e >= 0) return headerResult('rfc3164', s, e, stampTs, pri, defaultHost);
  }
  // No stamp. The kernel's own `<N>text` (printk level, facility kern: `dmesg -r` without times),
  // right after the `>`; a digit there starts a broken RFC 5424 header instead (`<1>1 - - X`)
  if (pri >= 0 && pri < 8 && i === priEnd && !isDigit(c))
    return messageResult('kernel', s, i, now, false, defaultHost, 'kernel', null, pri);
  // `prog[pid]: msg` and `kernel: msg`; after a PRI any RFC 3164 tag (`<15> openvpn[2499]: …`)
  const b = tokenEnd(s, i);
  const m = tagAt(s, i, b, false);
  const tagged = m >= 0 && (pri >= 0 || tagPid !== null || (b - i === 7 && s.startsWith('kernel:', i)));
  return taggedResult('bare', s, tagged ? m : -1, i, now, false, defaultHost, pri);
}

/** syslog facility names as dmesg -x (util-linux) writes them, in facility-number order */
const FACILITY_NAMES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'res0',
  'res1',
  'res2',
  'res3',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
];

const isLowerOrDigit = (c: number): boolean => (c >= 97 && c <= 122) || isDigit(c);

let decodedPri = -1;

/** dmesg -x's `FACILITY:LEVEL: ` prefix (each name padded to 6) → the end, decodedPri; -1 if not. */
function dmesgDecoded(s: string, a: number): number {
  let j = a;
  while (j - a < 8 && isLowerOrDigit(s.charCodeAt(j))) j++;
  const fe = j;
  while (s.charCodeAt(j) === SP) j++;
  if (s.charCodeAt(j) !== COLON) return -1;
  const la = ++j;
  while (j - la < 6 && isLowerOrDigit(s.charCodeAt(j))) j++;
  const le = j;
  while (s.charCodeAt(j) === SP) j++;
  if (s.charCodeAt(j) !== COLON || s.charCodeAt(j + 1) !== SP) return -1;
  const sev = severityAt(s, la, le);
  if (sev < 0) return -1;
  for (let f = 0; f < FACILITY_NAMES.length; f++) {
    const name = FACILITY_NAMES[f]!;
    if (name.length === fe - a && s.startsWith(name, a)) {
      decodedPri = f * 8 + sev;
      return j + 2;
    }
  }
  return -1;
}

/**
 * A /dev/kmsg record (Documentation/ABI/testing/dev-kmsg): `PRI,SEQ,USEC,FLAGS[,…];message`,
 * e.g. `6,550,12175490619,-;a.out[4054]: segfault at …`.
 */
function kmsgRecord(s: string, i: number, now: number, defaultHost: string): ParsedLine | undefined {
  let j = i;
  let pri = 0;
  while (isDigit(s.charCodeAt(j)) && j - i < 4) pri = pri * 10 + (s.charCodeAt(j++) - 48);
  if (j === i || s.charCodeAt(j) !== 44 || pri > 191) return undefined;
  const q = ++j;
  while (isDigit(s.charCodeAt(j))) j++;
  if (j === q || s.charCodeAt(j) !== 44) return undefined;
  const u = ++j;
  let usec = 0;
  while (isDigit(s.charCodeAt(j))) usec = usec * 10 + (s.charCodeAt(j++) - 48);
  if (j === u || s.charCodeAt(j) !== 44) return undefined;
  // flags (`-`, `c`, `+`) and, in newer kernels, more comma-separated fields up to the `;`
  const f = ++j;
  while (j - f < 64 && j < s.length && s.charCodeAt(j) !== 59 && !isBlank(s.charCodeAt(j))) j++;
  if (j === f || s.charCodeAt(j) !== 59) return undefined;
  const p = result('kernel', now, false, usec / 1e6, defaultHost, 'kernel', null, pri, rest(s, j + 1));
  return p;
}

/** A BGL or Thunderbird line from its header (hpc.ts): the event time is the line's unix seconds. */
function hpcLine(s: string, h: HpcHeader, pri: number): ParsedLine {
  const host = hostSlice(s, h.hostAt, h.hostEnd);
  if (h.format === 'bgl') {
    // the level says more than a syslog PRI a relay may have put in front
    const sev = h.severity >= 0 ? h.severity : pri >= 0 ? pri & 7 : -1;
    const program = programSlice(s, h.programAt, h.programEnd);
    const p = result('bgl', h.ts, true, null, host, program, null, sev, rest(s, h.next));
    p.facility = pri >= 0 ? pri >> 3 : null;
    return p;
  }
  // Thunderbird: `prog[pid]: msg`, `usbcore: msg`, or untagged kernel text after the source
  const next = h.next;
  return taggedResult(
    'thunderbird',
    s,
    tagAt(s, next, tokenEnd(s, next), false),
    next,
    h.ts,
    true,
    host,
    pri,
  );
}

// ---------------------------------------------------------------------------------------------
// RFC 5424, to the letter (§6): a line that is not valid RFC 5424 is not read as one.

const isPrintUsAscii = (c: number): boolean => c >= 33 && c <= 126;

/** A header field of 1-max PRINTUSASCII at i, or `-` → its end; -1 if not. */
function field5424(s: string, i: number, max: number): number {
  let j = i;
  while (j - i <= max && isPrintUsAscii(s.charCodeAt(j))) j++;
  if (j === i || j - i > max || s.charCodeAt(j) !== SP) return -1;
  return j;
}

/** SD-NAME (SD-ID, PARAM-NAME): 1-32 PRINTUSASCII but `=`, SP, `]`, `"` → its end; -1 if not. */
function sdName(s: string, i: number): number {
  let j = i;
  for (;;) {
    const c = s.charCodeAt(j);
    if (!isPrintUsAscii(c) || c === 61 || c === 93 || c === 34) break;
    j++;
  }
  return j === i || j - i > 32 ? -1 : j;
}

function sameText(s: string, a: number, b: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (s.charCodeAt(a + k) !== s.charCodeAt(b + k)) return false;
  return true;
}

/** SD-IDs of the message, to refuse a duplicate (RFC 5424 §6.3.2) without allocating. */
const sdIds = new Int32Array(64);

/**
 * STRUCTURED-DATA at i: `-` or one or more `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]`, where `"`,
 * `\` and `]` inside a value are escaped with `\` (§6.3.3; another escaped character stays as
 * written). → its end; -1 if malformed.
 */
function structuredData(s: string, i: number): number {
  if (s.charCodeAt(i) === 45) return i + 1;
  if (s.charCodeAt(i) !== 91) return -1;
  let ids = 0;
  while (s.charCodeAt(i) === 91) {
    const a = i + 1;
    const e = sdName(s, a);
    if (e < 0) return -1;
    for (let k = 0; k < ids; k += 2) {
      const pa = sdIds[k]!;
      const pb = sdIds[k + 1]!;
      if (pb - pa === e - a && sameText(s, pa, a, e - a)) return -1;
    }
    if (ids < sdIds.length) {
      sdIds[ids++] = a;
      sdIds[ids++] = e;
    }
    let j = e;
    while (s.charCodeAt(j) === SP) {
      const pe = sdName(s, j + 1);
      if (pe < 0 || s.charCodeAt(pe) !== 61 || s.charCodeAt(pe + 1) !== 34) return -1;
      j = pe + 2;
      for (;;) {
        if (j >= s.length) return -1;
        const c = s.charCodeAt(j);
        if (c === 92) {
          j += 2;
          continue;
        }
        if (c === 34) break;
        if (c === 93) return -1; // an unescaped `]` inside a value
        j++;
      }
      j++;
    }
    if (s.charCodeAt(j) !== 93) return -1;
    i = j + 1;
  }
  return i;
}

/** RFC 5424 at i (the VERSION, after the PRI if any): `VERSION SP TIMESTAMP SP HOSTNAME …`. */
function rfc5424At(
  s: string,
  i: number,
  pri: number,
  now: number,
  defaultHost: string,
): ParsedLine | undefined {
  // VERSION: NONZERO-DIGIT 0*2DIGIT
  let j = i;
  while (j - i < 3 && isDigit(s.charCodeAt(j))) j++;
  if (s.charCodeAt(j) !== SP) return undefined;
  j++;
  let hasTime = false;
  let ts = 0;
  if (s.charCodeAt(j) === 45) {
    if (s.charCodeAt(j + 1) !== SP) return undefined;
    j += 2;
  } else {
    const e = isoStampAt(s, j, true);
    if (e < 0 || s.charCodeAt(e) !== SP) return undefined;
    hasTime = true;
    ts = stampTs;
    j = e + 1;
  }
  const hA = j;
  const hB = field5424(s, hA, 255);
  if (hB < 0) return undefined;
  const aA = hB + 1;
  const aB = field5424(s, aA, 48);
  if (aB < 0) return undefined;
  const pA = aB + 1;
  const pB = field5424(s, pA, 128);
  if (pB < 0) return undefined;
  const mB = field5424(s, pB + 1, 32);
  if (mB < 0) return undefined;
  const sd = structuredData(s, mB + 1);
  if (sd < 0) return undefined;
  let m = sd;
  if (m < s.length) {
    if (s.charCodeAt(m) !== SP) return undefined;
    m++;
    if (s.charCodeAt(m) === 0xfeff) m++;
  }
  const nil = (a: number, b: number): boolean => b - a === 1 && s.charCodeAt(a) === 45;
  const host = nil(hA, hB) ? defaultHost : hostSlice(s, hA, hB);
  const app = nil(aA, aB) ? null : programSlice(s, aA, aB);
  let pid: number | null = null;
  if (pB - pA <= 10) {
    const v = digits(s, pA, pB - pA);
    if (v >= 0) pid = v;
  }
  return messageResult('rfc5424', s, m, hasTime ? ts : now, hasTime, host, app, pid, pri);
}

// ---------------------------------------------------------------------------------------------

/** One `journalctl -o json` object. */
function journalLine(s: string, now: number, defaultHost: string): ParsedLine | undefined {
  let o: unknown;
  try {
    o = JSON.parse(s);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  const j = o as Record<string, unknown>;
  if (!('MESSAGE' in j) && !('__REALTIME_TIMESTAMP' in j)) return undefined;
  const str = (k: string): string | undefined => {
    const v = j[k];
    return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
  };
  let message = '';
  const mv = j.MESSAGE;
  if (typeof mv === 'string') message = mv;
  else if (Array.isArray(mv))
    message = Buffer.from(mv.filter((b): b is number => typeof b === 'number')).toString('utf8');
  message = trimLine(message);
  const usec = str('_SOURCE_REALTIME_TIMESTAMP') ?? str('__REALTIME_TIMESTAMP');
  const ts = usec && /^\d+$/.test(usec) ? Math.floor(Number(usec) / 1000) : now;
  const monoUsec = str('_SOURCE_MONOTONIC_TIMESTAMP');
  let mono: number | null = monoUsec && /^\d+$/.test(monoUsec) ? Number(monoUsec) / 1e6 : null;
  const program = str('SYSLOG_IDENTIFIER') ?? str('_COMM') ?? null;
  const pidS = str('SYSLOG_PID') ?? str('_PID');
  const prio = str('PRIORITY');
  const fac = str('SYSLOG_FACILITY');
  const sev = prio && /^[0-7]$/.test(prio) ? Number(prio) : -1;
  const facility = fac && /^\d+$/.test(fac) ? Number(fac) : 0;
  const e = kernelStampAt(message, 0);
  if (e >= 0) {
    mono ??= monoSecs;
    message = message.slice(e);
  }
  const p = result(
    'journal',
    ts,
    usec !== undefined,
    mono,
    str('_HOSTNAME') ?? defaultHost,
    program,
    pidS && /^\d+$/.test(pidS) ? Number(pidS) : null,
    sev >= 0 ? facility * 8 + sev : -1,
    message,
  );
  if (sev < 0) {
    p.facility = null;
    p.severity = null;
  }
  return p;
}

/** The host a line names, if any (publishers key messages by it); no kernel family is read. */
export function hostOf(raw: string): string | undefined {
  skipClassify = true;
  try {
    return parseLine(raw, { host: '' }).host || undefined;
  } finally {
    skipClassify = false;
  }
}
