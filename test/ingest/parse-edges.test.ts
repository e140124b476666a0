// Truncated and edge lines: every prefix of a line of each layout (a stamp cut at every position,
// a line ending right after a month name, a PRI, a `[`), read exactly as main read them before
// the calendar readers and the parser's entry reads were bounded (ingest/calendar.ts codeAt). The expected
// readings in fixtures/parse-edges.jsonl were captured by running main's parseLine on these inputs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codeAt, digits, monthAtAnyCase } from '../../ingest/calendar.ts';
import { type ParsedLine, parseLine } from '../../ingest/index.ts';

const NOW = Date.UTC(2024, 5, 1);

const FULL = [
  'Jan  2 03:04:05 host kernel: [ 1234.567890] usb 1-1: new device',
  '*Oct 07 03:10:04.123: host prog[12]: text',
  'Apr 15 2007 21:28:13 host prog: x',
  'Apr 15 21:28:13 CST 2007: host',
  'Aug 29 02:00:00. host',
  '2024-01-02T03:04:05.123456+01:00 host app[1]: m',
  '2024-01-02 03:04:05Z host',
  '<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 [exampleSDID@32473 iut="3" eventSource="App"] msg',
  '1 2020-05-22T14:59:09.250-03:00 host app - - - m',
  '[ 1234.567890] host kernel: x',
  '[Tue Jan  2 03:04:05 2024] usb 1-1: y',
  'kern  :info  : [    1.234567] msg',
  '6,550,12175490619,-;a.out[4054]: segfault at 0',
  '<6>[ 1.5] hello',
  '<0>91: *Oct 07 03:10:04: host x',
  '1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO msg',
  '1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: msg',
  'Jan  2 03:04:05 host -- root[2421]: ROOT LOGIN',
  'Jan  2 03:04:05 host syslogd 1.4.1: restart.',
  'Jan  2 03:04:05 Message forwarded from h1: prog[3]: m',
  'Jan  2 03:04:05 fe80::1 prog[3]: m',
  '\ufeffNOV  2 03:04:05 host x',
];
const EXTRA = ['', ' ', '\t', '\ufeff', '<', '<1', '<191>', 'Jan', 'jan ', 'Dec', 'DEC 1', '[', '[ ', '[1'];
const MORE = ['[1.', '[1.2', '[1.2]', 'kernel:', '{', '{"MESSAGE":"[ 1.5] x"}', '9', '1 ', 'x:'];

function inputs(): string[] {
  const out = new Set<string>([...EXTRA, ...MORE]);
  for (const l of FULL) for (let k = 0; k <= l.length; k++) out.add(l.slice(0, k));
  return [...out];
}

const KEYS = [
  'format',
  'ts',
  'hasTime',
  'mono',
  'host',
  'program',
  'pid',
  'facility',
  'severity',
  'message',
  'messageAt',
  'family',
  'fields',
] as const;
type Row = [string, ...unknown[]];
// one JSON value a line: the note (how it was made, what a row holds), then a row per input
const fixture = {
  rows: readFileSync(new URL('./fixtures/parse-edges.jsonl', import.meta.url), 'utf8')
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Row),
};

describe('cut and edge lines', () => {
  it('the fixture covers every prefix of every layout', () => {
    expect(fixture.rows.map((r) => r[0])).toEqual(inputs());
  });

  it('read as main read them', () => {
    let compared = 0;
    for (const [input, ...values] of fixture.rows) {
      if (values[1] === 'NaN') continue; // below
      const expected = Object.fromEntries(KEYS.map((k, i) => [k, values[i]])) as unknown as ParsedLine;
      expected.message ??= input.slice(expected.messageAt);
      expect(parseLine(input, { now: NOW, host: 'dflt' }), JSON.stringify(input)).toEqual(expected);
      compared++;
    }
    expect(compared).toBeGreaterThan(800);
  });

  it('a clock cut before its seconds is no stamp: the line stays bare (main gave it a NaN time)', () => {
    const cut = fixture.rows.filter((r) => r[2] === 'NaN').map((r) => r[0]);
    // every layout whose clock can be cut at the end of the line: BSD, ISO, Cisco, zone offsets
    expect(cut).toContain('Jan  2 03:04:0');
    expect(cut).toContain('2024-01-02T03:04:05.123456+01:0');
    expect(cut.length).toBeGreaterThanOrEqual(20);
    for (const input of cut) {
      const p = parseLine(input, { now: NOW, host: 'dflt' });
      // after a PRI, `91:` is an RFC 3164 tag like any other (Cisco's message number)
      const cisco = input.startsWith('<0>91: ');
      expect(p, JSON.stringify(input)).toMatchObject({
        format: 'bare',
        ts: NOW,
        hasTime: false,
        host: 'dflt',
        program: cisco ? '91' : null,
        message: cisco ? input.slice(7) : input.replace(/^\ufeff/, ''),
      });
    }
  });
});

describe('reading past the end', () => {
  it('codeAt is -1 outside the string, the code unit inside', () => {
    expect(codeAt('ab', 0)).toBe(97);
    expect(codeAt('ab', 1)).toBe(98);
    expect(codeAt('ab', 2)).toBe(-1);
    expect(codeAt('ab', -1)).toBe(-1);
    expect(codeAt('', 0)).toBe(-1);
  });

  it('digits and month names cut by the end of the line are none', () => {
    expect(digits('12', 0, 2)).toBe(12);
    expect(digits('1', 0, 2)).toBe(-1);
    expect(digits('', 0, 1)).toBe(-1);
    expect(monthAtAnyCase('Ja', 0)).toBe(-1);
    expect(monthAtAnyCase('JAN', 0)).toBe(0);
  });

  it('junk lines do not change how the normal lines after them are read', () => {
    const normal = FULL.map((l) => parseLine(l, { now: NOW }));
    // deterministic junk: every short run of bytes of a xorshift stream, decoded as UTF-8
    let x = 2463534242;
    for (let n = 0; n < 5000; n++) {
      const len = n % 40;
      const b = Buffer.alloc(len);
      for (let k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[k] = x & 0xff;
      }
      parseLine(b.toString('utf8'), { now: NOW });
    }
    expect(FULL.map((l) => parseLine(l, { now: NOW }))).toEqual(normal);
  });
});
