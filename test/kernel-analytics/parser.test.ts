import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvLineParser, type KvRejectReason, parseKvLine } from '../../kernel-analytics/index.ts';
import { LineBatch } from '../../kernel-analytics/line-batch.ts';
import { MAX_VALUE_BYTES } from '../../schemas/variable.ts';
import { piecesAt } from '../helpers/pieces.ts';

function parseAll(chunks: Buffer[], qualified = false) {
  const pairs: [string, string][] = [];
  const hosts: (string | undefined)[] = [];
  const rejects: KvRejectReason[] = [];
  const notices: string[] = [];
  const p = new KvLineParser(
    (k, v, h) => {
      pairs.push([k, v]);
      hosts.push(h);
    },
    (r) => rejects.push(r),
    { qualified, onNotice: (t) => notices.push(t) },
  );
  for (const c of chunks) p.push(c);
  p.end();
  return { pairs, hosts, rejects, notices, blank: p.blank, ignored: p.ignored };
}

describe('parseKvLine (docs/design.md §5.3)', () => {
  it('parseKvLine splits at the first = and names what is wrong', () => {
    expect(parseKvLine('k1=v1')).toEqual({ ok: true, key: 'k1', value: 'v1' });
    expect(parseKvLine('k=a=b\r')).toEqual({ ok: true, key: 'k', value: 'a=b' });
    expect(parseKvLine('k=')).toEqual({ ok: true, key: 'k', value: '' });
    expect(parseKvLine('novalue')).toMatchObject({ ok: false, reason: 'missing-equals' });
    expect(parseKvLine('k 1=v')).toMatchObject({ ok: false, reason: 'invalid-key' });
    expect(parseKvLine('=v')).toMatchObject({ ok: false, reason: 'invalid-key' });
    expect(parseKvLine('k=\u0001')).toMatchObject({ ok: false, reason: 'invalid-value' });
    expect(parseKvLine('k=\0')).toMatchObject({ ok: false, reason: 'binary' });
    expect(parseKvLine(`k=${'v'.repeat(MAX_VALUE_BYTES + 1)}`)).toMatchObject({
      ok: false,
      reason: 'overlong',
    });
  });
});

describe('KvLineParser: lines, not chunks', () => {
  it('does not leak stale bytes into values (the original printed "k1 = v1\\n_ANALYTICS_STREAMING_START")', () => {
    // What the original's uncleared 1000-byte buffer held after reading 6 bytes over its own START.
    const r = parseAll([Buffer.from('k1=v1\n'), Buffer.from('k2=v2\n'), Buffer.from('k10=v10\n')]);
    expect(r.pairs).toEqual([
      ['k1', 'v1'],
      ['k2', 'v2'],
      ['k10', 'v10'],
    ]);
    expect(r.rejects).toEqual([]);
  });

  it('joins lines split across reads, and CRLF from telnet', () => {
    const r = parseAll([
      Buffer.from('ma'),
      Buffer.from('tch=Tr'),
      Buffer.from('ue\r\nk'),
      Buffer.from('=é\n'),
    ]);
    expect(r.pairs).toEqual([
      ['match', 'True'],
      ['k', 'é'],
    ]);
  });

  it('skips blank lines and the start line; rejects each bad line by reason and keeps going', () => {
    const input = Buffer.concat([
      Buffer.from('KERNEL_ANALYTICS_STREAMING_START\n\n'),
      Buffer.from('good1=1\n'),
      Buffer.from([0x62, 0x00, 0xff, 0x3d, 0x0a]), // binary
      Buffer.from(`long=${'x'.repeat(5000)}\n`), // overlong
      Buffer.from('no equals here\n'),
      Buffer.from('bad key=1\n'),
      Buffer.from('k=tab\there\n'),
      Buffer.from('v=\xc3\x28\n', 'latin1'), // invalid UTF-8 in a value
      Buffer.from('good2=2\n'),
      Buffer.from('half=li'), // no newline before the end
    ]);
    const r = parseAll([input]);
    expect(r.pairs).toEqual([
      ['good1', '1'],
      ['good2', '2'],
    ]);
    expect(r.rejects).toEqual([
      'binary',
      'overlong',
      'missing-equals',
      'invalid-key',
      'invalid-value',
      'binary',
      'partial',
    ]);
    expect(r.blank).toBe(1);
    expect(r.ignored).toBe(1);
  });

  it('an overlong line spread over many reads is one reject, and the next line is read', () => {
    const chunks = [Buffer.from('k=')];
    for (let i = 0; i < 10; i++) chunks.push(Buffer.alloc(700, 0x61));
    chunks.push(Buffer.from('aaa\nafter=ok\n'));
    const r = parseAll(chunks);
    expect(r.rejects).toEqual(['overlong']);
    expect(r.pairs).toEqual([['after', 'ok']]);
  });

  it('a line exactly at the limits is accepted', () => {
    const key = 'k'.repeat(128);
    const value = 'v'.repeat(1000);
    const r = parseAll([Buffer.from(`${key}=${value}\r\n`)]);
    expect(r.pairs).toEqual([[key, value]]);
  });

  it('property: agrees with parseKvLine on every line, however the stream is cut (bare and qualified)', () => {
    const lineArb = fc.oneof(
      fc
        .tuple(fc.stringMatching(/^[A-Za-z0-9_.:/-]{1,20}$/), fc.string({ maxLength: 30 }))
        .map(([k, v]) => `${k}=${v}`),
      fc
        .tuple(fc.stringMatching(/^[A-Za-z0-9_.:/-]{0,130}$/), fc.stringMatching(/^[A-Za-z0-9_.:/-]{0,130}$/))
        .map(([h, k]) => `${h}/${k}=v`),
      fc.string({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a).toString('latin1')),
      // Few hosts and keys, some the prefix of another: runs of one host (the parser's same-host
      // shortcut) and repeated keys (its key cache), broken by near misses.
      fc
        .tuple(
          fc.constantFrom('h', 'h2', 'edge-1', 'edge-10', 'a.b:c', 'h2/x', ''),
          fc.constantFrom('/', '', '//', '=', ' /'),
          fc.constantFrom('k', 'k/1', 'MaxNetworkBandwidth', 'kernel_analytics12', 'x', ''),
          fc.string({ unit: fc.constantFrom('1', 'a', '.', 'é', '\u0085', ' '), maxLength: 12 }),
        )
        .map(([h, sep, k, v]) => `${h}${sep}${k}=${v}`),
    );
    fc.assert(
      fc.property(
        fc.array(lineArb, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.boolean(),
        (lines, cuts, qualified) => {
          const clean = lines.map((l) => l.replace(/[\r\n]/g, ''));
          const bytes = Buffer.concat(clean.map((l) => Buffer.from(`${l}\n`, 'utf8')));
          const chunks = piecesAt(bytes, cuts);
          const got = parseAll(chunks, qualified);
          const want: [string, string][] = [];
          const wantHosts: (string | undefined)[] = [];
          const wantRejects: string[] = [];
          let notices = 0;
          for (const l of clean) {
            if (l === '' || l === 'KERNEL_ANALYTICS_STREAMING_START') continue;
            if (l.startsWith('#')) {
              notices++; // a feeder's notice: neither a pair nor an error
              continue;
            }
            const r = parseKvLine(l, qualified);
            if (r.ok) {
              want.push([r.key, r.value]);
              wantHosts.push(r.host);
            } else wantRejects.push(r.reason);
          }
          expect(got.pairs).toEqual(want);
          expect(got.hosts).toEqual(wantHosts);
          expect(got.rejects).toEqual(wantRejects);
          expect(got.notices).toHaveLength(notices);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: what the feeder batches (LineBatch bytes) parses back to the same pairs', () => {
    const pair = fc.tuple(
      fc.stringMatching(/^[A-Za-z0-9_.:/-]{1,128}$/),
      fc.string({ unit: fc.constantFrom('a', 'Z', '=', ' ', ',', 'é', '中', '😀'), maxLength: 250 }),
    );
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 50 }), fc.integer({ min: 1, max: 64 }), (pairs, cap) => {
        const b = new LineBatch(cap); // tiny capacity: growth is exercised
        for (const [k, v] of pairs) b.add(k, v);
        expect(b.lines).toBe(pairs.length);
        expect(parseAll([b.bytes()]).pairs).toEqual(pairs);
      }),
      { numRuns: 200 },
    );
  });

  it('property: host-qualified batches (the every-host view) parse back to the same host, key and value', () => {
    const triple = fc.tuple(
      fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/),
      fc.stringMatching(/^[A-Za-z0-9_.:/-]{1,128}$/),
      fc.string({ unit: fc.constantFrom('a', '=', '/', ' ', 'é', '😀'), maxLength: 250 }),
    );
    fc.assert(
      fc.property(fc.array(triple, { maxLength: 50 }), (triples) => {
        const b = new LineBatch(32);
        for (const [h, k, v] of triples) b.add(k, v, h);
        const r = parseAll([b.bytes()], true);
        expect(r.rejects).toEqual([]);
        expect(r.pairs).toEqual(triples.map(([, k, v]) => [k, v]));
        expect(r.hosts).toEqual(triples.map(([h]) => h));
      }),
      { numRuns: 200 },
    );
  });

  it("a host whose name starts with the line before's host keeps its own name (the same-host shortcut)", () => {
    // The shortcut once kept the host's length from the start of the chunk: after edge-1 in one
    // read, `edge-10` then `edge-1` in the next filed edge-1's value under edge-10 (the bench e2e's
    // lost edge-1/netbw.congestion_expected=true), and a shorter host in between read past its bytes.
    const r = parseAll(
      [Buffer.from('edge-1/a=1\n'), Buffer.from('edge-10/x=2\nedge-1/netbw.congestion_expected=true\n')],
      true,
    );
    expect(r.hosts).toEqual(['edge-1', 'edge-10', 'edge-1']);
    expect(r.pairs).toEqual([
      ['a', '1'],
      ['x', '2'],
      ['netbw.congestion_expected', 'true'],
    ]);
    const s = parseAll([Buffer.from('edge-10/a=1\n'), Buffer.from('edge/x=1\nedge-10/y=2\nh/z=3\n')], true);
    expect(s.hosts).toEqual(['edge-10', 'edge', 'edge-10', 'h']);
    expect(s.rejects).toEqual([]);
  });

  it('property: runs of hosts that are prefixes of one another keep every line under its own host, however cut', () => {
    const hosts = ['e', 'edge', 'edge-1', 'edge-10', 'edge-100', 'h', 'h2'];
    const line = fc.tuple(fc.nat(hosts.length - 1), fc.constantFrom('k', 'k/1', 'netbw.x'), fc.nat(99));
    fc.assert(
      fc.property(
        fc.array(line, { minLength: 1, maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (ls, cuts) => {
          const bytes = Buffer.from(ls.map(([h, k, v]) => `${hosts[h]}/${k}=${v}\n`).join(''));
          const chunks = piecesAt(bytes, cuts);
          const r = parseAll(chunks, true);
          expect(r.rejects).toEqual([]);
          expect(r.hosts).toEqual(ls.map(([h]) => hosts[h]));
          expect(r.pairs).toEqual(ls.map(([, k, v]) => [k, String(v)]));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('qualified lines: split at the first slash; a bare line has no host; a bad host is named', () => {
    const r = parseAll(
      [
        Buffer.from(
          'edge-1/MaxNetworkBandwidth=100\nedge-2/MaxNetworkBandwidth=900\nh/a/b=1\nbare=1\n/k=1\nh/=1\nh h/k=1\n' +
            `${'h'.repeat(129)}/k=1\n# HOST x: no variables of this host yet\n`,
        ),
      ],
      true,
    );
    expect(r.pairs).toEqual([
      ['MaxNetworkBandwidth', '100'],
      ['MaxNetworkBandwidth', '900'],
      ['a/b', '1'],
      ['bare', '1'],
    ]);
    expect(r.hosts).toEqual(['edge-1', 'edge-2', 'h', undefined]);
    expect(r.rejects).toEqual(['invalid-host', 'invalid-key', 'invalid-host', 'invalid-host']);
    expect(r.notices).toEqual(['# HOST x: no variables of this host yet']);
    // Not qualified (a HOST-selected stream): the whole left side is the key.
    expect(parseAll([Buffer.from('h/a/b=1\n')]).pairs).toEqual([['h/a/b', '1']]);
  });
});
