// Calendar fields at a position of a string (digits, month and weekday names), without a slice or
// a hash lookup: the parser and the masker ask this for many tokens of every line.

export const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/**
 * The UTF-16 code unit at s[i], -1 outside the string. `charCodeAt` past the end returns NaN: V8
 * then de-optimises the reader ("out of bounds") and the comparers the NaN reaches ("not a Smi"),
 * and digits() returned NaN, which let a clock cut before its seconds pass as a stamp with a NaN
 * time. Used by the calendar readers and the parser's once-a-line reads; not in the scanners' loops,
 * where a check on every character cost normal lines more (12-25%) than the de-optimisation did.
 */
export const codeAt = (s: string, i: number): number => (i >= 0 && i < s.length ? s.charCodeAt(i) : -1);

/** The value of the n digits at s[i..], else -1. */
export function digits(s: string, i: number, n: number): number {
  let v = 0;
  for (let k = 0; k < n; k++) {
    const c = codeAt(s, i + k);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

/** 0-11 for `Jan`…`Dec` at s[i..i+2], else -1. */
export function monthAt(s: string, i: number): number {
  const a = codeAt(s, i);
  const b = codeAt(s, i + 1);
  const c = codeAt(s, i + 2);
  switch (a) {
    case 74: // J
      if (b === 97 && c === 110) return 0; // Jan
      if (b === 117) return c === 110 ? 5 : c === 108 ? 6 : -1; // Jun Jul
      return -1;
    case 70: // F
      return b === 101 && c === 98 ? 1 : -1; // Feb
    case 77: // M
      return b === 97 ? (c === 114 ? 2 : c === 121 ? 4 : -1) : -1; // Mar May
    case 65: // A
      if (b === 112 && c === 114) return 3; // Apr
      return b === 117 && c === 103 ? 7 : -1; // Aug
    case 83: // S
      return b === 101 && c === 112 ? 8 : -1; // Sep
    case 79: // O
      return b === 99 && c === 116 ? 9 : -1; // Oct
    case 78: // N
      return b === 111 && c === 118 ? 10 : -1; // Nov
    case 68: // D
      return b === 101 && c === 99 ? 11 : -1; // Dec
    default:
      return -1;
  }
}

/** True for `Mon`…`Sun` at s[i..i+2]. */
export function isWeekdayAt(s: string, i: number): boolean {
  const a = codeAt(s, i);
  const b = codeAt(s, i + 1);
  const c = codeAt(s, i + 2);
  switch (a) {
    case 77: // M
      return b === 111 && c === 110; // Mon
    case 84: // T
      return (b === 117 && c === 101) || (b === 104 && c === 117); // Tue Thu
    case 87: // W
      return b === 101 && c === 100; // Wed
    case 70: // F
      return b === 114 && c === 105; // Fri
    case 83: // S
      return b === 97 ? c === 116 : b === 117 && c === 110; // Sat Sun
    default:
      return false;
  }
}

/**
 * 0-11 for a month name at s[i..i+2] in any case (`Jan`, `JAN`, `jan`: network gear writes upper
 * case), else -1. The masker keeps the exact-case monthAt: `MAY` in a message is a word.
 */
export function monthAtAnyCase(s: string, i: number): number {
  const a = codeAt(s, i);
  const b = codeAt(s, i + 1);
  const c = codeAt(s, i + 2);
  if (!isLetter(a) || !isLetter(b) || !isLetter(c)) return -1;
  // one number per name: the three lower-case letters
  const key = ((a | 0x20) << 16) | ((b | 0x20) << 8) | (c | 0x20);
  for (let m = 0; m < 12; m++) if (MONTH_KEYS[m] === key) return m;
  return -1;
}

const MONTH_KEYS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].map(
  (n) => (n.charCodeAt(0) << 16) | (n.charCodeAt(1) << 8) | n.charCodeAt(2),
);

const isLetter = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

export const isLeapYear = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days in month m (0-11) of year y. */
export function daysInMonth(y: number, m: number): number {
  return m === 1 && isLeapYear(y) ? 29 : DAYS[m]!;
}
