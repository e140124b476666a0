// The headers of the supercomputer logs of the Loghub collection (Oliner & Stearley, DSN 2007):
//
//   BGL (Blue Gene/L RAS):
//   1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO msg
//   unix-seconds date      node                time (µs, site-local)      node again          type comp.  level
//
//   Thunderbird (syslog-ng through the same collector):
//   1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: msg
//   unix-seconds date      node  BSD stamp      source      tag
//
// Both start with a digit, unix seconds and a dotted date at fixed places, so a line that is not
// one is turned away within a dozen characters. The raw Loghub files put an alert label before
// these fields (`-` or e.g. `KERNDTLB`); such a line does not start with a digit and is NOT taken
// for either layout: the label is ground truth, which never reaches a learner, and stripping it is
// the evaluation's job (`hpcLabel` tells it the line carries one).
import { digits, isDigit, monthAt } from './calendar.ts';
import { severityAt } from './severity.ts';

export interface HpcHeader {
  format: 'bgl' | 'thunderbird';
  /** event time, epoch ms: the unix seconds (UTC); BGL adds the milliseconds of its µs stamp */
  ts: number;
  hostAt: number;
  hostEnd: number;
  /** BGL: the component (KERNEL, APP, MMCS …); Thunderbird: -1, its tag follows at `next` */
  programAt: number;
  programEnd: number;
  /** BGL: the level on the 0-7 scale (severity.ts), -1 when the word is not a level */
  severity: number;
  /** BGL: where the content starts; Thunderbird: where the tag (or the text) starts */
  next: number;
}

/** The scanner's answer, reused: one HPC line costs no allocation here. */
const out: HpcHeader = {
  format: 'bgl',
  ts: 0,
  hostAt: 0,
  hostEnd: 0,
  programAt: -1,
  programEnd: -1,
  severity: -1,
  next: 0,
};

function tokenEnd(s: string, i: number): number {
  const e = s.indexOf(' ', i);
  return e < 0 ? s.length : e;
}

/**
 * Reads a BGL or Thunderbird header at s[i]. Returns the (reused) header, or undefined when the
 * line is neither; the header is valid until the next call.
 */
export function hpcHeader(s: string, i: number): HpcHeader | undefined {
  // unix seconds: 9 to 11 digits (1973 … 5138), then a blank
  let j = i;
  let secs = 0;
  while (isDigit(s.charCodeAt(j)) && j - i < 12) secs = secs * 10 + (s.charCodeAt(j++) - 48);
  if (j - i < 9 || j - i > 11 || s.charCodeAt(j) !== 32) return undefined;
  // `2005.06.03 `
  const d = j + 1;
  if (s.charCodeAt(d + 4) !== 46 || s.charCodeAt(d + 7) !== 46 || s.charCodeAt(d + 10) !== 32)
    return undefined;
  const mo = digits(s, d + 5, 2);
  const day = digits(s, d + 8, 2);
  if (digits(s, d, 4) < 0 || mo < 1 || mo > 12 || day < 1 || day > 31) return undefined;
  // the node
  const hostAt = d + 11;
  const hostEnd = tokenEnd(s, hostAt);
  if (hostEnd === hostAt || s.charCodeAt(hostEnd) !== 32) return undefined;
  const n = hostEnd + 1;
  out.hostAt = hostAt;
  out.hostEnd = hostEnd;
  out.ts = secs * 1000;
  return isDigit(s.charCodeAt(n)) ? bgl(s, n) : thunderbird(s, n);
}

/** After the node: `2005-06-03-15.42.50.675872 NODE TYPE COMPONENT LEVEL content`. */
function bgl(s: string, t: number): HpcHeader | undefined {
  if (
    s.charCodeAt(t + 4) !== 45 ||
    s.charCodeAt(t + 7) !== 45 ||
    s.charCodeAt(t + 10) !== 45 ||
    s.charCodeAt(t + 13) !== 46 ||
    s.charCodeAt(t + 16) !== 46
  )
    return undefined;
  const sec = digits(s, t + 17, 2);
  if (
    digits(s, t, 4) < 0 ||
    digits(s, t + 5, 2) < 0 ||
    digits(s, t + 8, 2) < 0 ||
    digits(s, t + 11, 2) < 0 ||
    digits(s, t + 14, 2) < 0 ||
    sec < 0
  )
    return undefined;
  let j = t + 19;
  // The stamp is site-local time (the unix seconds are the UTC instant); only its fraction is
  // taken, and only when it is the fraction of that same second.
  let ms = 0;
  if (s.charCodeAt(j) === 46) {
    // µs as written; up to nanoseconds accepted, the milliseconds kept
    j++;
    let k = 0;
    for (; k < 9 && isDigit(s.charCodeAt(j)); k++, j++) if (k < 3) ms = ms * 10 + (s.charCodeAt(j) - 48);
    if (k === 0) return undefined;
    for (; k < 3; k++) ms *= 10;
  }
  if (s.charCodeAt(j) !== 32) return undefined;
  if (sec === (out.ts / 1000) % 60) out.ts += ms;
  // node again, type (RAS, NULL), component, level: four non-empty tokens
  let a = j + 1;
  let b = 0;
  for (let k = 0; k < 4; k++) {
    b = tokenEnd(s, a);
    if (b === a) return undefined;
    if (k === 2) {
      out.programAt = a;
      out.programEnd = b;
    }
    if (k < 3) {
      if (s.charCodeAt(b) !== 32) return undefined;
      a = b + 1;
    }
  }
  out.severity = severityAt(s, a, b);
  let m = b;
  while (s.charCodeAt(m) === 32) m++;
  out.format = 'bgl';
  out.next = m;
  return out;
}

/** After the node: `Nov 9 12:01:01 SOURCE ` (a BSD stamp without a year, then where it came from). */
function thunderbird(s: string, t: number): HpcHeader | undefined {
  if (monthAt(s, t) < 0 || s.charCodeAt(t + 3) !== 32) return undefined;
  let j = t + 4;
  if (s.charCodeAt(j) === 32) j++; // `Nov  9`
  const d0 = j;
  while (isDigit(s.charCodeAt(j)) && j - d0 < 2) j++;
  if (j === d0 || s.charCodeAt(j) !== 32) return undefined;
  j++;
  if (
    s.charCodeAt(j + 2) !== 58 ||
    s.charCodeAt(j + 5) !== 58 ||
    digits(s, j, 2) < 0 ||
    digits(s, j + 3, 2) < 0 ||
    digits(s, j + 6, 2) < 0 ||
    s.charCodeAt(j + 8) !== 32
  )
    return undefined;
  // the source: `dn228/dn228`, `src@eadmin1`, `local@tbird-admin1`
  const src = j + 9;
  const srcEnd = tokenEnd(s, src);
  if (srcEnd === src) return undefined;
  let m = srcEnd;
  while (s.charCodeAt(m) === 32) m++;
  out.format = 'thunderbird';
  out.programAt = -1;
  out.programEnd = -1;
  out.severity = -1;
  out.next = m;
  return out;
}

/**
 * The label of a raw Loghub HPC line (`-`, `KERNDTLB`, `VAPI` …: the first field, before the unix
 * seconds), or undefined when the line has none. For evaluations: they must strip or refuse it.
 */
export function hpcLabel(line: string): string | undefined {
  const sp = line.indexOf(' ');
  if (sp < 1 || isDigit(line.charCodeAt(0))) return undefined;
  return hpcHeader(line, sp + 1) ? line.slice(0, sp) : undefined;
}
