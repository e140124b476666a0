import { describe, expect, it } from 'vitest';
import { Ring, type VariableChange, VariableTable } from '../../kernel-analytics/index.ts';

describe('Ring', () => {
  it('slot = seq % size: wraps around, overwrites the oldest, reads oldest → newest', () => {
    const r = new Ring(5);
    expect(r.toArray()).toEqual([]);
    for (let i = 0; i < 3; i++) r.write(`k${i}`, `v${i}`, 1);
    expect(r.toArray().map((e) => e.key)).toEqual(['k0', 'k1', 'k2']);
    for (let i = 3; i < 12; i++) expect(r.write(`k${i}`, `v${i}`, 1)).toBe(i);
    // 12 written into 5 slots: seq 7..11 remain, oldest first.
    expect(r.length).toBe(5);
    expect(r.written).toBe(12);
    expect(r.oldestSeq).toBe(7);
    expect(r.toArray().map((e) => [e.seq, e.key, e.value])).toEqual([
      [7, 'k7', 'v7'],
      [8, 'k8', 'v8'],
      [9, 'k9', 'v9'],
      [10, 'k10', 'v10'],
      [11, 'k11', 'v11'],
    ]);
    expect(r.at(6)).toBeUndefined(); // overwritten
    expect(r.at(12)).toBeUndefined(); // not yet written
    expect(r.at(9)).toMatchObject({ key: 'k9', value: 'v9' });
    expect([...r].length).toBe(5);
  });

  it('refuses a nonsense size', () => {
    expect(() => new Ring(0)).toThrow(/ring size/);
  });
});

describe('VariableTable', () => {
  it("holds value texts as written, per host; reading them as numbers is the contract readers' job", () => {
    const t = new VariableTable();
    t.set('match', 'True');
    t.set('bw', '255', { host: 'h1' });
    expect(t.get('match')).toBe('True');
    expect(t.get('bw', 'h1')).toBe('255');
    expect(t.get('bw', 'h2')).toBeUndefined();
    expect(t.get('absent')).toBeUndefined();
    expect(t.snapshot()).toMatchObject({ match: 'True', bw: '255' });
  });

  it('emits a change with previous and seq only when the value changes; refuses invalid input', () => {
    const t = new VariableTable();
    const seen: VariableChange[] = [];
    t.on('change', (c) => seen.push(c));
    expect(t.set('k', 'a')).toBe('added');
    expect(t.set('k', 'a')).toBe('unchanged');
    expect(t.set('k', 'b')).toBe('changed');
    expect(t.set('bad key', 'x')).toBe('invalid');
    expect(t.set('k2', 'line\nbreak')).toBe('invalid');
    expect(seen.map((c) => [c.key, c.value, c.previous])).toEqual([
      ['k', 'a', undefined],
      ['k', 'b', 'a'],
    ]);
    expect(seen[1]!.seq).toBeGreaterThan(seen[0]!.seq);
    expect(t.stats()).toMatchObject({ variables: 1, changes: 2, unchanged: 1, invalid: 2 });
  });

  it('keeps each host apart and the latest per key across hosts', () => {
    const t = new VariableTable();
    t.set('load', '1', { host: 'a' });
    t.set('load', '2', { host: 'b' });
    expect(t.get('load', 'a')).toBe('1');
    expect(t.get('load', 'b')).toBe('2');
    expect(t.get('load')).toBe('2');
    expect(t.size).toBe(2);
    expect(t.snapshot('a')).toEqual({ load: '1' });
    expect(t.delete('load', 'b')).toBe(true);
    expect(t.get('load')).toBe('1'); // falls back to the other host
    expect(t.hosts()).toEqual(['a']);
  });

  it('is bounded: past maxVariables new keys are refused and counted, existing ones still update', () => {
    const t = new VariableTable({ maxVariables: 3, name: 'test-bounded' });
    const refused: string[] = [];
    t.on('refused', (r) => refused.push(r.key));
    for (const k of ['a', 'b', 'c']) expect(t.set(k, '1')).toBe('added');
    expect(t.set('d', '1')).toBe('refused');
    expect(t.set('e', '1')).toBe('refused');
    expect(t.set('a', '2')).toBe('changed');
    expect(t.size).toBe(3);
    expect(t.get('d')).toBeUndefined();
    expect(refused).toEqual(['d', 'e']);
    expect(t.stats()).toMatchObject({ refused: 2, maxVariables: 3 });
    t.delete('b');
    expect(t.set('d', '1')).toBe('added');
  });

  it('changes(): async iteration with snapshot; a slow reader gets coalesced, bounded changes', async () => {
    const t = new VariableTable();
    t.set('a', '0');
    const it = t.changes({ snapshot: true });
    const first = await it.next();
    expect(first.value).toMatchObject({ key: 'a', value: '0', previous: undefined });
    // The reader is not reading: 1000 changes to 2 keys queue as 2 entries.
    for (let i = 1; i <= 500; i++) {
      t.set('a', String(i));
      t.set('b', String(i));
    }
    const got: VariableChange[] = [];
    for await (const ch of it) {
      got.push(ch);
      if (got.length === 2) break;
    }
    expect(got.map((c) => [c.key, c.value, c.previous])).toEqual([
      ['a', '500', '0'],
      ['b', '500', undefined],
    ]);
    expect(t.stats().iterators).toBe(0); // break detached it
  });

  it('changes(): a waiting reader gets each change, a host filter and abort work', async () => {
    const t = new VariableTable();
    const ac = new AbortController();
    const got: string[] = [];
    const done = (async () => {
      for await (const ch of t.changes({ host: 'h1', signal: ac.signal })) got.push(`${ch.key}=${ch.value}`);
    })();
    t.set('x', '1', { host: 'h1' });
    t.set('x', '1', { host: 'h2' });
    await Promise.resolve();
    t.set('x', '2', { host: 'h1' });
    await new Promise((r) => setImmediate(r));
    ac.abort();
    await done;
    expect(got).toEqual(['x=1', 'x=2']);
  });

  it('changedSince() lists what changed after a seq read earlier: of one host, or of every host', () => {
    const t = new VariableTable();
    t.set('a', '1');
    const mark = t.nextSeq;
    t.set('b', '1');
    t.set('a', '2');
    t.set('a', '3', { host: 'h2' });
    const lines = (es: { host: string; key: string; value: string }[]) =>
      es.map((e) => `${e.host}/${e.key}=${e.value}`);
    expect(lines(t.changedSince(mark))).toEqual(['/b=1', '/a=2', 'h2/a=3']);
    expect(lines(t.changedSince(mark, 'h2'))).toEqual(['h2/a=3']);
    expect(t.hasHost('h2')).toBe(true);
    expect(t.hasHost('h3')).toBe(false);
  });
});
