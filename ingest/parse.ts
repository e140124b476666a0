// Line parser: syslog headers (RFC 3164, RFC 5424, ISO-8601 stamps), the kernel's `[ 1234.567890]`
// stamp, dmesg -T stamps, `journalctl -o json` objects, the Loghub HPC layouts (BGL, Thunderbird:
// hpc.ts); then the kernel family of the message.
// Hand-written scanning on the hot path (one parse per line at stream speed); the family parsers in
// families.ts only run on lines that a cheap substring test already picked.
//
// Stamps without a zone (RFC 3164's `Jan  2 03:04:05`, `2024-01-02 03:04:05`) are read as UTC,
// so every consumer reads the same instant whatever its own time zone.
import { digits, isDigit, isWeekdayAt, monthAt } from './calendar.ts';
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

// `Jan  2` → epoch ms of that UTC midnight, for the year in force; one Date.UTC per day seen.
let dayCacheKey = -1;
let dayCacheNowDay = -1;
let dayCacheMs = 0;
let yearNowDay = -1;
let yearOfNow = 1970;

function bsdDayStart(month: number, day: number, now: number): number {
  const key = month * 32 + day;
  const nowDay = Math.floor(now / 86_400_000);
  if (key === dayCacheKey && nowDay === dayCacheNowDay) return dayCacheMs;
  if (nowDay !== yearNowDay) {
    yearNowDay = nowDay;
    yearOfNow = new Date(now).getUTCFullYear();
  }
  let ms = Date.UTC(yearOfNow, month, day);
  // A December line read in January belongs to last year.
  if (ms > now + 31 * 86_400_000) ms = Date.UTC(yearOfNow - 1, month, day);
  dayCacheKey = key;
  dayCacheNowDay = nowDay;
  dayCacheMs = ms;
  return ms;
}

interface Cursor {
  i: number;
  ts: number;
}

/** `hh:mm:ss[.frac]` at i → ms of the day; sets c.i past it. -1 if not a time. */
function clock(s: string, c: Cursor): number {
  const i = c.i;
  if (s.charCodeAt(i + 2) !== 58 || s.charCodeAt(i + 5) !== 58) return -1;
  const hh = digits(s, i, 2);
  const mm = digits(s, i + 3, 2);
  const ss = digits(s, i + 6, 2);
  if (hh < 0 || mm < 0 || ss < 0 || hh > 23 || mm > 59 || ss > 60) return -1;
  let ms = hh * 3_600_000 + mm * 60_000 + ss * 1000;
  let j = i + 8;
  if (s.charCodeAt(j) === 46 || s.charCodeAt(j) === 44) {
    j++;
    let scale = 100;
    while (isDigit(s.charCodeAt(j))) {
      if (scale >= 1) ms += (s.charCodeAt(j) - 48) * scale;
      scale /= 10;
      j++;
    }
    ms = Math.floor(ms);
  }
  c.i = j;
  return ms;
}

/** `Jan  2 03:04:05[.frac]` (RFC 3164, journalctl short/short-precise); also `Jan 2 03:04:05`. */
function bsdStamp(s: string, c: Cursor, now: number): boolean {
  const i = c.i;
  if (s.length < i + 14 || s.charCodeAt(i + 3) !== 32) return false;
  const month = monthAt(s, i);
  if (month < 0) return false;
  const d0 = s.charCodeAt(i + 4);
  const d1 = s.charCodeAt(i + 5);
  let day: number;
  let t: number;
  if (d0 === 32 && isDigit(d1)) {
    day = d1 - 48;
    t = i + 6;
  } else if (isDigit(d0) && isDigit(d1)) {
    day = (d0 - 48) * 10 + (d1 - 48);
    t = i + 6;
  } else if (isDigit(d0) && d1 === 32) {
    day = d0 - 48;
    t = i + 5;
  } else return false;
  if (day < 1 || day > 31 || s.charCodeAt(t) !== 32) return false;
  c.i = t + 1;
  const ms = clock(s, c);
  if (ms < 0) {
    c.i = i;
    return false;
  }
  c.ts = bsdDayStart(month, day, now) + ms;
  return true;
}

/** `2024-01-02T03:04:05[.frac][Z|±hh:mm|±hhmm]` (also with a space for the T). */
function isoStamp(s: string, c: Cursor): boolean {
  const i = c.i;
  if (s.charCodeAt(i + 4) !== 45 || s.charCodeAt(i + 7) !== 45) return false;
  const sep = s.charCodeAt(i + 10);
  if (sep !== 84 && sep !== 32) return false;
  const y = digits(s, i, 4);
  const mo = digits(s, i + 5, 2);
  const d = digits(s, i + 8, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31) return false;
  c.i = i + 11;
  const t = clock(s, c);
  if (t < 0) {
    c.i = i;
    return false;
  }
  let ms = Date.UTC(y, mo - 1, d) + t;
  let j = c.i;
  const z = s.charCodeAt(j);
  if (z === 90 || z === 122) j++;
  else if (z === 43 || z === 45) {
    const oh = digits(s, j + 1, 2);
    const colon = s.charCodeAt(j + 3) === 58 ? 1 : 0;
    const om = digits(s, j + 3 + colon, 2);
    if (oh >= 0 && om >= 0) {
      const off = (oh * 60 + om) * 60_000;
      ms += z === 43 ? -off : off;
      j += 5 + colon;
    }
  }
  c.i = j;
  c.ts = ms;
  return true;
}

/** `[ 1234.567890]` at i → seconds, c.i past `] `; NaN if not a stamp. */
function kernelStamp(s: string, c: Cursor): number {
  let j = c.i;
  if (s.charCodeAt(j) !== 91) return Number.NaN;
  j++;
  while (s.charCodeAt(j) === 32) j++;
  let whole = 0;
  let nd = 0;
  while (isDigit(s.charCodeAt(j))) {
    whole = whole * 10 + (s.charCodeAt(j) - 48);
    j++;
    nd++;
  }
  if (nd === 0) return Number.NaN;
  let frac = 0;
  let scale = 1;
  if (s.charCodeAt(j) === 46) {
    j++;
    while (isDigit(s.charCodeAt(j))) {
      frac = frac * 10 + (s.charCodeAt(j) - 48);
      scale *= 10;
      j++;
    }
  }
  if (s.charCodeAt(j) !== 93) return Number.NaN;
  j++;
  if (s.charCodeAt(j) === 32) j++;
  c.i = j;
  return whole + frac / scale;
}

/** dmesg -T: `[Tue Jan  2 03:04:05 2024]`. */
function dmesgTimeStamp(s: string, c: Cursor): boolean {
  const i = c.i;
  if (s.charCodeAt(i) !== 91 || !isWeekdayAt(s, i + 1) || s.charCodeAt(i + 4) !== 32) return false;
  const month = monthAt(s, i + 5);
  if (month < 0 || s.charCodeAt(i + 8) !== 32) return false;
  const d0 = s.charCodeAt(i + 9);
  const d1 = s.charCodeAt(i + 10);
  if (!isDigit(d1) || !(d0 === 32 || isDigit(d0)) || s.charCodeAt(i + 11) !== 32) return false;
  const day = (d0 === 32 ? 0 : d0 - 48) * 10 + (d1 - 48);
  const cur: Cursor = { i: i + 12, ts: 0 };
  const t = clock(s, cur);
  if (t < 0 || s.charCodeAt(cur.i) !== 32) return false;
  const y = digits(s, cur.i + 1, 4);
  if (y < 0 || s.charCodeAt(cur.i + 5) !== 93) return false;
  c.ts = Date.UTC(y, month, day) + t;
  c.i = cur.i + 6;
  if (s.charCodeAt(c.i) === 32) c.i++;
  return true;
}

function isHostChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    isDigit(c) ||
    c === 45 ||
    c === 46 ||
    c === 95 ||
    c === 58 ||
    c === 91 ||
    c === 93
  );
}

function tokenEnd(s: string, i: number): number {
  const e = s.indexOf(' ', i);
  return e < 0 ? s.length : e;
}

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

function skipSpaces(s: string, i: number): number {
  while (s.charCodeAt(i) === 32) i++;
  return i;
}

interface Tag {
  program: string;
  pid: number | null;
  /** index of the message after `tag: ` */
  next: number;
}

/** `prog[pid]:` / `prog:` at [a, b) (b is the token end); undefined if not a tag. */
function tag(s: string, a: number, b: number, requirePid: boolean): Tag | undefined {
  if (b - a < 2 || s.charCodeAt(b - 1) !== 58) return undefined;
  let e = b - 1;
  let pid: number | null = null;
  if (s.charCodeAt(e - 1) === 93) {
    // `[digits]` just before the colon (walked back by hand: lastIndexOf is a runtime call)
    let open = e - 2;
    while (open > a && isDigit(s.charCodeAt(open))) open--;
    if (open > a && s.charCodeAt(open) === 91 && open < e - 2) {
      pid = digits(s, open + 1, e - 2 - open);
      e = open;
    }
  }
  if (requirePid && pid === null) return undefined;
  if (e <= a) return undefined;
  return { program: programSlice(s, a, e), pid, next: skipSpaces(s, b) };
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
  if (program === null || format === 'kernel' || kernelish(program)) {
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

const EMPTY: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** Strips the line terminator(s), a UTF-8 BOM and trailing blanks. */
function trimLine(raw: string): string {
  let end = raw.length;
  while (end > 0) {
    const c = raw.charCodeAt(end - 1);
    if (c === 10 || c === 13 || c === 32 || c === 9) end--;
    else break;
  }
  const start = raw.charCodeAt(0) === 0xfeff ? 1 : 0;
  return start === 0 && end === raw.length ? raw : raw.slice(start, end);
}

/**
 * Parses one log line. Never throws: a line in no known layout is a `bare` message.
 */
export function parseLine(raw: string, opts: ParseOptions = {}): ParsedLine {
  const s = trimLine(raw);
  const p = parseTrimmed(s, opts);
  // every layout but JSON cuts the message as a suffix of the trimmed line
  if (p.format !== 'journal')
    p.messageAt = (raw.charCodeAt(0) === 0xfeff ? 1 : 0) + s.length - p.message.length;
  return p;
}

function parseTrimmed(s: string, opts: ParseOptions): ParsedLine {
  const now = opts.now ?? Date.now();
  const defaultHost = opts.host ?? '';
  if (s.charCodeAt(0) === 123) {
    const j = journalLine(s, now, defaultHost);
    if (j) return j;
  }
  const c: Cursor = { i: 0, ts: now };
  let pri = -1;
  // <PRI>
  if (s.charCodeAt(0) === 60) {
    let j = 1;
    let v = 0;
    while (j < 5 && isDigit(s.charCodeAt(j))) v = v * 10 + (s.charCodeAt(j++) - 48);
    if (j > 1 && s.charCodeAt(j) === 62 && v <= 191) {
      pri = v;
      c.i = j + 1;
      // RFC 5424: version 1 after the PRI
      if (s.charCodeAt(c.i) === 49 && s.charCodeAt(c.i + 1) === 32) {
        const r = rfc5424(s, c.i + 2, pri, now, defaultHost);
        if (r) return r;
      }
    }
  }
  const first = s.charCodeAt(c.i);
  // BGL, Thunderbird: `1117838570 2005.06.03 …` (a digit first, then a fixed shape)
  if (isDigit(first)) {
    const h = hpcHeader(s, c.i);
    if (h) return hpcLine(s, h, pri);
  } else if (pri < 0 && first >= 97 && first <= 122) {
    // dmesg -x: `kern  :info  : [    1.234567] msg`, then the stamp as below
    pri = dmesgDecoded(s, c);
  }
  // dmesg: `[ 1234.567890] msg`, `[Tue Jan  2 03:04:05 2024] msg`; journalctl -o short-monotonic
  if (s.charCodeAt(c.i) === 91) {
    const mono = kernelStamp(s, c);
    if (!Number.isNaN(mono)) {
      // `journalctl -o short-monotonic`: `[ 1234.567890] host prog[pid]: msg`
      const after = header(s, c.i, true);
      if (after) {
        return result(
          'kernel',
          now,
          false,
          mono,
          after.host ?? defaultHost,
          after.program,
          after.pid,
          pri,
          after.message,
        );
      }
      return result('kernel', now, false, mono, defaultHost, 'kernel', null, pri, s.slice(c.i));
    }
    if (dmesgTimeStamp(s, c)) {
      const m = kernelMessage(s, c.i);
      return result('kernel', c.ts, true, m.mono, defaultHost, 'kernel', null, pri, m.message);
    }
  }
  let format: LineFormat = 'bare';
  const c0 = s.charCodeAt(c.i);
  if (c0 >= 65 && c0 <= 90 && bsdStamp(s, c, now)) format = 'rfc3164';
  else if (isDigit(c0) && isoStamp(s, c)) format = pri >= 0 ? 'rfc3164' : 'iso';
  if (format === 'bare') {
    // No stamp: maybe `prog[pid]: msg` or `kernel: msg`, else the whole line.
    const b = tokenEnd(s, c.i);
    const t = tag(s, c.i, b, true) ?? (s.startsWith('kernel:', c.i) ? tag(s, c.i, b, false) : undefined);
    if (t) {
      const m = kernelMessage(s, t.next);
      return result('bare', now, false, m.mono, defaultHost, t.program, t.pid, pri, m.message);
    }
    const m = kernelMessage(s, c.i);
    return result('bare', now, false, m.mono, defaultHost, null, null, pri, m.message);
  }
  const h = header(s, skipSpaces(s, c.i), false);
  if (!h) return result(format, c.ts, true, null, defaultHost, null, null, pri, '');
  return result(format, c.ts, true, h.mono, h.host ?? defaultHost, h.program, h.pid, pri, h.message);
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

/** dmesg -x's `FACILITY:LEVEL: ` prefix (each name padded to 6) → PRI, c.i past it; else -1. */
function dmesgDecoded(s: string, c: Cursor): number {
  const a = c.i;
  let j = a;
  while (j - a < 8 && isLowerOrDigit(s.charCodeAt(j))) j++;
  const fe = j;
  while (s.charCodeAt(j) === 32) j++;
  if (s.charCodeAt(j) !== 58) return -1;
  const la = ++j;
  while (j - la < 6 && isLowerOrDigit(s.charCodeAt(j))) j++;
  const le = j;
  while (s.charCodeAt(j) === 32) j++;
  if (s.charCodeAt(j) !== 58 || s.charCodeAt(j + 1) !== 32) return -1;
  const sev = severityAt(s, la, le);
  if (sev < 0) return -1;
  for (let f = 0; f < FACILITY_NAMES.length; f++) {
    const name = FACILITY_NAMES[f]!;
    if (name.length === fe - a && s.startsWith(name, a)) {
      c.i = j + 2;
      return f * 8 + sev;
    }
  }
  return -1;
}

/** A BGL or Thunderbird line from its header (hpc.ts): the event time is the line's unix seconds. */
function hpcLine(s: string, h: HpcHeader, pri: number): ParsedLine {
  const host = hostSlice(s, h.hostAt, h.hostEnd);
  if (h.format === 'bgl') {
    // the level says more than a syslog PRI a relay may have put in front
    const sev = h.severity >= 0 ? h.severity : pri >= 0 ? pri & 7 : -1;
    const message = h.next >= s.length ? '' : s.slice(h.next);
    const program = programSlice(s, h.programAt, h.programEnd);
    const p = result('bgl', h.ts, true, null, host, program, null, sev, message);
    p.facility = pri >= 0 ? pri >> 3 : null;
    return p;
  }
  // Thunderbird: `prog[pid]: msg`, `usbcore: msg`, or untagged kernel text after the source
  const t = tag(s, h.next, tokenEnd(s, h.next), false);
  const m = kernelMessage(s, t ? t.next : h.next);
  return result('thunderbird', h.ts, true, m.mono, host, t?.program ?? null, t?.pid ?? null, pri, m.message);
}

interface Header {
  host: string | undefined;
  program: string | null;
  pid: number | null;
  mono: number | null;
  message: string;
}

/**
 * After the stamp: `host prog[pid]: msg`, `prog[pid]: msg` (no host), or `host msg`.
 * With `strict`, only a line that has a tag counts (for what follows a kernel stamp).
 */
function header(s: string, i: number, strict: boolean): Header | undefined {
  const n = s.length;
  if (i >= n)
    return strict ? undefined : { host: undefined, program: null, pid: null, mono: null, message: '' };
  const b1 = tokenEnd(s, i);
  // after a kernel stamp (strict) only `host prog: msg` counts: `[ 1.2] e1000e: eth0 …` is dmesg
  const t1 = strict ? undefined : tag(s, i, b1, false);
  if (t1 && !looksLikeHostWithColon(s, i, b1)) {
    const m = kernelMessage(s, t1.next);
    return { host: undefined, program: t1.program, pid: t1.pid, mono: m.mono, message: m.message };
  }
  if (s.charCodeAt(b1 - 1) === 58 && !looksLikeHostWithColon(s, i, b1)) return strictOr(strict, s, i);
  for (let k = i; k < b1; k++) if (!isHostChar(s.charCodeAt(k))) return strictOr(strict, s, i);
  const host = hostSlice(s, i, b1);
  const i2 = skipSpaces(s, b1);
  const b2 = tokenEnd(s, i2);
  // after a kernel stamp, journalctl writes `kernel:` or `ident[pid]:`; `usb 1-1:` is dmesg text
  const t2 = tag(s, i2, b2, strict);
  if (t2 || (strict && b2 - i2 === 7 && s.startsWith('kernel:', i2))) {
    const t = t2 ?? tag(s, i2, b2, false)!;
    const m = kernelMessage(s, t.next);
    return { host, program: t.program, pid: t.pid, mono: m.mono, message: m.message };
  }
  // sysklogd's `syslogd 1.4.1: restart.`: a program and its version as the tag
  if (!strict && b2 > i2 && isDigit(s.charCodeAt(b2 + 1))) {
    const i3 = b2 + 1;
    const b3 = tokenEnd(s, i3);
    if (s.charCodeAt(b3 - 1) === 58 && isVersion(s, i3, b3 - 1)) {
      const m = kernelMessage(s, skipSpaces(s, b3));
      return { host, program: s.slice(i2, b3 - 1), pid: null, mono: m.mono, message: m.message };
    }
  }
  if (strict) return undefined;
  const m = kernelMessage(s, i2);
  return { host, program: null, pid: null, mono: m.mono, message: m.message };
}

function isVersion(s: string, a: number, b: number): boolean {
  if (b <= a) return false;
  for (let k = a; k < b; k++) {
    const c = s.charCodeAt(k);
    if (!isDigit(c) && c !== 46) return false;
  }
  return true;
}

function strictOr(strict: boolean, s: string, i: number): Header | undefined {
  if (strict) return undefined;
  const m = kernelMessage(s, i);
  return { host: undefined, program: null, pid: null, mono: m.mono, message: m.message };
}

/** An IPv6 host (`fe80::1`) is not a tag even though it ends in a colon-ish way. */
function looksLikeHostWithColon(s: string, a: number, b: number): boolean {
  let colons = 0;
  for (let k = a; k < b; k++) if (s.charCodeAt(k) === 58) colons++;
  return colons >= 3;
}

/** The message from i, without a leading kernel stamp (kept as mono). */
function kernelMessage(s: string, i: number): { mono: number | null; message: string } {
  if (s.charCodeAt(i) === 91) {
    const c: Cursor = { i, ts: 0 };
    const mono = kernelStamp(s, c);
    if (!Number.isNaN(mono)) return { mono, message: c.i >= s.length ? '' : s.slice(c.i) };
  }
  return { mono: null, message: i === 0 ? s : s.slice(i) };
}

/** RFC 5424 after `<PRI>1 `: `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`. */
function rfc5424(
  s: string,
  i: number,
  pri: number,
  now: number,
  defaultHost: string,
): ParsedLine | undefined {
  const c: Cursor = { i, ts: now };
  let hasTime = false;
  if (s.charCodeAt(i) === 45) c.i = i + 1;
  else if (isoStamp(s, c)) hasTime = true;
  else return undefined;
  const field = (): string | null => {
    c.i = skipSpaces(s, c.i);
    const e = tokenEnd(s, c.i);
    const v = s.slice(c.i, e);
    c.i = e;
    return v === '-' ? null : v;
  };
  const host = field();
  const app = field();
  const procid = field();
  field(); // MSGID
  c.i = skipSpaces(s, c.i);
  // STRUCTURED-DATA: `-` or `[id k="v" …]…` (quoted values may hold `]` escaped as `\]`)
  if (s.charCodeAt(c.i) === 45) c.i++;
  else {
    while (s.charCodeAt(c.i) === 91) {
      let j = c.i + 1;
      let quoted = false;
      while (j < s.length) {
        const ch = s.charCodeAt(j);
        if (ch === 92) j++;
        else if (ch === 34) quoted = !quoted;
        else if (ch === 93 && !quoted) break;
        j++;
      }
      c.i = j + 1;
    }
  }
  if (s.charCodeAt(c.i) === 32) c.i++;
  if (s.charCodeAt(c.i) === 0xfeff) c.i++;
  const pidNum = procid !== null && /^\d+$/.test(procid) ? Number(procid) : null;
  const m = kernelMessage(s, c.i);
  return result('rfc5424', c.ts, hasTime, m.mono, host ?? defaultHost, app, pidNum, pri, m.message);
}

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
  const km = kernelMessage(message, 0);
  if (km.mono !== null) {
    mono ??= km.mono;
    message = km.message;
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

/** The host a line names, if any: cheap, for publishers that key messages by host. */
export function hostOf(raw: string): string | undefined {
  const s = trimLine(raw);
  const c: Cursor = { i: 0, ts: 0 };
  if (s.charCodeAt(0) === 60) {
    const close = s.indexOf('>');
    if (close > 0 && close < 5) c.i = close + 1;
    if (s.charCodeAt(c.i) === 49 && s.charCodeAt(c.i + 1) === 32) {
      // RFC 5424: the host is the third field
      const a = skipSpaces(s, tokenEnd(s, c.i + 2));
      const b = tokenEnd(s, a);
      const h = s.slice(a, b);
      return h && h !== '-' ? h : undefined;
    }
  }
  if (s.charCodeAt(c.i) === 123) return parseLine(s).host || undefined;
  const c0 = s.charCodeAt(c.i);
  if (isDigit(c0)) {
    const h = hpcHeader(s, c.i);
    if (h) return s.slice(h.hostAt, h.hostEnd);
  }
  const now = Date.now();
  if (!((c0 >= 65 && c0 <= 90 && bsdStamp(s, c, now)) || (isDigit(c0) && isoStamp(s, c)))) {
    if (c0 !== 91) return undefined;
    if (Number.isNaN(kernelStamp(s, c))) return undefined;
    return header(s, c.i, true)?.host;
  }
  return header(s, skipSpaces(s, c.i), false)?.host;
}
