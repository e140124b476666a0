import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonSyntaxError, parseJsonWithPositions } from '../../runtime/json-positions.ts';

describe('JSON with positions', () => {
  it('reads what JSON.parse reads, for any JSON text (compact or indented)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 2, '\t'), (v, indent) => {
        const text = JSON.stringify(v, null, indent);
        expect(parseJsonWithPositions(text).value).toEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses what JSON.parse refuses', () => {
    for (const bad of [
      '',
      '{',
      '{"a":1,}',
      '[1,]',
      "{'a':1}",
      '01',
      '1.',
      '"\t"',
      'nul',
      '{"a" 1}',
      '[1] 2',
      '"\\x"',
    ]) {
      expect(() => JSON.parse(bad)).toThrow();
      expect(() => parseJsonWithPositions(bad)).toThrow(JsonSyntaxError);
    }
  });

  it('gives each member the line of its key, and an error its line and column', () => {
    const text =
      '{\n  "a": 1,\n  "rules": [\n    { "name": "x" },\n    {\n      "name": "y"\n    }\n  ]\n}\n';
    const doc = parseJsonWithPositions(text);
    expect(doc.lineOf('/a')).toBe(2);
    expect(doc.lineOf('/rules/0/name')).toBe(4);
    expect(doc.lineOf('/rules/1')).toBe(5);
    expect(doc.lineOf('/rules/1/name')).toBe(6);
    // a pointer to something absent falls back to its nearest ancestor
    expect(doc.lineOf('/rules/1/missing')).toBe(5);
    const err = (() => {
      try {
        parseJsonWithPositions('{\n  "a": 1,\n  "b": tru\n}');
      } catch (e) {
        return e as JsonSyntaxError;
      }
    })();
    expect(err?.position).toEqual({ line: 3, column: 8 });
  });

  it('refuses a duplicate key (JSON.parse would keep the last one silently), at its line', () => {
    expect(() => parseJsonWithPositions('{\n"a": 1,\n"a": 2\n}')).toThrow(
      'line 3, column 1: duplicate key "a"',
    );
  });
});
