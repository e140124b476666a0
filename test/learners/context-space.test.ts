// contextShape's prefilters are character tests standing in for one-character and end-anchored
// regular expressions: they must say the same of every message (edge cases by hand, random
// strings over the characters that matter).
import { describe, expect, it } from 'vitest';
import { endsInValue, letterBitEnd } from '../../learners/context-line.ts';
import { Rng } from '../../learners/window.ts';

const VALUE_END = /[0-9a-fA-F\])]/;
const LETTER_BIT_END = /[A-Za-z]\.[01]$/;

describe('contextShape prefilters against the regular expressions', () => {
  it('agree on the edge cases', () => {
    const cases = [
      'a.0',
      'a.1',
      'Z.1',
      'a.2',
      '@.0',
      '`.0',
      '[.1',
      '{.1',
      'é.0',
      '.0',
      '0',
      'x a.0',
      'a.0\n',
      'a.01',
      'aa.1',
      'a..1',
      'touch.0',
      'core.2275',
      'x]',
      'x)',
      'x}',
      'xg',
      'xG',
      'xF',
      'x9',
      'x\u0660',
    ];
    for (const m of cases) {
      expect(letterBitEnd(m), JSON.stringify(m)).toBe(LETTER_BIT_END.test(m));
      expect(endsInValue(m), JSON.stringify(m)).toBe(VALUE_END.test(m[m.length - 1]!));
    }
  });

  it('agree on random strings and on every last character', () => {
    const rng = new Rng(11);
    const alphabet = ['a', 'Z', '.', '0', '1', '2', ' ', '\n', '@', '`', 'é', ']', ')'];
    for (let t = 0; t < 20_000; t++) {
      let m = '';
      for (let i = 1 + rng.int(6); i > 0; i--) m += alphabet[rng.int(alphabet.length)];
      expect(letterBitEnd(m), JSON.stringify(m)).toBe(LETTER_BIT_END.test(m));
    }
    for (let c = 0; c < 0x10000; c++) {
      const m = `x${String.fromCharCode(c)}`;
      expect(endsInValue(m), c.toString(16)).toBe(VALUE_END.test(m[1]!));
      const b = `${String.fromCharCode(c)}.1`;
      expect(letterBitEnd(b), c.toString(16)).toBe(LETTER_BIT_END.test(b));
    }
  });
});
