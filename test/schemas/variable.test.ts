// The variable contract: one definition of hosts, keys, values and the readers, used by every stage.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  confValueProblem,
  HOST_RE,
  hostProblem,
  isValidHost,
  isValidKey,
  isValidValue,
  joinHostKey,
  KEY_RE,
  keyProblem,
  MAX_VALUE_BYTES,
  parseBool,
  parseHostKey,
  parseNumber,
  valueProblem,
} from '../../schemas/variable.ts';

describe('hosts, keys and values (docs/design.md §5.3)', () => {
  it('accepts the key alphabet and refuses the rest with a reason', () => {
    for (const k of ['k1', 'match', 'MaxNetworkBandwidth', 'a.b:c/d-e_f', 'x'.repeat(128)]) {
      expect(keyProblem(k), k).toBeUndefined();
    }
    for (const k of ['', 'k 1', 'ключ', 'a=b', 'x'.repeat(129), 'k\n', 'k#']) {
      expect(keyProblem(k)?.reason, k).toBe('invalid-key');
    }
  });

  it('hosts: the key alphabet minus the slash that separates host from key', () => {
    for (const h of ['edge-1', 'pxrc-1', 'a.b:c_d', 'x'.repeat(128)])
      expect(hostProblem(h), h).toBeUndefined();
    for (const h of ['', 'a/b', 'a b', 'x'.repeat(129), 'é']) {
      expect(hostProblem(h)?.reason, h).toBe('invalid-host');
    }
  });

  it('values: printable UTF-8 up to 1000 bytes, no CR/LF or other controls (C0, DEL, C1), no lone surrogates', () => {
    expect(valueProblem('')).toBeUndefined();
    expect(valueProblem('True')).toBeUndefined();
    expect(valueProblem('{1, 2} = set with spaces, commas and é')).toBeUndefined();
    expect(valueProblem('é'.repeat(500))).toBeUndefined(); // 1000 bytes
    expect(valueProblem('é'.repeat(501))).toMatchObject({ reason: 'overlong', message: /1000 bytes/ });
    for (const v of ['a\nb', 'a\rb', 'tab\there', 'nul\0', 'del\u007f', 'c1\u0085', 'lone\ud800']) {
      expect(valueProblem(v)?.reason, JSON.stringify(v)).toBe('invalid-value');
    }
    expect(valueProblem('a\tb')?.message).toMatch(/control character U\+0009/);
  });

  it('the conf file (and so every learner) refuses commas on top of the wire rules', () => {
    expect(confValueProblem('a;b')).toBeUndefined();
    expect(confValueProblem('{1, 2}')).toMatchObject({
      reason: 'comma',
      message: /separates pairs with commas/,
    });
    expect(confValueProblem('a\nb')?.reason).toBe('invalid-value');
  });

  it('property: the loop checks (hot paths) agree with the regex definitions', () => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the definition under test
    const controls = /[\u0000-\u001f\u007f-\u009f]/;
    const reference = (v: string) =>
      !controls.test(v) && !/[\uD800-\uDFFF]/u.test(v) && Buffer.byteLength(v) <= MAX_VALUE_BYTES;
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({
        unit: fc.constantFrom('a', 'é', '\u0085', '\ud83d', '\ude00', '😀', '\t', '中'),
        maxLength: 600,
      }),
      fc.stringMatching(/^[A-Za-z0-9_.:/ -]{0,140}$/),
    );
    fc.assert(
      fc.property(text, (s) => {
        expect(isValidKey(s)).toBe(KEY_RE.test(s));
        expect(isValidHost(s)).toBe(HOST_RE.test(s));
        expect(isValidValue(s)).toBe(reference(s));
        expect(valueProblem(s) === undefined).toBe(reference(s));
      }),
      { numRuns: 400 },
    );
  });

  it('host/key splits at the first slash (keys may hold more) and joins back', () => {
    expect(parseHostKey('edge-1/ufw.top_src_ip')).toEqual({
      ok: true,
      host: 'edge-1',
      key: 'ufw.top_src_ip',
    });
    expect(parseHostKey('h/a/b')).toEqual({ ok: true, host: 'h', key: 'a/b' });
    expect(joinHostKey('h', 'a/b')).toBe('h/a/b');
    expect(parseHostKey('nohost')).toMatchObject({ ok: false, reason: 'invalid-key', message: /host\/key/ });
    expect(parseHostKey('/k')).toMatchObject({ ok: false, reason: 'invalid-host' });
    expect(parseHostKey('h/')).toMatchObject({ ok: false, reason: 'invalid-key' });
    expect(parseHostKey('h h/k')).toMatchObject({ ok: false, reason: 'invalid-host' });
  });
});

describe('readers (one accepted set for the gate, the table readers, drivers and devices)', () => {
  it('numbers: decimal with optional sign, fraction and exponent; spaces around ignored', () => {
    const ok: [string, number][] = [
      ['255', 255],
      ['-3', -3],
      ['+4', 4],
      ['0.75', 0.75],
      ['.5', 0.5],
      ['5.', 5],
      ['1e3', 1000],
      ['2.5E-1', 0.25],
      [' 250 ', 250],
      ['010', 10],
    ];
    for (const [t, n] of ok) expect(parseNumber(t), t).toBe(n);
  });

  it('numbers: no hex/octal/binary prefixes (kstrtol base 0 would read them otherwise), no words, nothing empty', () => {
    for (const t of [
      '0x10',
      '0o7',
      '0b1',
      'Infinity',
      '-Infinity',
      'NaN',
      '',
      ' ',
      '1_000',
      '1,5',
      '5 kB',
      '\t5',
      '1e400',
    ]) {
      expect(parseNumber(t), JSON.stringify(t)).toBeUndefined();
    }
    expect(parseNumber(undefined)).toBeUndefined();
  });

  it("booleans: kstrtobool's spellings as whole words, any case (the original wrote Python's True/False)", () => {
    for (const t of ['1', 'y', 'Y', 'yes', 'YES', 't', 'T', 'true', 'True', 'TRUE', 'on', 'On', ' true ']) {
      expect(parseBool(t), t).toBe(true);
    }
    for (const t of ['0', 'n', 'N', 'no', 'f', 'F', 'false', 'False', 'off', 'OFF']) {
      expect(parseBool(t), t).toBe(false);
    }
    for (const t of ['yellow', 'maybe', '', '2', 'of', 'tru', '\ttrue', undefined]) {
      expect(parseBool(t), JSON.stringify(t)).toBeUndefined();
    }
  });
});
