// Context lines: the lines a kernel prints AROUND an event to describe it, not events of their own.
//
// A crash report is one event line followed by a dump of machine state: Blue Gene/L prints
// `instruction address: 0x00004ed8`, `machine check: i-fetch......................0`,
// `lr:00004ed8 cr:28000022 xer:20000000 ctr:00000000`, `special purpose registers:`; a Linux oops
// prints `RIP: 0010:func+0x12/0x30`, `RAX: 0000… RBX: ffff…`, `Call Trace:`, ` <TASK>`,
// ` func+0x1a/0x30`, `Code: 48 89 …`. Every such line carries the level of the event it belongs to
// (FATAL, KERN_ALERT, or the `error`/`Call Trace` a lexical reading finds), so counting each as an
// alarm multiplies one event into a dozen, and a dump printed for a harmless reason (a user job
// that crashed) looks like an incident. The learner discounts the severity evidence of these lines
// (anomaly.ts); their statistics (new, bursty) still count.
//
// The test is the SHAPE of the line, not its words, so it holds for formats not seen here: a short
// label followed by a machine value (hex, a number, a bit mask) and nothing else; dotted leaders
// (`name.....value`); a run of `name:value` / `name=value` register pairs; a section header that
// is a short label and a colon alone; a stack frame `symbol+0xOFF/0xLEN`; a `Code:` byte run; a
// row of hex words; a trace marker (`<TASK>`, `---[ end trace … ]---`). An event line keeps words
// after its label (`ciod: failed to read message prefix on control stream (CioStream socket to
// 172.16.96.116:33569`, `Out of memory: Killed process 123 (java) total-vm:…`), so it is not one.

export type ContextShape =
  | 'register'
  | 'leaders'
  | 'pairs'
  | 'header'
  | 'frame'
  | 'code'
  | 'hexrow'
  | 'marker';

// A machine value: 0x-hex, a bare hex or decimal number, a segment:offset pair, a `[<addr>]`,
// optionally with a parenthesised suffix (`0000000000000000(0000)`, `1 (512M)`).
// A bare hex word counts from 8 digits, or from 4 with a decimal digit in it (not `added`, `face`).
const VALUE = String.raw`(?:-?0x[0-9a-fA-F]+|-?\d+|[0-9a-f]{8,}|[0-9A-F]{8,}|(?=[0-9a-f]*\d)[0-9a-f]{4,7}|(?=[0-9A-F]*\d)[0-9A-F]{4,7}|[0-9a-fA-F]{4}:(?:0x)?[0-9a-fA-F]+|\[<[0-9a-fA-F]+>\])(?:\s?\([0-9A-Za-z]{1,8}\))?`;
// A label word: starts with a letter or a digit, no colon, no run of dots.
const WORD = String.raw`[A-Za-z0-9(][\w()'/,#&+-]*`;
// A label is one to five words (a name, not a sentence).
const LABEL = String.raw`[A-Za-z][\w()'/,#&+-]*(?:\s+${WORD}){0,4}`;
// A stack frame: `? func+0x1a/0x30 [module]`, optionally after `[<addr>]` or `0010:`.
const FRAME = String.raw`(?:\[<[0-9a-fA-F]+>\]\s*)?(?:\?\s+)?(?:[0-9a-fA-F]{4}:)?(?:\[<[0-9a-fA-F]+>\]\s*)?[\w.$]+\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+(?:\s+\[[\w-]+\])?`;

// Each shape with a test that every line of it passes (a character it cannot lack): most lines are
// events, and turning them away before the regular expressions (leaders' backtracks over up to six
// words) costs less. A prefilter only skips a test that would fail.
const hasSep = (m: string) => m.includes(':') || m.includes('=');
// the last character of a VALUE: a hex digit, the `]` of `[<addr>]` or the `)` of a suffix
// (character tests, not one-character regular expressions: these run on every line)
export const endsInValue = (m: string): boolean => {
  const c = m.charCodeAt(m.length - 1);
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) || c === 93 || c === 41;
};
/** the other ending of a leaders line, `/[A-Za-z]\.[01]$/`: a bit after one dot (`cache block touch.0`) */
export const letterBitEnd = (m: string): boolean => {
  const n = m.length;
  if (n < 3) return false;
  const bit = m.charCodeAt(n - 1);
  const l = m.charCodeAt(n - 3) | 32;
  return (bit === 48 || bit === 49) && m.charCodeAt(n - 2) === 46 && l >= 97 && l <= 122;
};
const hasSepEndsInValue = (m: string) => endsInValue(m) && hasSep(m);
const SHAPES: [ContextShape, RegExp, ((m: string) => boolean)?][] = [
  // `Stack: ffff8881 00000000 …`, `fpr0=0xffffffff 0x00000000 0x… 0x…`
  ['hexrow', new RegExp(String.raw`^(?:${LABEL}\s*[:=]\s*)?${VALUE}(?:\s+${VALUE}){3,}$`), endsInValue],
  // `instruction address: 0x00004ed8`, `DDR failing data registers: 0x… 0x…`, `CR2: 0000…`
  ['register', new RegExp(String.raw`^${LABEL}\s*[:=]\s*${VALUE}(?:\s+${VALUE}){0,3}$`), hasSepEndsInValue],
  // `machine check: i-fetch......................0`, `floating point instr. enabled.....0`,
  // `size of DDR we are caching...............1 (512M)`, a bit after one dot (`cache block touch.0`,
  // not `core.2275`); at most six words before the value: a name, not a sentence ending in a number
  [
    'leaders',
    new RegExp(String.raw`^(?=[A-Za-z])(?:\S+\s+){0,5}\S*?(?:\.{2,}\s*${VALUE}|(?<=[A-Za-z])\.[01])$`),
    (m) => m.includes('..') || letterBitEnd(m),
  ],
  // `lr:00004ed8 cr:28000022 …`, `RAX: 0000… RBX: ffff…`, `CPU: 3 PID: 1234 Comm: …`, `r00=0x0 r01=0x…`
  [
    'pairs',
    new RegExp(String.raw`^[A-Za-z][\w.-]*\s*[:=]\s*${VALUE}\s+[A-Za-z][\w.-]*\s*[:=]\s*${VALUE}(?:\s|$)`),
    hasSep,
  ],
  // `special purpose registers:`, `Call Trace:`, `Floating Point Registers:`
  ['header', /^[A-Za-z][\w'-]*(?:\s+[A-Za-z][\w'-]*){0,3}:$/, (m) => m.endsWith(':')],
  // ` ? __die+0x23/0x70`, `RIP: 0010:func+0x12/0x30`, `PC is at foo+0x10/0x20`
  ['frame', new RegExp(String.raw`^(?:[A-Za-z]\w*:?\s+){0,3}${FRAME}$`), (m) => m.includes('+0x')],
  // `Code: 48 89 e5 <0f> 0b …`
  [
    'code',
    /^Code:(?:\s+(?:<[0-9a-f]{2,8}>|\([0-9a-f]{2,8}\)|[0-9a-f]{2,8})){4,}$/,
    (m) => m.startsWith('Code:'),
  ],
  // ` <TASK>`, `</IRQ>`, `---[ end trace 0000000000000000 ]---`
  ['marker', /^(?:<\/?[A-Z]{2,6}>|-{2,}\[ .* \]-{2,})$/, (m) => m[0] === '<' || m[0] === '-'],
];

/** whitespace that normalising changes: a tab, a newline, or a run of spaces (measured: this
 * regular expression beats a character scan in JavaScript by about 2x on kernel lines) */
const IRREGULAR_SPACE = /[^\S ]| {2}/;

/** The context shape of a message, or null when it reads as an event. */
export function contextShape(message: string): ContextShape | null {
  const t = message.trim();
  // most messages are spaced by single spaces, which replacing each by itself copied per line
  const m = IRREGULAR_SPACE.test(t) ? t.replace(/\s+/g, ' ') : t;
  if (m.length === 0 || m.length > 400) return null;
  for (const [shape, re, may] of SHAPES) if ((!may || may(m)) && re.test(m)) return shape;
  return null;
}
