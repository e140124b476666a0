// Hostile input for the fuzzers (fast-check arbitraries): any code point, control characters,
// lone surrogates, the protocol's own structural characters, invalid UTF-8, huge lines, plus
// near-valid shapes so the fuzzing reaches past the first check of each parser.
import fc from 'fast-check';

const STRUCTURE = [
  '=',
  ',',
  '(',
  ')',
  '#',
  '/',
  '..',
  '\\',
  '\\x',
  '\\n',
  ' ',
  '\t',
  '\r',
  '\u0000',
  '\u0085',
  '\u00ff',
  '\ud800',
  '\udc00',
  '\u2028',
  'é',
  '𝄞',
  '%s',
  '$(id)',
  '`id`',
  '__proto__',
  'constructor',
  '..%2f',
  '9'.repeat(25),
  '-1',
  '1e309',
];

/** Text that may hold anything a socket or a producer can send (no newline unless `lines`). */
export function hostileText(maxLength = 120, lines = false): fc.Arbitrary<string> {
  const t = fc.oneof(
    { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength }) },
    {
      weight: 3,
      arbitrary: fc.string({ unit: fc.constantFrom(...STRUCTURE), maxLength: Math.ceil(maxLength / 4) }),
    },
    { weight: 2, arbitrary: fc.string({ maxLength }) },
  );
  return lines ? t : t.map((s) => s.replace(/\n/g, ' '));
}

/** Bytes that need not be text at all. */
export function hostileBytes(maxLength = 200): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ maxLength }).map((a) => Buffer.from(a)) },
    { weight: 3, arbitrary: hostileText(maxLength, true).map((s) => Buffer.from(s, 'utf8')) },
    {
      // valid text with a few bytes broken (invalid UTF-8, NUL)
      weight: 2,
      arbitrary: fc
        .tuple(
          fc.string({ maxLength }),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        )
        .map(([s, flips]) => {
          const b = Buffer.from(s, 'utf8');
          for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
          return b;
        }),
    },
  );
}

/** A line far over any limit (kept rare: they are big). */
export function hugeText(min = 4_000, max = 70_000): fc.Arbitrary<string> {
  return fc
    .tuple(fc.integer({ min, max }), fc.constantFrom('x', 'é', '=', 'a=b,'))
    .map(([n, c]) => c.repeat(n));
}

/** `name(arg,arg,…)` calls of the given commands with hostile arguments, and other shapes. */
export function callLines(commands: readonly string[], extra: readonly string[] = []): fc.Arbitrary<string> {
  const name = fc.oneof(fc.constantFrom(...commands, ...extra), hostileText(20));
  const arg = fc.oneof(
    hostileText(30),
    fc.nat().map(String),
    fc.bigInt({ min: 0n, max: 1n << 70n }).map(String),
    fc.constantFrom('none', '0', '3', '-1', '', ' 4 ', '1e3', '0x10', 'NaN'),
  );
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.tuple(name, fc.array(arg, { maxLength: 5 })).map(([n, a]) => `${n}(${a.join(',')})`),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(name, fc.array(arg, { maxLength: 4 })).map(([n, a]) => [n, ...a].join(' ')),
    },
    { weight: 1, arbitrary: fc.tuple(name, hostileText(40)).map(([n, r]) => `${n}(${r}`) },
    { weight: 2, arbitrary: hostileText(80) },
  );
}

/** Shrinking-free sampling with a seed the report can name. */
export function sample<T>(arb: fc.Arbitrary<T>, n: number, seed: number): T[] {
  return fc.sample(arb, { numRuns: n, seed });
}

export const SEED = Number(process.env.VIRGO_FUZZ_SEED ?? Date.now() % 2_147_483_647);

/** Counts of outcomes by reason. */
export class Tally {
  readonly counts: Record<string, number> = {};
  add(reason: string, n = 1): void {
    this.counts[reason] = (this.counts[reason] ?? 0) + n;
  }
  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
  without(...keys: string[]): Record<string, number> {
    return Object.fromEntries(Object.entries(this.counts).filter(([k]) => !keys.includes(k)));
  }
}

const KEY_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-'.split('');

/** A key the feeder accepts ([A-Za-z0-9_.:/-]), quicker to make than fc.stringMatching. */
export function validKey(minLength = 1, maxLength = 16): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(...KEY_CHARS), minLength, maxLength });
}
