// contextShape's whitespace test is a character scan standing in for `/[^\S ]| {2}/`: it must say
// the same of every message (edge cases by hand, random strings over the characters that matter),
// and isSpaceCode must be `\s` on every code unit.
import { describe, expect, it } from 'vitest';
import { isSpaceCode } from '../../learners/char-class.ts';
import { hasIrregularSpace } from '../../learners/context-line.ts';
import { Rng } from '../../learners/window.ts';

const OLD = /[^\S ]| {2}/;

describe('hasIrregularSpace against /[^\\S ]| {2}/', () => {
  it('agrees on the edge cases', () => {
    const cases = [
      '',
      ' ',
      '  ',
      'a',
      'a b',
      'a  b',
      ' a ',
      'a\tb',
      '\n',
      'a\rb',
      'a\u00a0b',
      'a\u3000',
      '\ufeffx',
      'a\u2028',
      'a\u0085b',
      'a\u180eb',
      'a \u200b b',
      'x ',
      'x  ',
      'é è',
      '\u2000',
      '\v\f',
    ];
    for (const m of cases) expect(hasIrregularSpace(m), JSON.stringify(m)).toBe(OLD.test(m));
  });

  it('agrees on random strings', () => {
    const rng = new Rng(11);
    const alphabet = ['a', ' ', ' ', '\t', '\n', '\u00a0', '\u2009', '\u0085', ':', '0', '\u200b'];
    for (let t = 0; t < 20_000; t++) {
      let m = '';
      for (let i = rng.int(10); i > 0; i--) m += alphabet[rng.int(alphabet.length)];
      expect(hasIrregularSpace(m), JSON.stringify(m)).toBe(OLD.test(m));
    }
  });

  it('isSpaceCode is \\s on every code unit', () => {
    for (let c = 0; c < 0x10000; c++)
      expect(isSpaceCode(c), c.toString(16)).toBe(/\s/.test(String.fromCharCode(c)));
  });
});
