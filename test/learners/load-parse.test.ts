// parseLoadLine is a character scan standing in for two regular expressions; it must read every
// message exactly as they did: edge cases by hand, then many random messages over an alphabet
// made of the characters that matter (word characters, `=`, spaces of every kind, terminators).
import { describe, expect, it } from 'vitest';
import { isSpaceCode } from '../../learners/char-class.ts';
import { type LoadSample, parseLoadLine } from '../../learners/load.ts';
import { Rng } from '../../learners/window.ts';

// the reading before the scan, verbatim
function byRegex(message: string, host: string): LoadSample | undefined {
  const m = /virgo_load:\s*(.*)$/.exec(message);
  if (!m) return undefined;
  const kv: Record<string, string> = {};
  for (const x of m[1]!.matchAll(/(\w+)=(\S+)/g)) kv[x[1]!] = x[2]!;
  const num = (s: string | undefined) => {
    if (s === undefined) return undefined;
    const n = Number(s);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  const out: LoadSample = { node: kv.node ?? host };
  const load = num(kv.load);
  const runq = num(kv.runq);
  const execMs = num(kv.exec_ms);
  if (load !== undefined) out.load = load;
  if (runq !== undefined) out.runq = runq;
  if (execMs !== undefined) out.execMs = execMs;
  return out;
}

describe('parseLoadLine (scan) against the regular expressions', () => {
  it('reads the edge cases as they did', () => {
    const cases = [
      'virgo_load: node=n1 load=1.5 runq=3 exec_ms=120',
      'virgo_load:node=n1',
      'virgo_load:',
      'x virgo_load: load=1 load=2 node=a node=b',
      'virgo_load: load= 3 runq=4',
      'virgo_load: load=',
      'virgo_load: =1 load==2 node=a=b',
      'virgo_load: xload=1 node_x=2 nodes=3 exec_ms=0x10',
      'virgo_load: load=1\tnode=t\u00a0runq=2\u3000exec_ms=Infinity',
      'virgo_load: load=1\nnode=z',
      'virgo_load:\nvirgo_load: node=q',
      'virgo_load: node=a\r',
      'virgo_load: node=a\u2028 virgo_load: node=b',
      'virgo_load: __proto__=x constructor=y node=é load=1e3',
      'virgo_load: load=-0 runq=  exec_ms=1.5e2x',
      'pre virgo_load virgo_load: runq=7',
      'virgo_load: nöde=1 node=\ufeffx',
    ];
    for (const m of cases) expect(parseLoadLine(m, 'h'), JSON.stringify(m)).toEqual(byRegex(m, 'h'));
  });

  it('reads random messages as they did', () => {
    const rng = new Rng(7);
    const parts = [
      'node',
      'load',
      'runq',
      'exec_ms',
      'x',
      '_',
      '=',
      '==',
      ' ',
      '  ',
      '\t',
      '\u00a0',
      '\u2003',
      '\n',
      '\r',
      '\u2028',
      '1',
      '2.5',
      '-1',
      'abc',
      'virgo_load:',
      'é',
      '\u0085',
      '#',
    ];
    for (let t = 0; t < 20_000; t++) {
      let m = rng.next() < 0.9 ? 'virgo_load:' : '';
      const k = rng.int(12);
      for (let i = 0; i < k; i++) m += parts[rng.int(parts.length)];
      if (rng.next() < 0.5) m = parts[rng.int(parts.length)] + m;
      expect(parseLoadLine(m, 'h'), JSON.stringify(m)).toEqual(byRegex(m, 'h'));
    }
  });
});

describe('isSpaceCode', () => {
  it('is \\s on every code unit', () => {
    for (let c = 0; c < 0x10000; c++)
      expect(isSpaceCode(c), c.toString(16)).toBe(/\s/.test(String.fromCharCode(c)));
  });
});
